"""Who listens on a local TCP port, from the kernel's socket tables.

A user's server listens on a port the spawner picked; any student could bind that port
first and receive their classmate's logins and tokens. The hub routes to a port only
once a socket of the right Unix user listens there.
"""

from pathlib import Path

TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN = "0A"  # the state column of a listening socket


def listener_uids(port: int) -> set[int]:
    """The Unix users whose sockets listen on TCP ``port``, on any address, IPv4 or IPv6."""
    uids = set()
    for table in TCP_TABLES:
        try:
            rows = table.read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 on this machine
            continue
        for row in rows:
            # sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid ...
            fields = row.split()
            if fields[3] == LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                uids.add(int(fields[7]))
    return uids
