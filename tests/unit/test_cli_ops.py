"""`hubstead logs`, `status` and `doctor` on the command line: the journalctl each log
name runs, the refusals, what status asks the hub, doctor's exit code."""

import json

import pytest
from click.testing import CliRunner

from hubstead.cli import main as cli
from hubstead.cli import ops
from hubstead.core import paths
from hubstead.hub.hubapi import HubAPIError
from hubstead.machine import doctor
from hubstead.machine import status as machine_status


def run(*args):
    return CliRunner().invoke(cli.main, list(args))


@pytest.fixture
def accounts(monkeypatch):
    """The Unix accounts this machine has."""
    names = {"jupyter-ann"}
    monkeypatch.setattr(ops.unixusers, "exists", lambda name: name in names)
    return names


@pytest.mark.parametrize(("name", "matches"), [
    ("hub", ["-u", paths.HUB_UNIT]),
    ("proxy", ["-u", paths.PROXY_UNIT]),
    ("teacher", ["-t", paths.TEACHER_LOG]),
    ("ann", ["-u", "jupyter-ann.service"]),
    ("Ann ", ["-u", "jupyter-ann.service"]),
])
def test_each_log_name_gives_its_journal(accounts, name, matches):
    assert ops.journal_command(name, False, 50) == ["journalctl", *matches, "-n", "50"]


def test_follow_and_lines_are_passed_on(accounts):
    assert ops.journal_command("proxy", True, 5) == ["journalctl", "-u", paths.PROXY_UNIT, "-n", "5", "-f"]


def test_a_name_that_is_no_log_nor_user_is_refused_saying_what_is_allowed(accounts):
    with pytest.raises(ops.UnknownLog, match=r"^no log 'nobody!': use hub, proxy, teacher or a hub user's name$"):
        ops.journal_command("nobody!", False, 50)
    with pytest.raises(ops.UnknownLog, match=r"^no user 'bob' on this machine: use hub, proxy, teacher or a hub"):
        ops.journal_command("bob", False, 50)


def test_logs_execs_journalctl_without_a_shell(accounts, monkeypatch):
    execs = []
    monkeypatch.setattr(ops.os, "execvp", lambda file, argv: execs.append((file, argv)))
    r = run("logs", "ann", "-f", "-n", "5")
    assert r.exit_code == 0, r.output
    assert execs == [("journalctl", ["journalctl", "-u", "jupyter-ann.service", "-n", "5", "-f"])]
    run("logs")
    assert execs[-1][1] == ["journalctl", "-u", paths.HUB_UNIT, "-n", "50"]


def test_an_unknown_log_is_one_line_and_exit_1(accounts, monkeypatch):
    monkeypatch.setattr(ops.os, "execvp", lambda file, argv: pytest.fail("ran journalctl"))
    r = run("logs", "nobody!")
    assert r.exit_code == 1
    assert r.stderr == "hubstead: error: no log 'nobody!': use hub, proxy, teacher or a hub user's name\n"


@pytest.fixture
def root(monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(ops.config, "load", lambda: {"https": {"mode": "off"}})


class DownHub:
    def users(self):
        raise HubAPIError(0, "the hub does not answer")


def test_status_shows_what_it_can_when_the_hub_does_not_answer(root, monkeypatch):
    given = []
    monkeypatch.setattr(ops, "HubAPI", DownHub)
    monkeypatch.setattr(machine_status, "gather",
                        lambda effective, hub_users: given.append(hub_users) or {"users": None})
    r = run("status", "--json")
    assert r.exit_code == 0, r.output
    assert given == [None] and json.loads(r.stdout) == {"users": None}


def test_status_passes_the_hubs_users_on(root, monkeypatch):
    given = []
    monkeypatch.setattr(ops, "HubAPI", lambda: type("Hub", (), {"users": lambda self: [{"name": "ann"}]})())
    monkeypatch.setattr(machine_status, "gather", lambda effective, hub_users: given.append(hub_users) or {})
    monkeypatch.setattr(machine_status, "format_status", lambda info: "the screen")
    r = run("status")
    assert r.exit_code == 0 and r.stdout == "the screen\n" and given == [[{"name": "ann"}]]


@pytest.mark.parametrize(("results", "code"), [
    ([doctor.Result("ok", "fine"), doctor.Result("warn", "hmm", "look")], 0),
    ([doctor.Result("ok", "fine"), doctor.Result("fail", "broken", "mend it")], 1),
])
def test_doctor_exits_1_only_when_a_check_fails(root, monkeypatch, results, code):
    monkeypatch.setattr(doctor, "run", lambda effective: results)
    r = run("doctor")
    assert r.exit_code == code
    assert r.stdout.splitlines()[-1] == f"{code} failed, {1 - code} warnings, 1 ok"


def test_status_and_doctor_need_root(monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    for command in ("status", "doctor"):
        r = run(command)
        assert r.exit_code == 1 and r.stderr.startswith("hubstead: error: this command must run as root")
