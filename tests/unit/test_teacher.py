"""The teacher's page's answers to errors: an expected one is a 400 saying what, a bug a 500."""

import asyncio
import logging

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
