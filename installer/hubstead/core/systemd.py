"""systemd: units through systemctl, journald logging through systemd-python."""

import logging
import subprocess
from pathlib import Path

from systemd import daemon, journal

from hubstead.core import paths


def booted() -> bool:
    return daemon.booted()


def notify_ready() -> None:
    """Tell systemd a Type=notify service is up: `systemctl start` returns now."""
    daemon.notify("READY=1")


def is_active(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0


def journal_logger(identifier: str, name: str | None = None) -> logging.Logger:
    """The logger ``name`` (default: ``identifier``), its records (and its children's)
    landing in the journal under ``identifier``."""
    logger = logging.getLogger(name or identifier)
    if booted() and not logger.handlers:
        logger.addHandler(journal.JournalHandler(SYSLOG_IDENTIFIER=identifier))
        logger.setLevel(logging.INFO)
    return logger


def properties(unit: str, *names: str) -> dict[str, str]:
    """Some of a unit's properties, as ``systemctl show`` gives them."""
    out = subprocess.run(["systemctl", "show", f"--property={','.join(names)}", unit],
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cgroup_dir(unit: str, slice_: str | None = "system.slice") -> Path:
    """The cgroup directory of ``unit`` running in the top-level ``slice_`` (None: the
    unit is itself a top-level slice)."""
    return paths.CGROUP_ROOT / slice_ / unit if slice_ else paths.CGROUP_ROOT / unit


def slice_services(slice_: str) -> list[str]:
    """The services running in a top-level slice."""
    return sorted(p.name for p in (paths.CGROUP_ROOT / slice_).glob("*.service"))


def unit_pids(unit: str, slice_: str | None = "system.slice") -> list[int]:
    """The processes of a running unit (none when it isn't running)."""
    try:
        return [int(pid) for pid in (cgroup_dir(unit, slice_) / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def unit_memory(unit: str, slice_: str | None = "system.slice") -> int | None:
    """Bytes of memory a unit's processes use: the cgroup's own count where the memory
    controller is on, else the sum of their resident sets; None when it isn't running."""
    cgroup = cgroup_dir(unit, slice_)
    try:
        return int((cgroup / "memory.current").read_text())
    except (FileNotFoundError, ValueError):
        pass
    if not cgroup.is_dir():
        return None
    total = 0
    for pid in unit_pids(unit, slice_):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue  # exited meanwhile
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total


def memory_max(unit: str, slice_: str | None = "system.slice") -> int | None:
    """A running unit's memory cap in bytes (its MemoryMax); None when it has none, or
    isn't running, or the memory controller is off."""
    try:
        value = (cgroup_dir(unit, slice_) / "memory.max").read_text().strip()
    except FileNotFoundError:
        return None
    return None if value == "max" else int(value)


def format_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
