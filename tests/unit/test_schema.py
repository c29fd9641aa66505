"""What is derived from the settings schema: the README's tables, which roles a change
needs, memory sizes as the spawner reads them, and config.yaml written back as the admin
wrote it."""

import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from hubstead import config
from hubstead.cli import main as cli
from hubstead.config import ConfigError, doc, schema
from hubstead.core import paths
from hubstead.hub.spawner import HubsteadSpawner

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_tables_are_the_schema():
    text = README.read_text()
    assert doc.update(text) == text, "run: python -m hubstead.config.doc README.md"


def test_a_section_without_a_table_is_an_error():
    with pytest.raises(ValueError, match="no settings table of"):
        doc.update("")


def test_every_role_a_setting_names_exists():
    assert {role for s in schema.SCHEMA for role in s.roles} <= set(schema.ROLES)


def test_machine_keys_are_those_a_reload_cannot_apply():
    changed = ["http.port", "https.mode", "limits.memory", "user_environment.pip_packages",
               "user_environment.default_app"]
    assert schema.machine_keys(changed) == ["http.port", "https.mode", "user_environment.pip_packages"]
    assert schema.roles_for(["limits.memory"]) == ["hub"]
    assert schema.roles_for(["https.mode", "user_environment.pip_packages"]) == ["user_env", "proxy", "hub"]
    assert schema.roles_for(["limits.groups.lab.memory", "auth.GitHubOAuthenticator.client_id"]) == ["hub"]


def _spawner_memory(size):
    fake = SimpleNamespace(_global_limits=(None, None), group_limits={"lab": {"memory": size}},
                           log=logging.getLogger("test"))
    return HubsteadSpawner.limits_for(fake, {"lab": {}})[0]


@pytest.mark.parametrize("size", ["512", "2 G", "1g", "-1G", 512])
def test_a_size_the_spawner_cannot_read_is_refused_by_the_config(size):
    with pytest.raises(ConfigError, match="use a size like 512M"):
        config.validate({"limits": {"memory": size}})
    assert _spawner_memory(size) is None  # what the spawner can't read sets no limit


def test_config_and_spawner_read_a_size_alike():
    effective = config.validate({"limits": {"memory": "1.5G", "groups": {"lab": {"memory": "1.5G"}}}})
    assert _spawner_memory(effective["limits"]["groups"]["lab"]["memory"]) == 3 * 2**29


ADMIN_WROTE = """\
# Course hub, autumn term.
users:
  admin: [ann]  # the teachers

# Small machine: keep servers small.
limits:
  memory: 1G  # raised after week 3
http:
  port: 8080
"""


def test_config_set_keeps_the_admins_comments_and_order(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CONFIG_FILE", tmp_path / "config.yaml")
    monkeypatch.setattr(paths, "CONFIG_LOCK", tmp_path / ".config.lock")
    monkeypatch.setattr(paths, "APPLIED_CONFIG", tmp_path / "applied-config.json")
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    paths.CONFIG_FILE.write_text(ADMIN_WROTE)
    result = CliRunner().invoke(cli.config_main, ["set", "base_url", "/course/"])
    assert result.exit_code == 0, result.output
    text = paths.CONFIG_FILE.read_text()
    comments = [line.strip() for line in ADMIN_WROTE.splitlines() if "#" in line]
    assert [line.strip() for line in text.splitlines() if "#" in line] == comments
    assert list(yaml.safe_load(text)) == ["users", "limits", "http", "base_url"]
    assert config.load() == config.validate(yaml.safe_load(ADMIN_WROTE) | {"base_url": "/course/"})


def test_strings_are_written_so_that_they_read_back_as_strings(tmp_path):
    path, lock = tmp_path / "config.yaml", tmp_path / "lock"
    with config.edit(path, lock) as data:
        data["users"] = {"admin": ["yes", "on", "0755", "null", "1.5"]}
    assert config.load_user_config(path) == {"users": {"admin": ["yes", "on", "0755", "null", "1.5"]}}


def test_the_config_model_and_the_cli_helpers_leave_jupyterhub_and_ansible_unimported():
    code = ("import sys, hubstead.config, hubstead.cli.util, hubstead.config.doc; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jupyterhub', 'tornado', 'ansible_runner') "
            "or m in ('hubstead.hub.authenticator', 'hubstead.machine.converge')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
