"""config.yaml in, JupyterHub traitlets out (table-driven)."""

import pytest

from hubstead import config
from hubstead.core import paths
from hubstead.hub import settings as hub_settings
from hubstead.hub.authenticator import HubsteadAuthenticator, UnixAccountsMixin

SECRETS = {"traefik_api_password": "tp", "cli_api_token": "ct"}


def settings(user_config):
    return hub_settings.jupyterhub_settings(config.validate(user_config), SECRETS)


@pytest.mark.parametrize("user_config, cls, trait, expected", [
    ({}, "JupyterHub", "bind_url", "http://:80/"),
    ({"http": {"port": 8080, "address": "127.0.0.1"}}, "JupyterHub", "bind_url", "http://127.0.0.1:8080/"),
    ({"base_url": "/course/"}, "JupyterHub", "bind_url", "http://:80/course/"),
    ({}, "JupyterHub", "cleanup_servers", False),  # user servers keep running through hub restarts
    ({}, "TraefikProxy", "traefik_api_password", "tp"),
    ({"users": {"allowed": ["a", "b"]}}, "Authenticator", "allowed_users", {"a", "b"}),
    ({"users": {"banned": ["c"]}}, "Authenticator", "blocked_users", {"c"}),
    ({}, "Authenticator", "allow_existing_users", True),
    ({}, "Spawner", "default_url", "/lab"),
    ({"user_environment": {"default_app": "notebook"}}, "Spawner", "default_url", "/tree"),
    ({"limits": {"memory": "2G", "cpu": 1.5}}, "Spawner", "mem_limit", 2 * 2**30),
    ({"limits": {"memory": "2G", "cpu": 1.5}}, "Spawner", "cpu_limit", 1.5),
    ({}, "Spawner", "disable_user_config", True),  # a user's own files can't loosen the server's settings
    ({"users": {"sudoers": ["b", "a"]}}, "HubsteadSpawner", "sudoers", ["a", "b"]),
])
def test_mapping(user_config, cls, trait, expected):
    assert settings(user_config)[cls][trait] == expected


def test_cli_service_is_admin_with_its_token():
    hub = settings({})["JupyterHub"]
    assert {"name": "hubstead-cli", "api_token": "ct"} in hub["services"]
    (admin,) = [r for r in hub["load_roles"] if r["name"] == "admin"]
    assert admin["services"] == ["hubstead-cli", "teacher"]


def test_teachers_hold_no_permission_that_acts_as_another_user():
    from jupyterhub.scopes import expand_scopes

    roles = settings({"users": {"admin": ["tea"], "sudoers": ["sam"]}})["JupyterHub"]["load_roles"]
    members = {r["name"]: r.get("users") for r in roles}
    assert members["teacher"] == ["tea"] and members["admin"] == ["sam"] and members["sysadmin"] == ["sam"]
    (teacher,) = [r for r in roles if r["name"] == "teacher"]
    granted = expand_scopes(teacher["scopes"])
    # What a teacher does: the admin page, users, classes, servers, the teacher's page.
    assert {"admin-ui", "admin:users", "admin:groups", "access:servers", "delete:servers",
            "access:services!service=teacher"} <= granted
    # What would let them be someone else: tokens for others, server state, the proxy.
    assert not granted & {"tokens", "admin:server_state", "proxy", "shutdown", "shares"}


def test_teacher_page_is_a_managed_service_behind_oauth():
    hub = settings({})["JupyterHub"]
    (teacher,) = [s for s in hub["services"] if s["name"] == "teacher"]
    assert teacher["url"] == f"http://127.0.0.1:{paths.TEACHER_PORT}"
    assert teacher["command"][1:] == ["-m", "hubstead.classroom.teacher"]


def test_lockout_and_removal_policy_reach_the_authenticator():
    out = settings({"users": {"lockout": {"max_failures": 3, "minutes": 5},
                              "removal": {"home": "delete", "account": "delete"}}})
    assert out["HubsteadAuthenticator"] == {"lockout_max_failures": 3, "lockout_minutes": 5}
    assert out["Authenticator"]["removal_home"] == "delete"
    assert out["Authenticator"]["removal_account"] == "delete"


def test_culler_on_by_default_with_its_settings():
    hub = settings({"services": {"cull": {"timeout": 120, "every": 30, "users": True}}})["JupyterHub"]
    (culler,) = [s for s in hub["services"] if s["name"] == "idle-culler"]
    assert "--timeout=120" in culler["command"] and "--cull-every=30" in culler["command"]
    assert "--cull-users" in culler["command"]
    (role,) = [r for r in hub["load_roles"] if r["name"] == "idle-culler-role"]
    assert "delete:servers" in role["scopes"] and "admin:users" in role["scopes"]


def test_culler_off():
    hub = settings({"services": {"cull": {"enabled": False}}})["JupyterHub"]
    assert [s["name"] for s in hub["services"]] == ["hubstead-cli", "teacher"]


def test_default_authenticator_is_hubsteads_own():
    assert settings({})["JupyterHub"]["authenticator_class"] is HubsteadAuthenticator


def test_other_authenticators_get_unix_accounts_too():
    cls = settings({"auth": {"type": "firstuse"}})["JupyterHub"]["authenticator_class"]
    assert issubclass(cls, UnixAccountsMixin)
    assert cls.__name__ == "FirstUseAuthenticator"


def test_unknown_authenticator_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown authenticator 'nosuch'; use one of .*hubstead"):
        settings({"auth": {"type": "nosuch"}})


