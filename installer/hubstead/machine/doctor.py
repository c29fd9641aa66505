"""`hubstead doctor`: what is wrong with this machine's hub, each finding with its fix.

Each ``check_*`` is a function of facts, without I/O, returning a Result (tested with
facts made up); ``run`` gathers the facts from the machine and calls them. Nothing here
reaches beyond the machine but the DNS lookups of the configured names.
"""

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from hubstead.config.model import Settings
from hubstead.config.schema import is_ip
from hubstead.core import paths, systemd
from hubstead.machine import converge, health
from hubstead.machine import status as machine_status
from hubstead.machine.tls import status as tls_status
from hubstead.machine.tls.certificates import TLSError, days_left

OK, WARN, FAIL = "ok", "warn", "fail"
CERT_WARN_DAYS = 14
DISK_WARN, DISK_FAIL = 0.10, 0.02  # free fraction of a filesystem's space or inodes
DISK_PATHS = ("/", "/home", "/var")
# Below this fraction of the machine's memory available, the kernel is about to kill.
MEMORY_FAIL = 0.05
HUB_WAIT = 5  # seconds the hub gets to answer through the proxy
PROC = Path("/proc")

REBUILD = {
    paths.HUB_ENV: f"sudo rm -rf {paths.HUB_ENV}, then run bootstrap.py again as at the install "
                   "(it rebuilds the environment and keeps the settings and users)",
    paths.USER_ENV: f"sudo rm -rf {paths.USER_ENV} && sudo hubstead install   "
                    "(rebuilds it with the packages in config.yaml; then restart the servers)",
}
CERT_FIX = {
    "selfsigned": "sudo hubstead config apply   (makes a new self-signed certificate)",
    "manual": "put the renewed certificate at https.manual.cert, then: sudo hubstead config apply",
    "letsencrypt": "sudo hubstead cert renew --force",
}


class Result(NamedTuple):
    status: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Listener:
    """A process listening on a port, and the systemd service it runs in (if any)."""
    process: str
    pid: int
    service: str | None


def check_unit(unit: str, active: bool, logs_name: str) -> Result:
    if active:
        return Result(OK, f"{unit} is active")
    return Result(FAIL, f"{unit} is not running",
                  f"sudo systemctl restart {unit}; if it stops again: sudo hubstead logs {logs_name}")


def check_port(port: int, listeners: list[Listener] | None, proxy_pids: set[int]) -> Result:
    if listeners is None:
        return Result(WARN, f"port {port}: cannot tell who listens", "run as root, with `ss` (apt install iproute2)")
    if not listeners:
        return Result(FAIL, f"port {port}: nothing listens", f"sudo systemctl restart {paths.PROXY_UNIT}")
    other = next((lis for lis in listeners if lis.pid not in proxy_pids), None)
    if other is None:
        return Result(OK, f"port {port}: {paths.PROXY_UNIT}")
    where = f"pid {other.pid}" + (f", {other.service}" if other.service else "")
    stop = f"sudo systemctl disable --now {other.service}" if other.service else f"sudo kill {other.pid}"
    return Result(FAIL, f"port {port} is held by {other.process} ({where}), not by the proxy",
                  f"{stop}; then: sudo systemctl restart {paths.PROXY_UNIT}")


def check_dns(name: str, key: str, addresses: list[str] | None, machine: list[str], required: bool) -> Result:
    """``required``: the name must resolve (Let's Encrypt renews through it); else it is
    only a name in the self-signed certificate, which other resolvers may know."""
    here = ", ".join(machine)
    if addresses is None:
        return Result(FAIL if required else WARN, f"{name} ({key}) does not resolve",
                      f"add a DNS record {name} → this machine ({here}), "
                      f"or: sudo hubstead config remove-item {key} {name}")
    if set(addresses) & set(machine):
        return Result(OK, f"{name} resolves to this machine")
    return Result(WARN, f"{name} resolves to {', '.join(addresses)}, not to this machine ({here})",
                  "fine if that address forwards ports 80 and 443 here (NAT); else correct the DNS record")


def check_certificate(mode: str, days: float | None, error: str | None) -> Result:
    if error is not None or days is None:
        return Result(FAIL, f"certificate ({mode}): {error}", f"sudo systemctl restart {paths.PROXY_UNIT}")
    if days < 0:
        return Result(FAIL, f"certificate ({mode}) expired {-days:.0f} days ago", CERT_FIX[mode])
    if days < CERT_WARN_DAYS:
        return Result(WARN, f"certificate ({mode}) expires in {days:.0f} days", CERT_FIX[mode])
    return Result(OK, f"certificate ({mode}) valid for {days:.0f} more days")


