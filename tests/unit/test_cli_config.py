"""`hubstead config` verbs on a config.yaml in a temporary directory (no machine changes:
the verbs that restart or converge are covered by the integration tests)."""


import pytest
import yaml
from click.testing import CliRunner

from hubstead.cli import main as cli
from hubstead.core import paths


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CONFIG_FILE", tmp_path / "config.yaml")
    monkeypatch.setattr(paths, "CONFIG_LOCK", tmp_path / ".config.lock")
    monkeypatch.setattr(paths, "APPLIED_CONFIG", tmp_path / "applied-config.json")
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli.config_main, list(args))


def stored():
    return yaml.safe_load(paths.CONFIG_FILE.read_text()) if paths.CONFIG_FILE.exists() else {}


@pytest.mark.parametrize("key, text, value", [
    ("limits.memory", "2G", "2G"),
    ("limits.cpu", "1.5", 1.5),
    ("http.port", "8080", 8080),
    ("base_url", "/course/", "/course/"),
    ("services.cull.enabled", "false", False),
    ("services.cull.timeout", "120", 120),
    ("users.allowed", "[ann, bob]", ["ann", "bob"]),
    ("limits.groups.lab.memory", "4G", "4G"),
    ("users.extra_user_groups.docker", "[ann]", ["ann"]),
    ("hub.csp_frame_ancestors", "[https://lms.example.edu]", ["https://lms.example.edu"]),
    ("user_environment.default_app", "notebook", "notebook"),
])
def test_set_show_unset_round_trip(key, text, value):
    r = run("set", key, text)
    assert r.exit_code == 0, r.output
    shown = run("show", key)
    assert yaml.safe_load(shown.output) == value
    assert run("unset", key).exit_code == 0
    assert stored() == {}


def test_set_says_what_changed_and_how_to_apply():
    r = run("set", "limits.memory", "2G")
    assert "limits.memory: null → 2G" in r.output
    assert "sudo hubstead config reload hub" in r.output
    r = run("set", "http.port", "8080")
    assert "sudo hubstead config apply (re-runs: proxy" in r.output


@pytest.mark.parametrize("args, message", [
    (("set", "limits.memroy", "2G"), "limits.memroy: unknown setting"),
    (("set", "limits.memory", "2 gigs"), "limits.memory: '2 gigs' is not allowed; use a size like"),
    (("set", "http.port", "http"), "http.port: 'http' is not allowed; use an integer from 1 to 65535"),
    (("set", "user_environment.manager", "pixi"), "'pixi' is not allowed; use one of conda, venv"),
    (("unset", "limits.memory"), "limits.memory: not set"),
    (("remove-item", "users.admin", "nobody"), "users.admin: not set"),
    (("add-item", "http.port", "1"), "http.port: [1] is not allowed"),
])
def test_bad_input_is_one_line_nonzero_and_changes_nothing(args, message):
    run("set", "limits.cpu", "2")
    before = paths.CONFIG_FILE.read_text()
    r = run(*args)
    assert r.exit_code == 1
    assert message in r.output
    assert r.output.strip().count("\n") == 0
    assert paths.CONFIG_FILE.read_text() == before


def test_add_and_remove_item():
    assert run("add-item", "users.admin", "ann").exit_code == 0
    assert run("add-item", "users.admin", "bob").exit_code == 0
    assert stored() == {"users": {"admin": ["ann", "bob"]}}
    assert run("remove-item", "users.admin", "ann").exit_code == 0
    assert stored() == {"users": {"admin": ["bob"]}}


def test_show_is_effective_and_diff_only_what_was_changed():
    run("set", "limits.memory", "2G")
    run("set", "http.port", "80")  # set to its default: not a difference
    full = yaml.safe_load(run("show").output)
    assert full["limits"]["memory"] == "2G" and full["services"]["cull"]["timeout"] == 3600
    assert yaml.safe_load(run("show", "--diff").output) == {"limits": {"memory": "2G"}}


def test_show_redacts_secrets():
    paths.CONFIG_FILE.write_text(yaml.safe_dump({"auth": {
        "type": "github", "GitHubOAuthenticator": {"client_id": "cid", "client_secret": "very-secret"}}}))
    for args in (("show",), ("show", "--diff"), ("show", "auth.GitHubOAuthenticator.client_secret")):
        out = run(*args).output
        assert "very-secret" not in out and "<redacted>" in out


def test_show_of_a_known_but_unset_key_and_of_an_unknown_key():
    assert yaml.safe_load(run("show", "limits.groups.lab.memory").output) is None
    r = run("show", "limits.nope")
    assert r.exit_code == 1 and "limits.nope: unknown setting" in r.output


def test_authenticator_traits_are_typed_by_the_trait():
    run("set", "auth.type", "firstuse")
    r = run("set", "auth.FirstUseAuthenticator.create_users", "true")
    assert r.exit_code == 0, r.output
    assert stored()["auth"]["FirstUseAuthenticator"] == {"create_users": True}
    r = run("set", "auth.FirstUseAuthenticator.no_such", "1")
    assert r.exit_code == 1 and "FirstUseAuthenticator has no setting 'no_such'" in r.output


def test_dry_run_shows_the_change_and_writes_nothing():
    r = run("set", "--dry-run", "limits.memory", "2G")
    assert r.exit_code == 0
    assert "dry run: nothing was written" in r.output and "limits.memory: null → 2G" in r.output
    assert "the hub would restart" in r.output
    assert not paths.CONFIG_FILE.exists()


def test_not_root_is_refused(monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    r = run("set", "limits.memory", "2G")
    assert r.exit_code == 1 and "must run as root" in r.output


def test_hubstead_config_is_the_same_group():
    assert cli.main.commands["config"] is cli.config_main


def test_a_secret_from_stdin_never_touches_the_command_line_and_argv_gets_a_warning():
    key = "auth.GitHubOAuthenticator.client_secret"
    assert run("set", "auth.type", "github").exit_code == 0
    r = CliRunner().invoke(cli.config_main, ["set", key, "--value-stdin"], input="from-stdin-123\n")
    assert r.exit_code == 0, r.output
    assert stored()["auth"]["GitHubOAuthenticator"]["client_secret"] == "from-stdin-123"
    assert "warning" not in r.output and "from-stdin-123" not in r.output
    r = run("set", key, "from-argv-456")
    assert r.exit_code == 0
    assert f"warning: {key} is a secret" in r.output and f"config set {key} --value-stdin" in r.output
    assert run("set", "limits.memory", "2G").output.count("warning") == 0


def test_set_needs_exactly_one_value():
    assert run("set", "limits.memory").exit_code == 1
    r = CliRunner().invoke(cli.config_main, ["set", "limits.memory", "2G", "--value-stdin"], input="3G\n")
    assert r.exit_code == 1 and "give a VALUE or --value-stdin" in r.output
    assert stored() == {}


def test_a_change_is_audited_by_key_name_never_by_a_secret_value(audited):
    key = "auth.GitHubOAuthenticator.client_secret"
    run("set", "auth.type", "github")
    CliRunner().invoke(cli.config_main, ["set", key, "--value-stdin"], input="very-secret-789\n")
    run("set", "--dry-run", "limits.memory", "2G")  # a dry run changes nothing: not audited
    assert [(e["HUBSTEAD_EVENT"], e["HUBSTEAD_TARGET"]) for e in audited] == [
        ("config-changed", "auth.type"), ("config-changed", key)]
    assert "very-secret-789" not in repr(audited)
