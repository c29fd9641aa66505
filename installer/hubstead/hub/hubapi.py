"""A small client for the hub's REST API, as the ``hubstead-cli`` service.

It talks to the hub on its loopback port, not through the proxy, so it works
whatever the public address, port or TLS mode.
"""

import json
import urllib.error
import urllib.request

from hubstead.core import credentials, paths
from hubstead.core.errors import HubsteadError

API_URL = f"http://127.0.0.1:{paths.HUB_PORT}/hub/api"
# Hubstead's own endpoint in the hub (authenticator.EndSessionsAPIHandler).
END_SESSIONS_PATH = "/hubstead/users/{name}/sessions"


class HubAPIError(HubsteadError, RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HubAPI:
    def __init__(self, url: str = API_URL, token: str | None = None):
        self.url = url
        self.token = token or credentials.load()["cli_api_token"]

    def request(self, method: str, path: str, body=None, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("message", e.reason)
            except ValueError:
                message = e.reason
            raise HubAPIError(e.code, f"hub API {method} {path}: {e.code} {message}") from None
        except (urllib.error.URLError, OSError) as e:
            raise HubAPIError(0, f"the hub does not answer at {self.url} ({e}); is {paths.HUB_UNIT} running?") from None
        return json.loads(raw) if raw else None

    def end_sessions(self, name: str) -> None:
        """Log ``name`` out everywhere: login cookies and API tokens stop working."""
        self.request("DELETE", END_SESSIONS_PATH.format(name=name))

    def users(self) -> list[dict]:
        return self.request("GET", "/users?include_stopped_servers=1&limit=10000")

    def add_user(self, name: str, admin: bool = False) -> bool:
        """Add ``name``; False if the hub already had it."""
        try:
            self.request("POST", f"/users/{name}", {"admin": admin} if admin else None)
        except HubAPIError as e:
            if e.status == 409:
                return False
            raise
        return True
