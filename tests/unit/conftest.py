import pytest

from hubstead.core import audit


@pytest.fixture(autouse=True)
def audited(monkeypatch):
    """The audit entries a test's actions would send to the journal (none reach it)."""
    entries = []
    monkeypatch.setattr(audit, "send", lambda message, **fields: entries.append({"MESSAGE": message, **fields}))
    return entries
