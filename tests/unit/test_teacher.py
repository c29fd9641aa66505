"""The teacher's page's answers to errors: an expected one is a 400 saying what, a bug a 500."""

import asyncio
import logging
from urllib.parse import urlencode

import pytest
from tornado import httpclient, web
from tornado.httpserver import HTTPServer
from tornado.log import access_log, app_log
from tornado.testing import bind_unused_port

from hubstead.classroom import teacher
from hubstead.core import paths, systemd, usernames


class Form(teacher.TeacherHandler):
    def initialize(self):
        pass  # no hub API: the errors come before it

    def get(self):
        what = self.get_argument("what")
        if what == "bad-name":
            usernames.validate("Bad Name!")
        elif what == "refused":
            raise web.HTTPError(403, "ann is a sysadmin (users.sudoers)")
        raise KeyError(what)


def answer(what: str) -> httpclient.HTTPResponse:
    async def fetch():
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([("/", Form)]))
        server.add_sockets([sock])
        try:
            return await httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/?what={what}", raise_error=False)
        finally:
            server.stop()

    return asyncio.run(fetch())


@pytest.mark.parametrize("what, code, text", [
    ("bad-name", 400, "invalid user name 'Bad Name!': use lowercase letters"),
    ("refused", 403, "ann is a sysadmin (users.sudoers)"),
    ("a-bug", 500, "500: Internal Server Error"),
])
def test_an_error_answers_with_its_status_and_says_what(what, code, text):
    r = answer(what)
    assert r.code == code and text in r.body.decode()


def test_its_lines_go_to_the_journal_under_their_own_name(monkeypatch):
    """It runs inside the hub's unit: without its own identifier, `hubstead logs teacher`
    could not tell its lines from the hub's."""
    sent = []

    class Handler(logging.Handler):
        def __init__(self, SYSLOG_IDENTIFIER):
            super().__init__()
            self.identifier = SYSLOG_IDENTIFIER

        def emit(self, record):
            sent.append((self.identifier, record.name, record.getMessage()))

    tornado_log = logging.getLogger("tornado")
    monkeypatch.setattr(tornado_log, "handlers", [])
    monkeypatch.setattr(tornado_log, "level", logging.NOTSET)
    monkeypatch.setattr(systemd, "booted", lambda: True)
    monkeypatch.setattr(systemd.journal, "JournalHandler", Handler)
    monkeypatch.setattr(teacher, "make_app", lambda: type("App", (), {"listen": lambda *a, **k: None})())
    monkeypatch.setattr(teacher.ioloop.IOLoop, "current", lambda: type("Loop", (), {"start": lambda self: None})())
    teacher.main()
    app_log.warning("POST /services/teacher/add: 400: bad")
    access_log.info("200 GET /services/teacher/ 3.1ms")
    assert sent == [(paths.TEACHER_LOG, "tornado.application", "POST /services/teacher/add: 400: bad"),
                    (paths.TEACHER_LOG, "tornado.access", "200 GET /services/teacher/ 3.1ms")]


def test_its_request_log_scrubs_the_oauth_code(monkeypatch):
    for name, value in {"JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api", "JUPYTERHUB_API_TOKEN": "t",
                        "JUPYTERHUB_CLIENT_ID": "service-teacher", "JUPYTERHUB_SERVICE_PREFIX": "/services/teacher/",
                        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/teacher/oauth_callback"}.items():
        monkeypatch.setenv(name, value)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    monkeypatch.setattr(access_log, "handlers", [handler])

    async def fetch():
        sock, port = bind_unused_port()
        server = HTTPServer(teacher.make_app())
        server.add_sockets([sock])
        try:
            await httpclient.AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}/services/teacher/oauth_callback?code=the-code&state=s", raise_error=False)
        finally:
            server.stop()

    asyncio.run(fetch())
    assert len(logged) == 1 and "oauth_callback?code=[secret]" in logged[0] and "the-code" not in logged[0]


class PackagesAsTeacher(teacher.Packages):
    def initialize(self):
        pass  # no hub API: the page runs `hubstead packages`

    def get_current_user(self):
        return {"name": "tess", "admin": True}


def post_packages(monkeypatch, form: dict, returncode: int = 0, stderr: str = "") -> tuple[int, str, list]:
    """The page's answer to ``form`` and the commands it ran (each answering ``returncode``)."""
    ran = []

    def run(argv, **kwargs):
        ran.append(argv)
        return teacher.subprocess.CompletedProcess(argv, returncode, "", stderr)

    monkeypatch.setattr(teacher.subprocess, "run", run)
    monkeypatch.setattr(teacher.config, "load", lambda: teacher.config.validate(
        {"user_environment": {"manager": "venv"}}))

    async def fetch():
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([("/packages", PackagesAsTeacher), ("/", PackagesAsTeacher)],
                                            prefix="/"))
        server.add_sockets([sock])
        try:
            return await httpclient.AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}/packages", method="POST", body=urlencode(form), raise_error=False,
                follow_redirects=False)
        finally:
            server.stop()

    r = asyncio.run(fetch())
    return r.code, r.body.decode(), ran


def test_the_page_installs_packages_with_hubsteads_command_for_the_teacher(monkeypatch):
    code, _, ran = post_packages(monkeypatch, {"action": "add", "kind": "pip", "names": "pandas --index-url=x"})

    assert code == 302
    [argv] = ran
    command = argv[argv.index(str(paths.HUB_ENV / "bin" / "hubstead")):]
    # Whatever is typed stays a package name: it all follows `--`.
    assert command[1:] == ["packages", "add", "--pip", "--by", "tess", "--", "pandas", "--index-url=x"]


def test_the_commands_refusal_is_the_pages_one_line(monkeypatch):
    code, text, _ = post_packages(monkeypatch, {"action": "add", "kind": "pip", "names": "nosuch"}, 1,
                                  "hubstead: error: pip package nosuch: cannot be installed: Because nosuch was "
                                  "not found in the package registry\n")

    assert (code, text) == (400, "pip package nosuch: cannot be installed: Because nosuch was not found in the "
                                 "package registry")


def test_the_page_offers_conda_only_with_a_conda_environment(monkeypatch):
    code, text, ran = post_packages(monkeypatch, {"action": "add", "kind": "conda", "names": "scipy"})

    assert code == 400 and "not a package action this page offers" in text
    assert ran == []
