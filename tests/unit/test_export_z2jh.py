"""`hubstead export z2jh`: a hub configured with every kind of setting, written as Zero to
JupyterHub values, checked with the chart's own schema and defaults (shipped in the
package), on a config.yaml in a temporary directory."""

import copy
import stat

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from packaging.requirements import Requirement
from traitlets import HasTraits

from hubstead import config
from hubstead.cli import main as cli
from hubstead.config import schema
from hubstead.core import paths
from hubstead.export import z2jh

SECRET = "gh-secret-0123456789"
SNIPPET_SECRET = "snippet-secret-9876"

FULL = {
    "base_url": "/course/",
    "http": {"port": 8080},
    "auth": {"type": "github",
             "GitHubOAuthenticator": {"client_id": "abc123", "client_secret": SECRET,
                                      "oauth_callback_url": "https://hub.example.edu/course/hub/oauth_callback"}},
    "users": {"admin": ["tess"], "allowed": ["ann", "bob"], "banned": ["mallory"], "sudoers": ["root-ann"],
              "extra_user_groups": {"docker": ["ann"]},
              "lockout": {"max_failures": 3, "minutes": 5},
              "removal": {"home": "delete", "account": "delete"}},
    "limits": {"memory": "1.5G", "cpu": 1, "concurrent_spawns": 4,
               "groups": {"big": {"memory": "4G", "cpu": 2}, "bigger": {"memory": "8G"}, "small": {"memory": "512M"}}},
    "user_environment": {"manager": "conda", "default_app": "notebook",
                         "pip_packages": ["otter-grader>=5"], "conda_packages": ["scipy", "numpy>=2"]},
    "services": {"cull": {"enabled": True, "timeout": 1800, "every": 300, "concurrency": 3, "users": True,
                          "max_age": 86400}},
    "hub": {"csp_frame_ancestors": ["https://lms.example.edu"]},
    "https": {"mode": "letsencrypt", "hsts": False,
              "letsencrypt": {"email": "it@example.edu", "domains": ["hub.example.edu"], "staging": True}},
}
SNIPPETS = {
    "10-announce.py": 'c.JupyterHub.template_vars = {"announcement": "Exam on Friday"}\n',
    "20-token.py": f'c.GenericOAuthenticator.client_secret = "{SNIPPET_SECRET}"\nc.Spawner.start_timeout = 120\n',
}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A hub's /etc/hubstead in a temporary directory, configured with FULL."""
    monkeypatch.setattr(paths, "CONFIG_FILE", tmp_path / "config.yaml")
    monkeypatch.setattr(paths, "CONFIG_LOCK", tmp_path / ".config.lock")
    monkeypatch.setattr(paths, "JUPYTERHUB_CONFIG_D", tmp_path / "jupyterhub_config.d")
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    paths.JUPYTERHUB_CONFIG_D.mkdir()
    for name, text in SNIPPETS.items():
        (paths.JUPYTERHUB_CONFIG_D / name).write_text(text)
    config.save_user_config(copy.deepcopy(FULL))
    return tmp_path


def export(*args, cwd):
    return CliRunner().invoke(cli.main, ["export", "z2jh", "-o", str(cwd / "out" / "values.yaml"), *args])


def chart_sees(values: dict) -> dict:
    return z2jh.coalesce(values)


def test_a_fully_configured_hub_exports_values_the_chart_schema_accepts(hub):
    (hub / "out").mkdir()
    r = export(cwd=hub)
    assert r.exit_code == 0, r.output
    values = yaml.safe_load((hub / "out" / "values.yaml").read_text())
    schema_doc = yaml.safe_load((z2jh.CHART_DIR / "values.schema.yaml").read_text())
    jsonschema.Draft7Validator(schema_doc).validate(chart_sees(values))
    hub_config = values["hub"]["config"]
    assert hub_config["JupyterHub"]["authenticator_class"] == "github"
    assert hub_config["GitHubOAuthenticator"]["client_id"] == "abc123"
    assert hub_config["Authenticator"]["allowed_users"] == ["ann", "bob"]
    assert hub_config["Authenticator"]["blocked_users"] == ["mallory"]
    assert hub_config["Authenticator"]["admin_users"] == ["root-ann"]
    assert values["hub"]["loadRoles"]["teacher"]["users"] == ["tess"]
    assert values["hub"]["baseUrl"] == "/course/"
    assert values["singleuser"]["defaultUrl"] == "/tree"
    assert values["proxy"]["https"]["hosts"] == ["hub.example.edu"]
    assert "staging" in values["proxy"]["https"]["letsencrypt"]["acmeServer"]
    assert "frame-ancestors 'self' https://lms.example.edu" in str(hub_config["JupyterHub"]["tornado_settings"])
    assert "Exam on Friday" in values["hub"]["extraConfig"]["hubstead-10-announce"]
    recipe = yaml.safe_load((hub / "out" / "image" / "environment.yml").read_text())
    assert {"scipy", "numpy>=2"} <= {d for d in recipe["dependencies"] if isinstance(d, str)}
    assert "otter-grader>=5" in recipe["dependencies"][-1]["pip"]
    assert (hub / "out" / "image" / "apt.txt").exists()


