"""config.yaml -> JupyterHub traitlets.

``jupyterhub_settings`` is pure (a config and the secrets in, ``{Class: {trait:
value}}`` out) so it can be tested table-style; ``apply`` is what the hub's
``jupyterhub_config.py`` calls at start, so a hub restart is all a reload needs.
"""

import asyncio
import json
import os
import sqlite3
import sys
from typing import cast

import bcrypt
import sqlalchemy
from tornado.httpclient import AsyncHTTPClient

from hubstead import config
from hubstead.config import plugins, schema
from hubstead.config.model import Cull, Settings
from hubstead.core import credentials, paths, state, systemd, usernames
from hubstead.hub import authenticator
from hubstead.hub.spawner import SYSADMIN_SERVER_SCOPE

CULLER_SERVICE = "idle-culler"
CLI_SERVICE = "hubstead-cli"
TEACHER_SERVICE = "teacher"
TRAEFIK_API_USER = "hubstead"
DEFAULT_URLS = {"lab": "/lab", "notebook": "/tree"}
TRAEFIK_API_HASH_ROUNDS = 4  # bcrypt's minimum
SQLITE_BUSY_MS = 5000
TOKEN_MAX_SECONDS = 90 * 24 * 3600  # a term
READINESS_POLL_SECONDS = 0.2
TEACHER_ROLE = "teacher"
# What a teacher (users.admin) may do in the hub: manage users, classes and servers, use
# JupyterHub's admin page and the teacher's page, and help a student inside their server.
# Not JupyterHub's admin role: that holds tokens for every user and access to every server,
# and a token or a server of a users.sudoers member is root. Sysadmins (users.sudoers) are
# the hub's admins, which JupyterHub keeps non-admins from renaming or promoting; their
# servers open only with a scope they alone hold (spawner.SYSADMIN_SERVER_SCOPE).
TEACHER_SCOPES = [
    "admin-ui", "admin:users", "admin:groups", "servers", "access:servers",
    "list:services", "read:services", f"access:services!service={TEACHER_SERVICE}",
]


def _culler(cull: Cull) -> tuple[list, list]:
    if not cull["enabled"]:
        return [], []
    command = [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={cull['timeout']}",
        f"--cull-every={cull['every']}",
        f"--concurrency={cull['concurrency']}",
        f"--max-age={cull['max_age']}",
    ]
    if cull["users"]:
        command.append("--cull-users")
    scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    if cull["users"]:
        scopes.append("admin:users")
    return (
        [{"name": CULLER_SERVICE, "command": command}],
        [{"name": "idle-culler-role", "scopes": scopes, "services": [CULLER_SERVICE]}],
    )