def test_auth_passthrough_reaches_the_named_class():
    out = settings({"auth": {"type": "firstuse", "FirstUseAuthenticator": {"create_users": True},
                             "Authenticator": {"allow_all": True}}})
    assert out["FirstUseAuthenticator"] == {"create_users": True}
    assert out["Authenticator"]["allow_all"] is True
    assert out["Authenticator"]["allow_existing_users"] is True  # ours kept beside it


def test_group_limits_and_extra_groups_reach_the_spawner():
    out = settings({"limits": {"groups": {"gpu-class": {"memory": "8G", "cpu": 4}}},
                    "users": {"extra_user_groups": {"docker": ["alice"]}}})
    assert out["HubsteadSpawner"]["group_limits"] == {"gpu-class": {"memory": "8G", "cpu": 4}}
    assert out["HubsteadSpawner"]["extra_user_groups"] == {"docker": ["alice"]}


def test_csp_frame_ancestors_on_hub_and_user_servers():
    out = settings({"hub": {"csp_frame_ancestors": ["https://lms.example.edu"]}})
    csp = out["JupyterHub"]["tornado_settings"]["headers"]["Content-Security-Policy"]
    assert csp == "frame-ancestors 'self' https://lms.example.edu"
    assert "frame-ancestors 'self' https://lms.example.edu" in out["Spawner"]["args"][0]
    assert "tornado_settings" not in settings({})["JupyterHub"]


@pytest.mark.parametrize("mode", ["selfsigned", "manual", "letsencrypt"])
def test_https_moves_the_hub_to_the_https_entrypoint(mode):
    out = settings({"https": {"mode": mode, "port": 8443}})
    assert out["JupyterHub"]["bind_url"] == "https://:8443/"
    assert out["TraefikProxy"]["traefik_entrypoint"] == "https"


def test_the_hub_follows_the_applied_proxy_settings(tmp_path, monkeypatch):
    from hubstead.core import paths, state

    class C(dict):
        def __missing__(self, key):
            self[key] = type("Section", (), {})()
            return self[key]

    config_file = tmp_path / "config.yaml"
    config_file.write_text("http:\n  port: 8080\nlimits:\n  memory: 1G\n")
    monkeypatch.setattr(paths, "APPLIED_CONFIG", tmp_path / "applied.json")
    monkeypatch.setattr(hub_settings.credentials, "load", lambda: SECRETS)
    state.save_applied(config.validate({}))  # applied before http.port was set
    c = C()
    hub_settings.apply(c, config_file)
    assert c["JupyterHub"].bind_url == "http://:80/"  # not yet applied
    assert c["Spawner"].mem_limit == 2**30  # hub-only settings follow config.yaml at once


def test_the_hub_database_takes_concurrent_writers_and_the_proxy_api_hash_matches(tmp_path, monkeypatch):
    import bcrypt
    from jupyterhub import orm
    from traitlets.config import Config

    from hubstead.core import paths

    monkeypatch.setattr(paths, "APPLIED_CONFIG", tmp_path / "applied.json")
    monkeypatch.setattr(hub_settings.credentials, "load", lambda: SECRETS)
    c = Config()
    hub_settings.apply(c, tmp_path / "config.yaml")
    # traefik must accept the hub's API password with the hash the hub gives it.
    (api_user,) = c.TraefikProxy.extra_dynamic_config["http"]["middlewares"]["auth_api"]["basicAuth"]["users"]
    name, _, hashed = api_user.partition(":")
    assert name == c.TraefikProxy.traefik_api_username
    assert bcrypt.checkpw(SECRETS["traefik_api_password"].encode(), hashed.encode())
    # The hub's own engine (as JupyterHub makes it) writes ahead and waits on locks.
    session = orm.new_session_factory(f"sqlite:///{tmp_path}/hub.sqlite")()
    pragma = lambda name: session.execute(orm.text(f"PRAGMA {name}")).scalar()  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("busy_timeout") > 0
    session.close()


@pytest.mark.parametrize("auth_type", ["hubstead", "firstuse", "github"])
def test_the_configured_authenticator_can_be_made_with_hubsteads_settings(auth_type):
    from traitlets.config import Config

    out = settings({"auth": {"type": auth_type}, "users": {"removal": {"home": "delete"}}})
    c = Config({cls: traits for cls, traits in out.items() if cls in ("Authenticator", "HubsteadAuthenticator")})
    authenticator = out["JupyterHub"]["authenticator_class"](config=c)
    assert authenticator.removal_home == "delete"
    assert authenticator.admin_users == set()  # admins: the admin role's users (users.sudoers)


def test_the_hub_tells_systemd_it_is_ready_once_it_answers(monkeypatch):
    # Type=notify: `systemctl restart jupyterhub` must return when logins work again, not
    # when the process has forked.
    import asyncio

    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets
    from tornado.web import Application, RequestHandler

    from hubstead.core import systemd

    answering = []

    class Health(RequestHandler):
        def get(self):
            self.set_status(200 if answering else 503)

    notified = []
    monkeypatch.setattr(systemd, "notify_ready", lambda: notified.append(len(answering)))
    monkeypatch.setattr(hub_settings, "READINESS_POLL_SECONDS", 0.01)

    async def scenario():
        server = HTTPServer(Application([("/hub/health", Health)]))
        (sock,) = bind_sockets(0, "127.0.0.1")
        server.add_sockets([sock])
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hub/health"
        waiting = asyncio.create_task(hub_settings._notify_when_answering(url))
        await asyncio.sleep(0.1)
        assert not notified  # not while the hub answers 503
        answering.append(True)
        await asyncio.wait_for(waiting, 5)
        server.stop()

    asyncio.run(scenario())
    assert notified == [1]
