"""The hub's side of the proxy: traefik's file provider, with the routes file readable
by the proxy's group (traefik runs as its own user, not as root), and each user server's
route with a sandboxed twin for the pages the server renders from its user's files."""

import io
from pathlib import Path

from jupyterhub_traefik_proxy.fileprovider import TraefikFileProviderProxy
from jupyterhub_traefik_proxy.traefik_utils import TraefikConfigFileHandler, generate_alias, generate_rule
from traitlets import default, observe

from hubstead.core import paths
from hubstead.core.files import write_atomic


class _ProxyReadableRoutes(TraefikConfigFileHandler):
    """The library writes its routes through a temporary file, which is 0600: traefik
    could not read it. Same atomic replace, with the mode the proxy's group may read."""

    def atomic_dump(self, data):
        text = io.StringIO()
        self._dump(data, text)
        write_atomic(Path(self.file_path), text.getvalue(), mode=paths.PROXY_FILE_MODE)


# Everything is served from one origin (no subdomains): a page a user's server makes
# from its user's files, with their scripts, runs as the hub's own pages would, with the
# session of whoever opens it (a teacher). Jupyter Server sandboxes /files/ itself; these
# it serves as they are, so the proxy sandboxes them: their scripts run in an origin of
# their own, which reaches neither the hub's pages nor its API with the viewer's cookies.
SANDBOXED_SUBPATHS = ("nbconvert/",)
SANDBOX_MIDDLEWARE = "hubstead-sandbox"
SANDBOX_POLICY = "sandbox allow-scripts allow-forms allow-popups allow-downloads; frame-ancestors 'self'"


def _sandboxed_router(routespec: str, subpath: str) -> str:
    return generate_alias(routespec + subpath, "router")


class HubsteadTraefikProxy(TraefikFileProviderProxy):
    def _dynamic_config_for_route(self, routespec, target, data):
        traefik_config, jupyterhub_config = super()._dynamic_config_for_route(routespec, target, data)
        if data.get("user"):  # a user's server, not the hub or a service
            http = traefik_config["http"]
            router = http["routers"][generate_alias(routespec, "router")]
            http["middlewares"] = {SANDBOX_MIDDLEWARE: {
                "headers": {"customResponseHeaders": {"Content-Security-Policy": SANDBOX_POLICY}}}}
            for subpath in SANDBOXED_SUBPATHS:  # a longer rule: traefik prefers it
                http["routers"][_sandboxed_router(routespec, subpath)] = {
                    **router, "rule": generate_rule(routespec + subpath), "middlewares": [SANDBOX_MIDDLEWARE]}
        return traefik_config, jupyterhub_config

    def _keys_for_route(self, routespec):
        traefik_keys, jupyterhub_keys = super()._keys_for_route(routespec)
        twins = tuple(["http", "routers", _sandboxed_router(routespec, s)] for s in SANDBOXED_SUBPATHS)
        return (*traefik_keys, *twins), jupyterhub_keys

    @default("dynamic_config_handler")
    def _default_handler(self):
        return _ProxyReadableRoutes(self.dynamic_config_file)

    @observe("dynamic_config_file")
    def _set_dynamic_config_file(self, change):
        self.dynamic_config_handler = _ProxyReadableRoutes(self.dynamic_config_file)