def test_the_teacher_role_is_the_hubs_own_without_the_teachers_page():
    values = z2jh.export(config.validate(copy.deepcopy(FULL)), {}).values
    scopes = values["hub"]["loadRoles"]["teacher"]["scopes"]
    # Teachers still manage users and servers; they are not the chart's admins.
    assert {"admin:users", "admin-ui", "access:servers"} <= set(scopes)
    assert not any("service=" in s for s in scopes)
    assert "tess" not in values["hub"]["config"]["Authenticator"]["admin_users"]


def test_the_report_names_every_setting_and_says_what_cannot_map(hub):
    (hub / "out").mkdir()
    r = export(cwd=hub)
    lines = r.output.splitlines()
    reported = {line.split()[1] if not line.strip().startswith("cannot map") else line.split()[2]
                for line in lines if line.startswith("  ") and line.split()[0] in ("mapped", "approximate", "cannot")}
    assert {s.key for s in schema.SCHEMA} <= reported
    unmapped = {r.key for r in z2jh.export(config.load(), z2jh.read_snippets()).rows if r.status == z2jh.UNMAPPED}
    assert {"http.address", "https.address", "users.removal.home", "users.removal.account",
            "users.extra_user_groups.<group>", "https.letsencrypt.preflight", "users.lockout.max_failures"} <= unmapped
    for key in unmapped:
        assert any(line.split()[:3] == ["cannot", "map", key] for line in lines if line.strip()), key
    assert "To move:" in r.output and "kubectl cp /home/jupyter-<name>/." in r.output


def test_hubsteads_password_store_cannot_map_and_a_stand_in_with_its_lockout_is_used():
    effective = config.validate({"users": {"lockout": {"max_failures": 4, "minutes": 7}}})
    result = z2jh.export(effective, {})
    auth_row = next(r for r in result.rows if r.key == "auth.type")
    assert auth_row.status == z2jh.UNMAPPED and "NativeAuthenticator" in auth_row.where
    native = result.values["hub"]["config"]["NativeAuthenticator"]
    assert (native["allowed_failed_logins"], native["seconds_before_next_try"]) == (4, 420)
    assert chart_sees(result.values)["hub"]["config"]["JupyterHub"]["authenticator_class"] == "native"
    assert any("/hub/authorize" in step for step in result.steps)


def test_secrets_are_placeholders_unless_asked_for(hub):
    (hub / "out").mkdir()
    r = export(cwd=hub)
    written = (hub / "out" / "values.yaml").read_text()
    assert SECRET not in written + r.output and SNIPPET_SECRET not in written + r.output
    assert z2jh.PLACEHOLDER in yaml.safe_load(written)["hub"]["config"]["GitHubOAuthenticator"]["client_secret"]
    assert "auth.GitHubOAuthenticator.client_secret" in r.output
    assert "start_timeout = 120" in written  # the rest of the snippet is kept
    r = export("--with-secrets", "--force", cwd=hub)
    assert r.exit_code == 0, r.output
    written = (hub / "out" / "values.yaml").read_text()
    assert SECRET in written and SNIPPET_SECRET in written
    assert stat.S_IMODE((hub / "out" / "values.yaml").stat().st_mode) == 0o600
    assert SECRET not in r.output


def test_an_existing_output_is_refused_in_one_line_and_nothing_is_written(hub):
    (hub / "out").mkdir()
    (hub / "out" / "values.yaml").write_text("mine\n")
    r = export(cwd=hub)
    assert r.exit_code == 1
    assert "already exists; use --force" in r.output and r.output.strip().count("\n") == 0
    assert (hub / "out" / "values.yaml").read_text() == "mine\n"
    assert not (hub / "out" / "image").exists()
    # A recipe file there counts too: nothing is replaced without --force.
    (hub / "out" / "values.yaml").unlink()
    (hub / "out" / "image").mkdir()
    (hub / "out" / "image" / "apt.txt").write_text("git\n")
    assert export(cwd=hub).exit_code == 1
    assert not (hub / "out" / "values.yaml").exists()
    assert export("--force", cwd=hub).exit_code == 0
    assert (hub / "out" / "image" / "apt.txt").read_text() != "git\n"


