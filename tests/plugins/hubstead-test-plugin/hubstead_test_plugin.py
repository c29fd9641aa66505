"""Hubstead's test plugin: one hook of each kind a test can observe on a booted target."""

import os
import pwd
from pathlib import Path

from hubstead.config.plugins import hookimpl
from hubstead.core import usernames

# What the tests look for.
USER_PACKAGE = "inflection"
ENV_NAME, ENV_VALUE = "HUBSTEAD_TEST_PLUGIN", "hub-setting-from-the-plugin"
WELCOME_FILE = "welcome-from-plugin.txt"
CULL_TIMEOUT = 7200  # what it sets at install, unless the admin set one
POST_INSTALL_MARKER = Path("/run/hubstead-test-plugin-post-install")


@hookimpl
def hubstead_config_post_install(config):
    config.setdefault("services", {}).setdefault("cull", {}).setdefault("timeout", CULL_TIMEOUT)


@hookimpl
def hubstead_post_install():
    POST_INSTALL_MARKER.write_text("ran\n")


@hookimpl
def hubstead_extra_user_pip_packages():
    return [USER_PACKAGE]


@hookimpl
def hubstead_custom_jupyterhub_config(c):
    # Every user server gets it in its environment, which a kernel can read.
    c.Spawner.environment.update({ENV_NAME: ENV_VALUE})


@hookimpl
def hubstead_new_user(username):
    account = pwd.getpwnam(usernames.unix_name(username))
    welcome = Path(account.pw_dir) / WELCOME_FILE
    welcome.write_text(f"Welcome, {username}!\n")
    welcome.chmod(0o644)
    os.chown(welcome, account.pw_uid, account.pw_gid)
