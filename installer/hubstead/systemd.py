"""systemd: units through systemctl, journald logging through systemd-python."""

import logging
import subprocess

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