def test_a_missing_directory_is_one_line_and_nothing_is_written(hub):
    r = export(cwd=hub)
    assert r.exit_code == 1 and "no such directory" in r.output
    assert not (hub / "out").exists()


def _memory_limit(values: dict, groups: set[str]) -> tuple[str | None, str | None]:
    """(memory limit, guarantee) a member of ``groups`` gets from the chart's values, as
    Spawner.group_overrides applies them (key order, the last one winning)."""
    seen = chart_sees(values)
    limit, guarantee = seen["singleuser"]["memory"].get("limit"), seen["singleuser"]["memory"].get("guarantee")
    overrides = seen["hub"]["config"].get("KubeSpawner", {}).get("group_overrides", {})
    for key in sorted(overrides):
        if set(overrides[key]["groups"]) & groups:
            override = overrides[key]["spawner_override"]
            limit = override.get("mem_limit", limit)
            guarantee = override.get("mem_guarantee", guarantee)
    return limit, guarantee


@pytest.mark.parametrize("groups, expected", [
    (set(), "1.5G"),
    ({"small"}, "1.5G"),  # below the global limit: never less than it, as here
    ({"big"}, "4G"),
    ({"big", "bigger"}, "8G"),  # the most generous of a member's groups
    ({"small", "bigger", "big"}, "8G"),
])
def test_group_limits_give_what_the_hub_gives(groups, expected):
    values = z2jh.export(config.validate(copy.deepcopy(FULL)), {}).values
    assert _memory_limit(values, groups)[0] == expected


def test_changing_a_limit_changes_what_the_chart_uses():
    changed = copy.deepcopy(FULL)
    changed["limits"]["memory"] = "3G"
    changed["limits"]["cpu"] = 0.5
    before = chart_sees(z2jh.export(config.validate(copy.deepcopy(FULL)), {}).values)["singleuser"]
    after = chart_sees(z2jh.export(config.validate(changed), {}).values)["singleuser"]
    assert (before["memory"]["limit"], before["cpu"]["limit"]) == ("1.5G", 1)
    assert (after["memory"]["limit"], after["cpu"]["limit"]) == ("3G", 0.5)
    # Above a group's limit, the global one is what its members get, as here.
    assert _memory_limit(z2jh.export(config.validate(changed), {}).values, {"big"})[0] == "4G"
    changed["limits"]["memory"] = "5G"
    assert _memory_limit(z2jh.export(config.validate(changed), {}).values, {"big"})[0] == "5G"


@pytest.mark.parametrize("memory, groups", [("256M", {}), (None, {"tiny": {"memory": "300M"}})])
def test_no_server_reserves_more_memory_than_its_limit(memory, groups):
    # The chart reserves 1G a server by default; Kubernetes refuses a pod whose
    # reservation is above its limit.
    effective = config.validate({"limits": {"memory": memory, "groups": groups}})
    values = z2jh.export(effective, {}).values
    limit, guarantee = _memory_limit(values, set(groups))
    assert schema.memory_bytes(guarantee) <= schema.memory_bytes(limit)


def test_the_chart_defaults_stand_where_hubstead_has_nothing_to_say():
    values = z2jh.export(config.validate({"user_environment": {"manager": "venv"}}), {}).values
    seen = chart_sees(values)
    assert seen["proxy"]["https"]["enabled"] is False
    assert seen["singleuser"]["memory"]["guarantee"] == z2jh.chart_defaults()["singleuser"]["memory"]["guarantee"]
    assert seen["hub"]["concurrentSpawnLimit"] == z2jh.chart_defaults()["hub"]["concurrentSpawnLimit"]
    assert seen["cull"]["timeout"] == schema.lookup("services.cull.timeout").default


def test_a_venv_environment_becomes_requirements_with_the_charts_jupyterhub():
    effective = config.validate({"user_environment": {"manager": "venv", "pip_packages": ["pandas"]}})
    requirements = z2jh.export(effective, {}).recipe["requirements.txt"].split()
    assert "pandas" in requirements and "jupyterlab>=4,<5" in requirements
    # The image's server talks to the chart's hub (JupyterHub 5.5, chart/SOURCE.md), not to this one's.
    [jupyterhub] = [Requirement(r) for r in requirements if Requirement(r).name == "jupyterhub"]
    assert jupyterhub.specifier.contains("5.5.0") and not jupyterhub.specifier.contains("6.1.0")