def traefik_api_hash(password: str) -> str:
    """The hash traefik checks the hub's API password against, on every API call (the hub
    makes several per route). The password is a long random secret, which no hash cost
    protects better, so bcrypt's lowest: its default (12) costs traefik 0.3 CPU-s a call,
    and a class starting at once timed the proxy API out."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=TRAEFIK_API_HASH_ROUNDS)).decode()


def jupyterhub_settings(effective: Settings, hub_secrets: dict) -> dict:
    users = effective["users"]
    http, https = effective["http"], effective["https"]
    # With HTTPS on, the hub's routes go on traefik's https entrypoint; port 80 only
    # redirects (and answers ACME challenges).
    public = (f"https://{https['address']}:{https['port']}" if https["mode"] != "off"
              else f"http://{http['address']}:{http['port']}")
    env = effective["user_environment"]
    limits = effective["limits"]
    culler_services, culler_roles = _culler(effective["services"]["cull"])
    settings = {
        "JupyterHub": {
            "bind_url": public + effective["base_url"],
            "hub_bind_url": f"http://127.0.0.1:{paths.HUB_PORT}",
            # User servers are their own systemd units: they outlive hub restarts.
            "cleanup_servers": False,
            "db_url": f"sqlite:///{paths.HUB_DB}",
            "cookie_secret_file": str(paths.COOKIE_SECRET),
            "proxy_class": "hubstead.hub.proxy.HubsteadTraefikProxy",
            "authenticator_class": authenticator.for_type(effective["auth"]["type"]),
            "spawner_class": "hubstead.hub.spawner.HubsteadSpawner",
            "services": [
                {"name": CLI_SERVICE, "api_token": hub_secrets["cli_api_token"]},
                {
                    "name": TEACHER_SERVICE,
                    "url": f"http://127.0.0.1:{paths.TEACHER_PORT}",
                    "command": [sys.executable, "-m", "hubstead.classroom.teacher"],
                    "oauth_no_confirm": True,
                },
                *culler_services,
            ],
            "custom_scopes": {SYSADMIN_SERVER_SCOPE: {"description": "Use a sysadmin's (users.sudoers) own server"}},
            # Each list is the role's exact membership: taking a name out of users.admin or
            # users.sudoers takes the role away at the next hub start.
            "load_roles": [
                # The teacher's page checks who uses it and acts with admin rights.
                {"name": "admin", "users": sorted(users["sudoers"]), "services": [CLI_SERVICE, TEACHER_SERVICE]},
                {"name": TEACHER_ROLE, "scopes": TEACHER_SCOPES, "users": sorted(users["admin"])},
                {"name": "sysadmin", "scopes": [f"{SYSADMIN_SERVER_SCOPE}!user"], "users": sorted(users["sudoers"])},
                *culler_roles,
            ],
            "template_paths": [authenticator.WEB_TEMPLATES],
            "template_vars": {"hubstead_passwords": effective["auth"]["type"] == "hubstead"},
            # Starts queue in HubsteadSpawner (limits.concurrent_spawns) instead of being
            # refused with "429 Too many users trying to log in".
            "concurrent_spawn_limit": 0,
            # No API token lives forever (a leaked one would): at most this long.
            "token_expires_in_max_seconds": TOKEN_MAX_SECONDS,
        },
        "TraefikProxy": {
            "should_start": False,  # traefik is its own systemd unit
            "traefik_api_url": f"http://127.0.0.1:{paths.TRAEFIK_API_PORT}",
            "traefik_api_username": TRAEFIK_API_USER,
            "traefik_api_password": hub_secrets["traefik_api_password"],
            "traefik_entrypoint": "https" if https["mode"] != "off" else "http",
        },
        "TraefikFileProviderProxy": {"dynamic_config_file": str(paths.HUB_ROUTES_FILE)},
        "Authenticator": {
            "allowed_users": set(users["allowed"]),
            "blocked_users": set(users["banned"]),
            # Users an admin added (page, API, CLI) may log in without also being listed.
            "allow_existing_users": True,
            "username_pattern": usernames.HUB_NAME_PATTERN,
            # Traits of authenticator.UnixAccountsMixin, which every authenticator gets.
            "removal_home": users["removal"]["home"],
            "removal_account": users["removal"]["account"],
            "sudoers": sorted(users["sudoers"]),
        },
        "HubsteadAuthenticator": {
            "lockout_max_failures": users["lockout"]["max_failures"],
            "lockout_minutes": users["lockout"]["minutes"],
        },
        "Spawner": {
            "default_url": DEFAULT_URLS[env["default_app"]],
            "mem_limit": schema.memory_bytes(limits["memory"]),
            "cpu_limit": limits["cpu"],
            # A student's ~/.jupyter config must not change how their server runs.
            "disable_user_config": True,
            # Root's settings and kernels, outside the environment (its owner's).
            "environment": {"JUPYTER_CONFIG_PATH": str(paths.SERVER_CONFIG_DIR),
                            "JUPYTER_PATH": str(paths.SERVER_DATA_DIR),
                            "PYTHONPATH": str(paths.SERVER_PYTHON_DIR)},
        },
        "HubsteadSpawner": {
            "sudoers": sorted(users["sudoers"]),
            "teachers": sorted(users["admin"]),
            "group_limits": limits["groups"],
            "extra_user_groups": users["extra_user_groups"],
            "concurrent_spawns": limits["concurrent_spawns"] or 0,
        },
    }
    # auth.<Class>.<trait>: passed through to the authenticator's classes as is.
    for cls, traits in effective["auth"].items():
        if cls != "type":
            settings.setdefault(cls, {}).update(cast(dict, traits))
    ancestors = effective["hub"]["csp_frame_ancestors"]
    if ancestors:
        # Both the hub's pages and each user's JupyterLab must allow being framed.
        tornado = {"headers": {"Content-Security-Policy": "frame-ancestors 'self' " + " ".join(ancestors)}}
        settings["JupyterHub"]["tornado_settings"] = tornado
        settings["Spawner"]["args"] = [f"--ServerApp.tornado_settings={json.dumps(tornado)}"]
    return settings


# Sections the proxy serves: the hub follows them as last applied (`hubstead config apply`),
# so a restart (a reboot, say) before an apply never points the hub at a proxy that isn't there.
PROXY_SECTIONS = schema.sections_applied_by("proxy")


def _sqlite_for_concurrent_writes(dbapi_connection, _record) -> None:
    """Each connection to the hub's SQLite database: write-ahead log (readers never wait
    for the writer; one fsync per checkpoint, not per commit, while staying consistent
    across crashes with synchronous=NORMAL), and wait for a lock instead of failing."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={SQLITE_BUSY_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


def apply(c, config_file=paths.CONFIG_FILE) -> None:
    """Called from jupyterhub_config.py with its config object ``c``."""
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _sqlite_for_concurrent_writes)
    effective = config.load(config_file)
    applied = state.load_applied() or {}
    sections = cast(dict, effective)  # sections named by the schema, not literals
    for section in PROXY_SECTIONS:
        sections[section] = applied.get(section, sections[section])
    hub_secrets = credentials.load()
    settings = jupyterhub_settings(effective, hub_secrets)
    # The routes file the hub keeps wins over the proxy's own settings at start: an
    # override is the only way to replace the hash an earlier hub wrote there.
    api_user = f"{TRAEFIK_API_USER}:{traefik_api_hash(hub_secrets['traefik_api_password'])}"
    settings["TraefikProxy"]["extra_dynamic_config"] = {
        "http": {"middlewares": {"auth_api": {"basicAuth": {"users": [api_user]}}}}}
    for cls, traits in settings.items():
        for trait, value in traits.items():
            setattr(c[cls], trait, value)
    plugins.hook(effective).hubstead_custom_jupyterhub_config(c=c)
    if os.environ.get("NOTIFY_SOCKET"):  # Type=notify: systemd waits for the hub to answer
        _background.add(asyncio.get_running_loop().create_task(
            _notify_when_answering(f"http://127.0.0.1:{paths.HUB_PORT}{effective['base_url']}hub/health")))


_background: set = set()  # keeps the readiness task referenced until it is done


async def _notify_when_answering(url: str) -> None:
    """READY=1 once the hub's own health endpoint answers, so `systemctl restart
    jupyterhub` (a reload, an upgrade, the role's handler) returns when it is really up."""
    client = AsyncHTTPClient()
    while True:
        try:
            if (await client.fetch(url, raise_error=False, request_timeout=5)).code == 200:
                break
        except OSError:
            pass
        await asyncio.sleep(READINESS_POLL_SECONDS)
    systemd.notify_ready()
