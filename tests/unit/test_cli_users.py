"""`hubstead users` and the CLI's errors, with the hub's API in memory."""

import pytest
from click.testing import CliRunner
from fakehub import FakeHub

from hubstead.cli import main as cli
from hubstead.core import unixusers
from hubstead.core.passwords import PasswordStore
from hubstead.hub.hubapi import HubAPIError


def second_creation(name):
    raise AssertionError("users add must leave the Unix account to the hub's add_user hook")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    hub = FakeHub()
    monkeypatch.setattr(unixusers, "ensure", second_creation)  # and no test makes one here
    monkeypatch.setattr(cli, "HubAPI", lambda: hub)
    monkeypatch.setattr(cli, "PasswordStore", lambda: PasswordStore(tmp_path / "passwords.json"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    return hub


def run(*args, input=None):
    return CliRunner().invoke(cli.main, list(args), input=input)


def test_a_password_from_stdin_is_kept_and_a_generated_one_changed_at_first_login(hub):
    r = run("users", "add", "ann", "--password-stdin", input="anns-own-pw\n")
    assert r.exit_code == 0, r.output
    assert r.output == "added: ann (Unix account jupyter-ann)\n"
    r = run("users", "add", "bob", "--generate")
    assert r.exit_code == 0, r.output
    password = r.stdout.splitlines()[1].removeprefix("password: ")
    store = cli.PasswordStore()
    assert store.verify("ann", "anns-own-pw") and not store.account("ann").must_change
    assert store.verify("bob", password) and store.account("bob").must_change


def test_adding_a_user_who_has_a_password_keeps_it(hub):
    run("users", "add", "ann", "--password-stdin", input="anns-own-pw\n")
    r = run("users", "add", "ann", "--generate")
    assert r.exit_code == 0
    assert r.output.startswith("already there: ann (Unix account jupyter-ann); password unchanged")
    assert "password: " not in r.output and cli.PasswordStore().verify("ann", "anns-own-pw")


def test_import_prints_the_initial_passwords_that_must_be_changed(hub, tmp_path):
    csv = tmp_path / "class.csv"
    csv.write_text("ann\nbob,bobs-initial-1\nBad Name!\n")
    r = run("users", "import", str(csv), "--group", "lab")
    assert r.exit_code == 0, r.output
    assert "line 3: Bad Name!: refused: invalid user name" in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "username,password" and lines[2] == "bob,bobs-initial-1"
    store = cli.PasswordStore()
    assert store.account("ann").must_change and store.account("bob").must_change
    assert hub.groups == {"lab": {"ann", "bob"}}


@pytest.mark.parametrize("args, message", [
    (("users", "add", "Bad Name!"), "invalid user name 'Bad Name!'"),
    (("users", "add", "ann", "--password-stdin"), "password too short"),
    (("users", "remove", "nobody"), "no hub user 'nobody'"),
    (("users", "reset-password", "nobody"), "no hub user 'nobody'"),
])
def test_an_expected_error_is_one_line_and_exit_1(hub, args, message):
    r = run(*args, input="abc\n")
    assert r.exit_code == 1
    assert r.output.startswith("hubstead: error: ") and message in r.output
    assert r.output.strip().count("\n") == 0


def test_a_hub_that_does_not_answer_is_one_line(hub, monkeypatch):
    def down(*args, **kwargs):
        raise HubAPIError(0, "the hub does not answer at http://127.0.0.1:881/hub/api")

    monkeypatch.setattr(hub, "request", down)
    r = run("users", "list")
    assert (r.exit_code, r.output) == (1, "hubstead: error: the hub does not answer at http://127.0.0.1:881/hub/api\n")


def test_a_bug_keeps_its_traceback(hub, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not the admin's mistake")

    monkeypatch.setattr(hub, "request", bug)
    r = run("users", "add", "ann")
    assert isinstance(r.exception, RuntimeError) and "hubstead: error" not in r.output


def test_upgrade_reruns_the_installer_shipped_in_the_package(monkeypatch):
    from hubstead.core import paths

    seen = {}
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: seen.update(argv=argv))
    CliRunner().invoke(cli.main, ["upgrade", "--from", "/srv/hubstead-src"])
    assert seen["argv"][1:] == [str(paths.BOOTSTRAP), "--from", "/srv/hubstead-src"]
    assert paths.BOOTSTRAP.read_text().startswith("#!")  # the installer is in the wheel
