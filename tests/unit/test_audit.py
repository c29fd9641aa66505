"""The audit trail's journal entries (sent to a fake: nothing reaches the journal)."""

import datetime

import pytest

from hubstead.core import audit


def test_an_entry_carries_event_actor_target_and_fields(audited, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "alice")
    audit.record("user-added", "ann", group="lab")
    audit.record("user-removed", "bob", actor="teacher")
    monkeypatch.delenv("SUDO_USER")
    audit.record("config-changed", "limits.memory")
    assert audited == [
        {"MESSAGE": "alice: user-added ann", "SYSLOG_IDENTIFIER": "hubstead-audit",
         "HUBSTEAD_EVENT": "user-added", "HUBSTEAD_USER": "alice", "HUBSTEAD_TARGET": "ann",
         "HUBSTEAD_GROUP": "lab"},
        {"MESSAGE": "teacher: user-removed bob", "SYSLOG_IDENTIFIER": "hubstead-audit",
         "HUBSTEAD_EVENT": "user-removed", "HUBSTEAD_USER": "teacher", "HUBSTEAD_TARGET": "bob"},
        {"MESSAGE": "root: config-changed limits.memory", "SYSLOG_IDENTIFIER": "hubstead-audit",
         "HUBSTEAD_EVENT": "config-changed", "HUBSTEAD_USER": "root", "HUBSTEAD_TARGET": "limits.memory"},
    ]


def test_an_unknown_event_is_a_bug(audited):
    with pytest.raises(ValueError, match="unknown audit event"):
        audit.record("user-addded", "ann")
    assert audited == []


def test_a_journal_that_refuses_the_entry_does_not_undo_the_action(monkeypatch, caplog):
    def refuse(message, **fields):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(audit, "send", refuse)
    audit.record("user-removed", "bob", actor="teacher")
    assert "user-removed bob not written to the journal" in caplog.text


def test_an_entry_is_shown_as_when_who_what_on_what_then_its_own_fields():
    when = datetime.datetime(2026, 3, 2, 9, 5, 7, tzinfo=datetime.timezone.utc)
    entry = {"__REALTIME_TIMESTAMP": when, "SYSLOG_IDENTIFIER": "hubstead-audit", "_UID": 0,
             "HUBSTEAD_TARGET": "ann", "HUBSTEAD_EVENT": "password-reset", "HUBSTEAD_USER": "teacher",
             "HUBSTEAD_MUST_CHANGE": "true"}
    shown = audit.summary(entry)
    assert list(shown.items()) == [("time", when.astimezone().strftime("%Y-%m-%d %H:%M:%S")), ("user", "teacher"),
                                   ("event", "password-reset"), ("target", "ann"), ("must_change", "true")]

