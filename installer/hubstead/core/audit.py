"""The audit trail: each admin action as one structured journal entry.

    journalctl HUBSTEAD_EVENT=user-added            # who added whom, and when
    journalctl -t hubstead-audit -o verbose         # every field of every action

Fields: ``HUBSTEAD_EVENT`` (one of EVENTS), ``HUBSTEAD_USER`` (who acted: a teacher's
hub name, or on the command line the sudo user, else root), ``HUBSTEAD_TARGET`` (the
hub user or setting acted on) and event-specific ``HUBSTEAD_<NAME>`` fields. Never a
password, a token or a secret setting's value: callers pass names and counts only.
"""

import logging
import os

from systemd import journal

IDENTIFIER = "hubstead-audit"
EVENTS = frozenset({
    "user-added", "password-set", "group-joined", "password-reset", "user-unlocked",
    "user-removed", "sessions-ended", "config-changed", "packages-added", "packages-removed",
})
# Replaced by the tests, which read what would have been sent.
send = journal.send


def record(event: str, target: str, actor: str | None = None, **fields: str) -> None:
    """Write one audit entry. ``actor`` None: the person at the command line. Where the
    journal can't take it, the action (already done) stands and a warning says so."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")  # a bug in the caller
    actor = actor or os.environ.get("SUDO_USER") or "root"
    try:
        send(f"{actor}: {event} {target}", SYSLOG_IDENTIFIER=IDENTIFIER, HUBSTEAD_EVENT=event,
             HUBSTEAD_USER=actor, HUBSTEAD_TARGET=target,
             **{f"HUBSTEAD_{name.upper()}": value for name, value in fields.items()})
    except OSError as e:
        logging.getLogger(IDENTIFIER).warning("audit entry %s %s not written to the journal: %s",
                                              event, target, e)
