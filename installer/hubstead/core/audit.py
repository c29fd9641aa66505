"""The audit trail: each admin action as one structured journal entry, and reading them.

    hubstead audit --event user-added               # who added whom, and when

Fields: ``HUBSTEAD_EVENT`` (one of EVENTS), ``HUBSTEAD_USER`` (who acted: a teacher's
hub name, or on the command line the sudo user, else root), ``HUBSTEAD_TARGET`` (the
hub user or setting acted on) and event-specific ``HUBSTEAD_<NAME>`` fields. Never a
password, a token or a secret setting's value: callers pass names and counts only.

Any user of the machine can write a journal entry with these fields (the journal takes
whatever a sender says), so the trail is the entries root's processes wrote: journald
stamps each entry with its sender's uid (``_UID``, from the socket's credentials; no
sender can set a field starting with ``_``).
"""

import datetime
import logging
import os
from collections.abc import Iterator

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


# What journald itself records about the sender of an entry of the trail: root, through
# the journal's own protocol (journal.send), never a syslog line or a program's output.
TRUSTED = {"_UID": "0", "_TRANSPORT": "journal"}
PREFIX = "HUBSTEAD_"
SHOWN = ("USER", "EVENT", "TARGET")  # fields every entry has: the rest are the event's own


def trail(event: str | None = None, actor: str | None = None, target: str | None = None,
          since: datetime.datetime | None = None) -> Iterator[dict]:
    """The trail's entries, oldest first (those with ``event``, by ``actor``, on
    ``target``, from ``since``): only those root wrote."""
    reader = journal.Reader()
    reader.add_match(SYSLOG_IDENTIFIER=IDENTIFIER, **TRUSTED)
    for name, value in (("EVENT", event), ("USER", actor), ("TARGET", target)):
        if value is not None:
            reader.add_match(**{PREFIX + name: value})
    if since is not None:
        reader.seek_realtime(since)
    try:
        for entry in reader:
            if entry.get(PREFIX + "EVENT") in EVENTS:
                yield entry
    finally:
        reader.close()


def summary(entry: dict) -> dict:
    """An entry as ``hubstead audit`` shows it, in this order: when, who, what, on what
    (``time``, ``user``, ``event``, ``target``), then the event's own fields (lower-case)."""
    when = entry["__REALTIME_TIMESTAMP"]
    return {"time": when.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            **{name.lower(): entry.get(PREFIX + name, "") for name in SHOWN},
            **{key[len(PREFIX):].lower(): str(value) for key, value in sorted(entry.items())
               if key.startswith(PREFIX) and key[len(PREFIX):] not in SHOWN}}
