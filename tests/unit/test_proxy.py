import stat

import toml

from hubstead.hub.proxy import HubsteadTraefikProxy


def test_the_hubs_routes_file_is_readable_by_the_proxys_group(tmp_path):
    # traefik is not root: a 0600 routes file (what the library writes) would leave
    # every route unread.
    routes = tmp_path / "rules.toml"
    proxy = HubsteadTraefikProxy(dynamic_config_file=str(routes))
    proxy.dynamic_config["http"]["routers"]["r"] = {"rule": "PathPrefix(`/user/ann/`)", "service": "s"}
    proxy.dynamic_config["http"]["services"]["s"] = {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}
    proxy._persist_dynamic_config()
    assert stat.S_IMODE(routes.stat().st_mode) == 0o640
    assert toml.load(routes)["http"]["routers"]["r"]["service"] == "s"
    assert [p.name for p in tmp_path.iterdir()] == ["rules.toml"]  # no temporary file left


def test_a_users_nbconvert_pages_are_sandboxed_and_go_with_the_route(tmp_path):
    import asyncio

    routes = tmp_path / "rules.toml"
    proxy = HubsteadTraefikProxy(dynamic_config_file=str(routes))

    async def add_then_delete():
        traefik, jupyterhub = proxy._dynamic_config_for_route("/user/ann/", "http://127.0.0.1:9", {"user": "ann"})
        await proxy._apply_dynamic_config(traefik, jupyterhub)
        written = toml.load(routes)["http"]
        await proxy.delete_route("/user/ann/")
        return written, toml.load(routes)["http"]

    written, after = asyncio.run(add_then_delete())
    twins = [r for r in written["routers"].values() if "nbconvert" in r["rule"]]
    assert len(twins) == 1 and twins[0]["service"] in written["services"]
    (middleware,) = twins[0]["middlewares"]
    policy = written["middlewares"][middleware]["headers"]["customResponseHeaders"]["Content-Security-Policy"]
    assert "sandbox" in policy.split(";")[0] and "allow-same-origin" not in policy
    assert not [r for r in after.get("routers", {}).values() if "/user/ann/" in r["rule"]]
    # The hub's own route (no user) has no twin.
    traefik, _ = proxy._dynamic_config_for_route("/", "http://127.0.0.1:8", {"hub": True})
    assert [r["rule"] for r in traefik["http"]["routers"].values()] == ["PathPrefix(`/`)"]
