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