def check_renewal(timer_active: bool, last_run_failed: bool) -> Result:
    if not timer_active:
        return Result(FAIL, f"{paths.CERTBOT_TIMER} is not active: the certificate will not be renewed",
                      f"sudo systemctl enable --now {paths.CERTBOT_TIMER}")
    if last_run_failed:
        return Result(WARN, f"the last renewal check failed ({paths.CERTBOT_SERVICE})",
                      f"sudo hubstead cert renew   (its log: journalctl -u {paths.CERTBOT_SERVICE})")
    return Result(OK, f"{paths.CERTBOT_TIMER} is active")


def check_disk(where: str, space: float, inodes: float | None) -> Result:
    """``space``, ``inodes``: the free fractions (inodes None: the filesystem has no
    fixed count)."""
    low_inodes = inodes is not None and inodes < space
    worst = inodes if low_inodes and inodes is not None else space
    message = f"{where}: {space:.0%} of the space free"
    if inodes is not None:
        message += f", {inodes:.0%} of the inodes"
    mount = where.split(",")[0]
    fix = (f"sudo du -x --inodes --max-depth=2 {mount} | sort -n | tail   (shows where the files are)"
           if low_inodes else f"sudo du -xh --max-depth=2 {mount} | sort -h | tail   (shows what takes the space)")
    if worst < DISK_FAIL:
        return Result(FAIL, message, fix)
    if worst < DISK_WARN:
        return Result(WARN, message, fix)
    return Result(OK, message)


def check_memory(memory: dict, servers: list[dict]) -> Result:
    """``memory``, ``servers``: as machine.status gathers them. A server may grow up to
    its cap, and all of them together up to their slice's."""
    size = systemd.format_bytes
    growth = sum(float("inf") if s["memory_max"] is None else max(s["memory_max"] - (s["memory"] or 0), 0)
                 for s in servers)
    if memory["servers_max"] is not None:
        growth = min(growth, max(memory["servers_max"] - (memory["servers"] or 0), 0))
    message = (f"memory: {len(servers)} servers running, using {size(memory['servers'] or 0)}; "
               f"{size(memory['available'])} of {size(memory['total'])} available")
    fix = ("lower the servers' cap (sudo hubstead config set limits.memory 1G) or stop idle servers sooner "
           "(services.cull.timeout)")
    if memory["available"] < MEMORY_FAIL * memory["total"]:
        return Result(FAIL, message, fix)
    if growth > memory["available"]:
        more = "without bound" if growth == float("inf") else f"by {size(growth)}"
        return Result(WARN, f"{message}; the servers may grow {more}", fix)
    return Result(OK, message)


def check_python(env: Path, error: str | None) -> Result:
    python = env / "bin" / "python"
    if error is None:
        return Result(OK, f"{python} runs")
    return Result(FAIL, f"{python} does not run ({error}); after an OS upgrade, rebuild the environment",
                  REBUILD[env])


def check_clock(synchronized: bool | None) -> Result:
    if synchronized:
        return Result(OK, "the clock is synchronized (NTP)")
    fix = "sudo timedatectl set-ntp true   (status: timedatectl timesync-status)"
    if synchronized is None:
        return Result(WARN, "cannot tell whether the clock is synchronized (no timedatectl answer)", fix)
    return Result(WARN, "the clock is not synchronized: logins, tokens and certificates depend on it", fix)


def check_unprivileged_ports(start: int | None) -> Result:
    """``start``: the first port any process may bind (None: unknown)."""
    needed = max(paths.LOOPBACK_PORTS) + 1
    setting = f"net.ipv4.{paths.UNPRIVILEGED_PORT_START.name}"
    fix = (f"echo '{setting} = 1024' | sudo tee /etc/sysctl.d/60-hubstead-ports.conf "
           "&& sudo sysctl --system")
    if start is None:
        return Result(WARN, f"cannot read {setting}: whether students can bind the hub's ports is unknown", fix)
    if start < needed:
        return Result(FAIL, f"{setting} is {start}: students can bind the hub's loopback ports "
                            f"({', '.join(map(str, paths.LOOPBACK_PORTS))}) and receive their logins", fix)
    return Result(OK, f"{setting} is {start}: only root binds the hub's loopback ports")


def check_hub(error: str | None) -> Result:
    if error is None:
        return Result(OK, "the hub answers through the proxy")
    return Result(FAIL, error, "sudo hubstead logs hub; sudo hubstead logs proxy")


# ------------------------------------------------------------------ the facts

_SS_PROCESS = re.compile(r'\("([^"]*)",pid=(\d+)')


def _service_of(pid: int) -> str | None:
    try:
        cgroup = (PROC / str(pid) / "cgroup").read_text()
    except FileNotFoundError:
        return None
    unit = next((line[3:].rsplit("/", 1)[-1] for line in cgroup.splitlines() if line.startswith("0::")), "")
    return unit if unit.endswith(".service") else None


def listeners(port: int) -> list[Listener] | None:
    """Who listens on TCP ``port``; None when that can't be told (no ss, not root)."""
    if not shutil.which("ss"):
        return None
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    found = {(m.group(1), int(m.group(2))) for m in _SS_PROCESS.finditer(out)}
    if out.strip() and not found:
        return None  # sockets, but their processes are hidden from us
    return [Listener(name, pid, _service_of(pid)) for name, pid in sorted(found)]


