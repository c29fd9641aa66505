"""Plugins: found by their entry point, called only when config names them, their
packages checked and handed to the roles, their hub config and new-user hooks called
where the hub does that work. Each test installs small real distributions (a
.dist-info and a module) on sys.path, as uv would into the hub's environment."""

import asyncio
import textwrap

import pytest
from traitlets.config import Config

from hubstead import config
from hubstead.config import plugins
from hubstead.core import paths, unixusers
from hubstead.hub import settings as hub_settings
from hubstead.hub.authenticator import UnixAccountsMixin
from hubstead.machine import converge

SECRETS = {"traefik_api_password": "tp", "cli_api_token": "ct"}
CALLS: list = []  # what the plugins' hooks were called with (they append to it)


def install_plugin(site, name: str, body: str) -> None:
    """A distribution ``name`` with module ``name`` (dashes as underscores) as its plugin."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text("from hubstead.config.plugins import hookimpl\n"
                                       "from test_plugins import CALLS\n" + textwrap.dedent(body))
    dist = site / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[hubstead]\nmain = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.forget()
    CALLS.clear()
    yield tmp_path
    plugins.forget()


PACKAGES = """
@hookimpl
def hubstead_extra_user_pip_packages():
    return ["altair>=5"]

@hookimpl
def hubstead_extra_user_conda_packages():
    return ["r-irkernel"]

@hookimpl
def hubstead_extra_apt_packages():
    return ["pandoc"]
"""


def test_a_listed_plugins_packages_reach_the_roles(site):
    install_plugin(site, "course-pack", PACKAGES)

    variables = converge.role_variables(config.validate({
        "plugins": ["course-pack"],
        "user_environment": {"manager": "venv", "pip_packages": ["numpy"], "apt_packages": ["tree"]}}))

    assert variables["hubstead_user_env_pip_packages"] == ["numpy", "altair>=5"]
    assert variables["hubstead_user_env_conda_packages"] == ["r-irkernel"]
    assert variables["hubstead_base_apt_packages"] == ["tree", "pandoc"]


def test_an_installed_plugin_not_listed_in_config_is_not_called(site):
    install_plugin(site, "course-pack", PACKAGES)

    variables = converge.role_variables(config.validate({"user_environment": {"manager": "venv"}}))

    assert variables["hubstead_user_env_pip_packages"] == []
    assert variables["hubstead_base_apt_packages"] == []


def test_a_plugins_package_that_could_be_an_option_is_refused(site):
    install_plugin(site, "sneaky", """
        @hookimpl
        def hubstead_extra_user_pip_packages():
            return ["--index-url=http://elsewhere/simple"]
    """)

    with pytest.raises(config.ConfigError, match="'--index-url=http://elsewhere/simple' is not allowed"):
        converge.role_variables(config.validate({"plugins": ["sneaky"], "user_environment": {"manager": "venv"}}))


def test_the_hub_config_hook_comes_after_hubsteads_settings(site, tmp_path, monkeypatch):
    install_plugin(site, "hub-tweaks", """
        @hookimpl
        def hubstead_custom_jupyterhub_config(c):
            CALLS.append(c.Spawner.default_url)  # Hubstead's, already set
            c.JupyterHub.template_vars = {"announcement": "from the plugin"}
    """)
    config_file = tmp_path / "config.yaml"
    config_file.write_text("plugins: [hub-tweaks]\n")
    monkeypatch.setattr(paths, "APPLIED_CONFIG", tmp_path / "applied.json")
    monkeypatch.setattr(hub_settings.credentials, "load", lambda: SECRETS)
    c = Config()

    hub_settings.apply(c, config_file)

    assert CALLS == ["/lab"]
    assert c.JupyterHub.template_vars == {"announcement": "from the plugin"}


class AcceptsAnyone:
    def add_user(self, user):
        return None


class Hook(UnixAccountsMixin, AcceptsAnyone):
    """The Unix-account hook every authenticator gets, on one that accepts anyone."""


def test_the_new_user_hook_runs_for_a_new_account_only(site, tmp_path, monkeypatch):
    install_plugin(site, "greeter", """
        @hookimpl
        def hubstead_new_user(username):
            CALLS.append(username)
    """)
    config_file = tmp_path / "config.yaml"
    config_file.write_text("plugins: [greeter]\n")
    monkeypatch.setattr(paths, "CONFIG_FILE", config_file)
    accounts = {"old"}  # a Unix account that exists already
    monkeypatch.setattr(unixusers, "exists", lambda unix_name: unix_name.removeprefix("jupyter-") in accounts)
    monkeypatch.setattr(unixusers, "ensure", lambda name: accounts.add(name))

    for name in ("old", "new", "new"):  # JupyterHub adds every user again at each start
        asyncio.run(Hook().add_user(type("User", (), {"name": name})()))

    assert CALLS == ["new"]
