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


def journal_logger(identifier: str) -> logging.Logger:
    """A logger whose records land in the journal under ``identifier``."""
    logger = logging.getLogger(identifier)
    if booted() and not logger.handlers:
        logger.addHandler(journal.JournalHandler(SYSLOG_IDENTIFIER=identifier))
        logger.setLevel(logging.INFO)
    return logger


def cgroup_dir(unit: str, slice_: str = "system.slice") -> Path:
    """The cgroup directory of ``unit`` running in the top-level ``slice_``."""
    return paths.CGROUP_ROOT / slice_ / unit


def unit_pids(unit: str, slice_: str = "system.slice") -> list[int]:
    """The processes of a running unit (none when it isn't running)."""
    try:
        return [int(pid) for pid in (cgroup_dir(unit, slice_) / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def unit_memory(unit: str, slice_: str = "system.slice") -> int | None:
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