def unprivileged_port_start() -> int | None:
    try:
        return int(paths.UNPRIVILEGED_PORT_START.read_text())
    except (OSError, ValueError):
        return None


def resolve(name: str) -> list[str] | None:
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)})
    except (socket.gaierror, UnicodeError):
        return None


def python_error(env: Path, run_as: Sequence[str] = ()) -> str | None:
    """What ``env``'s interpreter says when it starts, run after ``run_as`` (the user
    environment's owner's unit: root never starts that one); None when it starts."""
    try:
        result = subprocess.run([*run_as, str(env / "bin" / "python"), "-c", "import sys"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["exit status"])[-1]


def clock_synchronized() -> bool | None:
    # The NTP daemon's verdict, kept by the kernel. (An HTTP Date header at hand would
    # be the hub's or the proxy's: this machine's own clock, nothing to compare with.)
    if not shutil.which("timedatectl"):
        return None
    out = subprocess.run(["timedatectl", "show", "--property=NTPSynchronized", "--value"],
                         capture_output=True, text=True).stdout.strip()
    return {"yes": True, "no": False}.get(out)


def disks() -> dict[str, tuple[float, float | None]]:
    """{the paths on one filesystem, joined: (free space, free inodes)}."""
    by_device: dict[int, list[str]] = {}
    for path in DISK_PATHS:
        if os.path.exists(path):
            by_device.setdefault(os.stat(path).st_dev, []).append(path)
    found = {}
    for same in by_device.values():
        fs = os.statvfs(same[0])
        found[", ".join(same)] = (fs.f_bavail / fs.f_blocks if fs.f_blocks else 1.0,
                                  fs.f_favail / fs.f_files if fs.f_files else None)
    return found


def _names(effective: Settings) -> list[tuple[str, str, bool]]:
    """(name, its setting, must resolve) for the names the HTTPS mode uses."""
    https = effective["https"]
    if https["mode"] == "letsencrypt":
        return [(n, "https.letsencrypt.domains", True) for n in https["letsencrypt"]["domains"]]
    if https["mode"] == "selfsigned":
        return [(n, "https.hostnames", False) for n in https["hostnames"] if not is_ip(n)]
    return []


def _certificate(effective: Settings) -> Result:
    mode = effective["https"]["mode"]
    try:
        return check_certificate(mode, days_left(tls_status.served(effective)), None)
    except (OSError, TLSError) as e:
        return check_certificate(mode, None, f"nothing served on port {effective['https']['port']} ({e})")


def _hub_error(effective: Settings) -> str | None:
    try:
        health.wait_for_hub(effective, timeout=HUB_WAIT)
    except health.HubDown as e:
        return str(e)
    return None


def run(effective: Settings) -> list[Result]:
    https = effective["https"]
    results = [check_unit(paths.HUB_UNIT, systemd.is_active(paths.HUB_UNIT), "hub"),
               check_unit(paths.PROXY_UNIT, systemd.is_active(paths.PROXY_UNIT), "proxy")]
    proxy_pids = set(systemd.unit_pids(paths.PROXY_UNIT))
    ports = [effective["http"]["port"]] + ([https["port"]] if https["mode"] != "off" else [])
    results += [check_port(port, listeners(port), proxy_pids) for port in ports]
    results.append(check_hub(_hub_error(effective)))
    results.append(check_unprivileged_ports(unprivileged_port_start()))
    if https["mode"] != "off":
        results.append(_certificate(effective))
    if https["mode"] == "letsencrypt":
        failed = systemd.properties(paths.CERTBOT_SERVICE, "Result").get("Result", "success") != "success"
        results.append(check_renewal(systemd.is_active(paths.CERTBOT_TIMER), failed))
    machine = health.public_hosts()
    results += [check_dns(name, key, resolve(name), machine, required) for name, key, required in _names(effective)]
    results += [check_disk(where, space, inodes) for where, (space, inodes) in disks().items()]
    results.append(check_memory(machine_status.memory(), machine_status.servers(None)))
    results += [check_python(paths.HUB_ENV, python_error(paths.HUB_ENV)),
                check_python(paths.USER_ENV, python_error(paths.USER_ENV, converge.as_user_env_owner(effective)))]
    results.append(check_clock(clock_synchronized()))
    return results


def format_results(results: list[Result]) -> str:
    lines = []
    for result in results:
        lines.append(f"{result.status:5} {result.message}")
        if result.fix and result.status != OK:
            lines.append(f"      fix: {result.fix}")
    counts = {s: sum(r.status == s for r in results) for s in (FAIL, WARN, OK)}
    lines.append(f"{counts[FAIL]} failed, {counts[WARN]} warnings, {counts[OK]} ok")
    return "\n".join(lines)


def passed(results: list[Result]) -> bool:
    return all(r.status != FAIL for r in results)
