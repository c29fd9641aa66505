"""The teacher's page's answers to errors: an expected one is a 400 saying what, a bug a 500."""

import asyncio

import pytest
from tornado import httpclient, web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from hubstead.classroom import teacher
from hubstead.core import usernames


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
