"""Enrolment, the one path of `hubstead users add/import` and the teacher's page, with
the hub's API in memory and a password store in a temporary directory."""

import pytest
from fakehub import FakeHub

from hubstead.classroom import enrol, roster
from hubstead.core.passwords import PasswordStore, WeakPassword
from hubstead.core.usernames import InvalidUsername


@pytest.fixture
def store(tmp_path):
    return PasswordStore(tmp_path / "passwords.json")


def must_change(store, name):
    return store.account(name).must_change


def test_the_first_login_policy(store):
    hub = FakeHub()
    # Chosen by someone else (generated, a class list, the teacher's page): changed at first login.
    enrol.enrol(hub, store, roster.parse("ann\nbob,bob-initial-1\n"))
    enrol.add(hub, store, "cat", "generated-1")
    # Given as final (`users add --password-stdin`): kept.
    enrol.add(hub, store, "dan", "dans-own-pw", final=True)
    assert [must_change(store, n) for n in ("ann", "bob", "cat", "dan")] == [True, True, True, False]
    assert store.verify("bob", "bob-initial-1") and store.verify("dan", "dans-own-pw")


def test_an_existing_user_keeps_their_password_and_one_without_gets_it(store):
    hub = FakeHub(users={"ann", "bob"})
    store.set("ann", "anns-chosen-1")
    assert enrol.add(hub, store, "ann", "taken-over-1") == (False, False)
    assert store.verify("ann", "anns-chosen-1")
    assert enrol.add(hub, store, "bob", "bobs-first-1") == (False, True)
    assert store.verify("bob", "bobs-first-1")
    assert enrol.add(hub, store, "cat", None) == (True, False) and not store.has("cat")


def test_nothing_changes_for_a_bad_name_a_short_password_or_a_sysadmin(store):
    hub = FakeHub()
    with pytest.raises(InvalidUsername):
        enrol.add(hub, store, "Bad Name!", "long-enough-1")
    with pytest.raises(WeakPassword):
        enrol.add(hub, store, "ann", "abc")
    with pytest.raises(enrol.Refused, match=r"root changes their account"):
        enrol.add(hub, store, "root-ann", "long-enough-1", sysadmins=frozenset({"root-ann"}))
    assert hub.hub_users == set() and store.names() == []


def test_a_class_list_reports_every_row_and_adds_only_the_good_ones(store):
    hub = FakeHub(users={"old"})
    store.set("old", "olds-chosen-1")
    text = "username,password,group\nann,,lab\nBad Name!\nsys\nold\nbob,abc\nann\n"
    outcomes, issued = enrol.enrol(hub, store, roster.parse(text), default_group="class",
                                   sysadmins=frozenset({"sys"}))
    assert [(o.line, o.name, o.result) for o in outcomes] == [
        (2, "ann", "added"), (3, "Bad Name!", "refused"), (4, "sys", "refused"),
        (5, "old", "already there"), (6, "bob", "refused"), (7, "ann", "refused"),
    ]
    assert outcomes[0].detail == "Unix account jupyter-ann; in group lab"
    assert outcomes[2].detail == f"sys is {enrol.SYSADMIN_REFUSED}"
    assert outcomes[3].detail == "unchanged; in group class"
    assert set(issued) == {"ann"} and store.verify("ann", issued["ann"])
    assert hub.hub_users == {"ann", "old"}
    assert hub.groups == {"lab": {"ann"}, "class": {"old"}}


def test_a_reset_ends_the_sessions_of_the_old_password(store):
    hub = FakeHub(users={"ann"})
    enrol.reset_password(hub, store, "ann", "new-password-1", must_change=True, actor="teacher")
    assert store.verify("ann", "new-password-1") and must_change(store, "ann")
    assert hub.sessions_ended == ["ann"]


def test_each_action_is_audited_without_its_password(store, audited):
    hub = FakeHub()
    enrol.add(hub, store, "ann", "secret-pw-1", group="lab", actor="teacher")
    enrol.reset_password(hub, store, "ann", "secret-pw-2", must_change=False, actor="teacher")
    store.set("ann", "x" * 8)  # no actor: not an admin action
    enrol.unlock(store, "ann", actor="teacher")
    enrol.remove(hub, "ann", actor="teacher")
    assert [(e["HUBSTEAD_EVENT"], e["HUBSTEAD_TARGET"], e["HUBSTEAD_USER"]) for e in audited] == [
        ("user-added", "ann", "teacher"), ("password-set", "ann", "teacher"),
        ("group-joined", "ann", "teacher"), ("password-reset", "ann", "teacher"),
        ("user-unlocked", "ann", "teacher"), ("user-removed", "ann", "teacher"),
    ]
    assert audited[1]["HUBSTEAD_MUST_CHANGE"] == "true" and audited[2]["HUBSTEAD_GROUP"] == "lab"
    assert not [e for e in audited if any("secret-pw" in str(v) for v in e.values())]


def test_unlocking_a_user_without_a_password_changes_and_audits_nothing(store, audited):
    assert enrol.unlock(store, "nobody") is False
    assert audited == []