def test_a_manual_certificate_becomes_a_tls_secret():
    effective = config.validate({"https": {"mode": "manual", "manual": {"cert": "/etc/ssl/hub/full.pem",
                                                                         "key": "/etc/ssl/hub/key.pem"}}})
    result = z2jh.export(effective, {})
    https = result.values["proxy"]["https"]
    assert (https["type"], https["secret"]["name"]) == ("secret", z2jh.TLS_SECRET)
    assert any(f"kubectl create secret tls {z2jh.TLS_SECRET} --cert=/etc/ssl/hub/full.pem" in s for s in result.steps)


def test_values_the_chart_would_refuse_are_an_error():
    with pytest.raises(z2jh.ExportError, match="the chart's schema refuses cull.timeout"):
        z2jh.validate({"cull": {"timeout": "an hour"}})


def _set(trait, name: str, value) -> None:
    """Set ``value`` on a trait of a throwaway class holding only it: TraitError if its
    type refuses the value."""
    holder = type("Holder", (HasTraits,), {name: copy.copy(trait)})()
    setattr(holder, name, value)


@pytest.mark.parametrize("user_config", [FULL, {}], ids=["github", "hubstead"])
def test_what_the_chart_hands_to_jupyterhub_is_accepted_by_its_classes(user_config):
    # The chart sets hub.config on JupyterHub's classes as it is: each setting must be
    # one of the class's own, of the right type (KubeSpawner's are the Spawner's here).
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import Authenticator
    from jupyterhub.scopes import scope_definitions
    from jupyterhub.spawner import Spawner
    from nativeauthenticator import NativeAuthenticator
    from oauthenticator.github import GitHubOAuthenticator

    classes = {c.__name__: c for c in (JupyterHub, Authenticator, NativeAuthenticator, GitHubOAuthenticator)}
    classes["KubeSpawner"] = Spawner
    values = z2jh.export(config.validate(copy.deepcopy(user_config)), {}).values
    for name, settings in values["hub"]["config"].items():
        traits = classes[name].class_traits(config=True)
        for trait, value in settings.items():
            assert trait in traits, f"{name}.{trait}"
            _set(traits[trait], trait, value)
    spawner_traits = Spawner.class_traits(config=True)
    for override in values["hub"]["config"].get("KubeSpawner", {}).get("group_overrides", {}).values():
        for trait, value in override["spawner_override"].items():
            _set(spawner_traits[trait], trait, value)
    for role in values["hub"].get("loadRoles", {}).values():
        assert {scope.partition("!")[0] for scope in role["scopes"]} <= set(scope_definitions)


def test_packages_for_everyone_from_apt_go_into_the_images_apt_txt():
    result = z2jh.export(config.validate({"user_environment": {"apt_packages": ["pandoc", "graphviz"]}}), {})
    assert result.recipe["apt.txt"].splitlines()[-2:] == ["pandoc", "graphviz"]


MULTI_LINE_SNIPPET = '''c.Spawner.start_timeout = 120
c.GenericOAuthenticator.client_secret = (
    "first-half-of-the-secret"
    "second-half-of-the-secret"
)
c.GenericOAuthenticator.api_token = """
triple-quoted-secret
"""
c.LDAPAuthenticator.lookup_dn_search_password = \\
    "backslashed-secret"
c.JupyterHub.services = [{"name": "grader",
                          "api_token": "service-token-secret"}]
c.JupyterHub.load_roles = [dict(name="x", client_secret="keyword-secret")]
c.Authenticator["client_secret"] = "subscript-secret"
c.Spawner.environment = {"GREETING": "kept-value"}
'''


def test_secrets_written_over_several_lines_of_a_snippet_are_placeholders_too():
    left_out: list[str] = []
    hidden = z2jh._hide_secrets_in_snippet("50-auth.py", MULTI_LINE_SNIPPET, left_out)
    for secret in ("first-half", "second-half", "triple-quoted", "backslashed", "service-token",
                   "keyword-secret", "subscript-secret"):
        assert secret not in hidden
    assert "c.Spawner.start_timeout = 120" in hidden and "kept-value" in hidden
    assert len(left_out) == 6 and compile(hidden, "50-auth.py", "exec")  # still Python the hub can load


def test_a_snippet_python_cannot_read_is_left_out_whole():
    left_out: list[str] = []
    hidden = z2jh._hide_secrets_in_snippet("60-bad.py", 'c.X.client_secret = "oops\n', left_out)
    assert "oops" not in hidden and left_out == [f"{paths.JUPYTERHUB_CONFIG_D.name}/60-bad.py"]

