"""The hub's side of the proxy: traefik's file provider, with the routes file readable
by the proxy's group (traefik runs as its own user, not as root)."""

import io
from pathlib import Path

from jupyterhub_traefik_proxy.fileprovider import TraefikFileProviderProxy
from jupyterhub_traefik_proxy.traefik_utils import TraefikConfigFileHandler
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


class HubsteadTraefikProxy(TraefikFileProviderProxy):
    @default("dynamic_config_handler")
    def _default_handler(self):
        return _ProxyReadableRoutes(self.dynamic_config_file)

    @observe("dynamic_config_file")
    def _set_dynamic_config_file(self, change):
        self.dynamic_config_handler = _ProxyReadableRoutes(self.dynamic_config_file)
