"""Who would receive what is sent to a local TCP address, from the kernel's socket tables.

A user's server listens on a port the spawner picked; any student could bind that port
first and receive their classmate's logins and tokens. The hub routes to a port only
once a socket of the right Unix user is the one the proxy's connections reach there.

Only listeners that can receive those connections count: a student's socket on the same
port but another address (``[::1]``, ``127.0.0.2``, an IPv6-only ``[::]``) gets none of
them and does not stop the classmate's server from binding, so it must not make the
hub give the port up either.
"""

import ipaddress
import socket
import struct
from pathlib import Path

TCP_TABLES = {socket.AF_INET: Path("/proc/net/tcp"), socket.AF_INET6: Path("/proc/net/tcp6")}
LISTEN = "0A"  # the state column of a listening socket


def _address(family: int, hexadecimal: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A table's address: 32-bit words in hex, each in the machine's byte order."""
    words = [int(hexadecimal[i:i + 8], 16) for i in range(0, len(hexadecimal), 8)]
    return ipaddress.ip_address(socket.inet_ntop(family, struct.pack(f"={len(words)}I", *words)))


def _listeners(port: int) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(local address, uid) of each socket listening on TCP ``port``, IPv4 and IPv6; an
    IPv6 socket's IPv4-mapped address as the IPv4 address it is."""
    found = []
    for family, table in TCP_TABLES.items():
        try:
            rows = table.read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 on this machine
            continue
        for row in rows:
            # sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid ...
            fields = row.split()
            address, _, local_port = fields[1].rpartition(":")
            if fields[3] == LISTEN and int(local_port, 16) == port:
                ip = _address(family, address)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                    ip = ip.ipv4_mapped
                found.append((ip, int(fields[7])))
    return found


def receiver_uids(ip: str, port: int) -> set[int]:
    """The Unix users whose sockets would receive TCP connections to ``ip`` (IPv4) and
    ``port``. The kernel hands a connection to a socket bound to that very address if
    there is one (no two users can hold one: binding it conflicts), else to a wildcard
    one: ``0.0.0.0``, or ``[::]`` unless IPv6-only, which the tables don't tell, so it
    counts."""
    target = ipaddress.IPv4Address(ip)
    listeners = _listeners(port)
    exact = {uid for address, uid in listeners if address == target}
    if exact:
        return exact
    return {uid for address, uid in listeners if address.is_unspecified}
