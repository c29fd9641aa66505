"""The Browser helper against pages served from this host: form, upload, download, screenshot, and login
through JupyterHub's own login.html template (rendered here, so no hub has to boot)."""

import base64
import http.server
import threading
import types
import urllib.parse
from pathlib import Path

import jinja2
import pytest
from browser import Browser
from jupyterhub._data import DATA_FILES_PATH

pytestmark = pytest.mark.integration

CSV = "name,score\nada,3\ngrace,5\n"
PASSWORD = "S3cret-browser"
FORM_PAGE = f"""<!doctype html>
<title>browser self-test</title>
<form action="/echo" method="get">
  <input id="name" name="name"> <button id="go" type="submit">Go</button>
</form>
<input id="file" type="file"> <pre id="file-text"></pre>
<a id="download" download="x.csv" href="data:text/csv;base64,{base64.b64encode(CSV.encode()).decode()}">CSV</a>
<script>
  // Show the chosen file's content, so the test sees what the browser really read.
  document.getElementById("file").addEventListener("change", async (e) => {{
    document.getElementById("file-text").textContent = await e.target.files[0].text();
  }});
</script>
"""
LOGIN_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(DATA_FILES_PATH) / "templates"), autoescape=True,
).get_template("login.html")


def _login_page(error: str | None) -> str:
    """JupyterHub's login.html with just enough of the context the hub gives it."""
    return LOGIN_TEMPLATE.render(
        static_url=lambda path, **_: f"/static/{path}", base_url="/hub/", prefix="/",
        authenticator_login_url="/hub/login", authenticator=types.SimpleNamespace(request_otp=False),
        xsrf="not-checked", login_error=error,
    )


class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", **headers) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/form":
            self._send(200, FORM_PAGE.encode())
        elif url.path == "/echo":
            name = urllib.parse.parse_qs(url.query)["name"][0]
            self._send(200, f'<p id="greeting">Hello, {name}</p>'.encode())
        elif url.path == "/hub/login":
            self._send(200, _login_page(None).encode())
        elif url.path == "/hub/home":
            self._send(200, b'<h1 id="home">Home</h1>')
        elif url.path.startswith("/static/"):
            static = Path(DATA_FILES_PATH, url.path.lstrip("/")).resolve()
            if static.is_file() and static.is_relative_to(Path(DATA_FILES_PATH).resolve()):
                ctype = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}.get(
                    static.suffix, "application/octet-stream")
                self._send(200, static.read_bytes(), ctype)
            else:
                self._send(404, b"")
        else:
            self._send(404, b"")

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        if form.get("password") == [PASSWORD]:
            self._send(302, b"", Location="/hub/home")
        else:  # as JupyterHub does: the form again, at the same URL, with the error
            self._send(403, _login_page("Invalid username or password").encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    # A free high port: port 80 belongs to whichever nspawn target is up (they share the host's network).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(site, tmp_path):
    with Browser(base=site, download_dir=tmp_path / "downloads") as b:
        yield b


def test_form_upload_download_screenshot(browser, tmp_path):
    browser.open("/form")

    upload = tmp_path / "notes.txt"
    upload.write_text("uploaded from the test\n")
    browser.upload("#file", upload)
    browser.wait_for("#file-text:not(:empty)")
    assert browser.text_of("#file-text") == "uploaded from the test"

    browser.click("#download")
    downloaded = browser.wait_download(".csv")
    assert downloaded.name == "x.csv"
    assert downloaded.read_text() == CSV

    shot = browser.screenshot("browser-fixture-form")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 5000  # a blank 1280x900 PNG is a few hundred bytes

    browser.fill("#name", "Ada")
    browser.click("#go")
    browser.wait_url_contains("/echo?name=Ada")
    assert browser.text_of("#greeting") == "Hello, Ada"
    assert "Hello, Ada" in browser.page_source


def test_login_with_jupyterhub_template(browser):
    with pytest.raises(AssertionError, match="Invalid username or password"):
        browser.login("teacher", "wrong")
    browser.screenshot("browser-fixture-login-refused")

    browser.login("teacher", PASSWORD)
    assert browser.driver.current_url.endswith("/hub/home")
    assert browser.text_of("#home") == "Home"
