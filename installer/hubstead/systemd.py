"""systemd: units through systemctl, journald logging through systemd-python."""

import logging
import subprocess
from pathlib import Path

from systemd import daemon, journal


def booted() -> bool:
    return daemon.booted()


def is_active(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0


def journal_logger(identifier: str) -> logging.Logger:
    """A logger whose records land in the journal under ``identifier``."""
    logger = logging.getLogger(identifier)
    if booted() and not logger.handlers:
        logger.addHandler(journal.JournalHandler(SYSLOG_IDENTIFIER=identifier))
        logger.setLevel(logging.INFO)
    return logger


def unit_memory(unit: str) -> int | None:
    """Bytes of memory a unit's processes use: the cgroup's own count where the memory
    controller is on, else the sum of their resident sets; None when it isn't running."""
    cgroup = Path("/sys/fs/cgroup/system.slice") / unit
    try:
        return int((cgroup / "memory.current").read_text())
    except (FileNotFoundError, ValueError):
        pass
    try:
        pids = (cgroup / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return None
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue  # exited meanwhile
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total
