"""What a browser and a notebook client do against the hub, with requests."""

import json
import re
import time
import uuid

import requests
import websocket

BASE = "http://127.0.0.1"
ADMIN, ADMIN_PASSWORD = "teacher", "S3cret-teacher"
TEACHER_PAGE = f"{BASE}/services/teacher/"


class HubSession:
    """A logged-in (or not) browser session on the hub."""

    def __init__(self, base: str = BASE):
        self.base = base
        self.http = requests.Session()

    def xsrf(self) -> str:
        return self.http.cookies.get("_xsrf", path="/hub/") or self.http.cookies.get("_xsrf")

    def login(self, name: str, password: str) -> requests.Response:
        self.http.get(f"{self.base}/hub/login", timeout=30).raise_for_status()
        return self.http.post(
            f"{self.base}/hub/login",
            data={"username": name, "password": password, "_xsrf": self.xsrf()},
            allow_redirects=False,
            timeout=60,
        )

    def change_password(self, current: str, new: str) -> requests.Response:
        self.http.get(f"{self.base}/hub/change-password", timeout=30).raise_for_status()
        return self.http.post(
            f"{self.base}/hub/change-password",
            data={"current_password": current, "new_password": new, "confirm_password": new,
                  "_xsrf": self.xsrf()},
            timeout=60,
        )

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-XSRFToken": self.xsrf()}
        return self.http.request(method, f"{self.base}/hub/api{path}", headers=headers, timeout=60, **kwargs)

    def start_server(self, name: str, timeout: float = 120) -> float:
        start = time.monotonic()
        r = self.api("POST", f"/users/{name}/server")
        assert r.status_code in (201, 202, 400), r.text  # 400: already running
        while time.monotonic() - start < timeout:
            server = self.api("GET", f"/users/{name}").json()["servers"].get("")
            if server and server.get("ready"):
                return time.monotonic() - start
            time.sleep(0.5)
        raise TimeoutError(f"{name}'s server not ready after {timeout} s")

    def token(self, name: str) -> str:
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "tests", "expires_in": 3600})
        r.raise_for_status()
        return r.json()["token"]


def wait_until(condition, timeout: float, what: str, every: float = 0.5) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} (waited {timeout:.0f} s)")
        time.sleep(every)


def wait_for_route(name: str, token: str, base: str = BASE, timeout: float = 30) -> None:
    """Until the proxy reaches ``name``'s server. Right after the hub restarted (a reload,
    a reboot) a new server's route can point at the old server's port for a moment."""
    deadline = time.monotonic() + timeout
    while requests.get(f"{base}/user/{name}/api", headers={"Authorization": f"token {token}"},
                       timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the proxy does not reach {name}'s server")
        time.sleep(0.5)


def own_server(name: str, password: str, base: str = BASE) -> tuple[HubSession, str]:
    """``name`` logged in, their server started and reached through the proxy: their
    session and an API token of theirs."""
    session = HubSession(base)
    assert session.login(name, password).status_code == 302
    session.start_server(name)
    token = session.token(name)
    wait_for_route(name, token, base)
    return session, token


def run_code(name: str, token: str, code: str, base: str = BASE, timeout: float = 60, kernel: str = "python3") -> str:
    """Start a ``kernel`` through the proxy, run ``code`` over its websocket, return stdout."""
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{base}/user/{name}/api/kernels", headers=headers, json={"name": kernel}, timeout=60)
    r.raise_for_status()
    kernel_id = r.json()["id"]
    ws_url = f"{base.replace('http', 'ws', 1)}/user/{name}/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": name,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))
        out, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
        raise TimeoutError("no idle status from the kernel")
    finally:
        ws.close()
        requests.delete(f"{base}/user/{name}/api/kernels/{kernel_id}", headers=headers, timeout=30)


def next_port_hook(port: int) -> str:
    """A jupyterhub_config.d snippet: the next port the spawner picks for a server is
    ``port`` (a test makes "whatever port comes next" deterministic), then random again."""
    return f"""
import systemdspawner.systemdspawner as _spawner_module

_picks = [{port}]
_random_port = _spawner_module.random_port
_spawner_module.random_port = lambda: _picks.pop() if _picks else _random_port()
"""


def teacher_page_post(teacher: HubSession, action: str, **form) -> requests.Response:
    """A form of the teacher's page sent from ``teacher``'s browser (``action``: add,
    reset, remove, ...), with the page's XSRF token."""
    page = teacher.http.get(f"{teacher.base}/services/teacher/", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    return teacher.http.post(f"{teacher.base}/services/teacher/{action}", data={**form, "_xsrf": xsrf}, timeout=60)
