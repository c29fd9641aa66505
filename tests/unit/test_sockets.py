import contextlib
import os
import socket

import pytest

from hubstead.hub import sockets


def test_a_listening_socket_is_reported_with_its_owner():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert sockets.receiver_uids("127.0.0.1", port) == set()  # bound, not yet listening
        s.listen()
        assert sockets.receiver_uids("127.0.0.1", port) == {os.getuid()}
    assert sockets.receiver_uids("127.0.0.1", port) == set()


@contextlib.contextmanager
def listening_as_nobody(family: int, address: str, port: int = 0, v6only: bool = False):
    """A socket of another user's (nobody) listening on ``address``; yields its port."""
    port_read, port_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(65534)
            s = socket.socket(family)
            if v6only:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((address, port))
            s.listen()
            os.write(port_write, str(s.getsockname()[1]).encode())
            os.read(done_read, 1)
        finally:
            os._exit(0)
    try:
        yield int(os.read(port_read, 16))
    finally:
        os.write(done_write, b"x")
        os.waitpid(pid, 0)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="listening as another user needs root")


@needs_root
@pytest.mark.parametrize(("family", "address"), [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0"),
                                                 (socket.AF_INET6, "::ffff:127.0.0.1")])
def test_a_squatter_that_would_get_the_connections_is_seen_as_another_user(family, address):
    with listening_as_nobody(family, address) as port:
        assert sockets.receiver_uids("127.0.0.1", port) == {65534}


@needs_root
@pytest.mark.parametrize(("family", "address"), [(socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.2")])
def test_a_listener_on_another_address_gets_nothing_and_does_not_count(family, address):
    with listening_as_nobody(family, address) as port:
        assert sockets.receiver_uids("127.0.0.1", port) == set()
        with socket.socket() as mine:  # it does not stop the server's bind either
            mine.bind(("127.0.0.1", port))
            mine.listen()
            assert sockets.receiver_uids("127.0.0.1", port) == {os.getuid()}


@needs_root
def test_the_server_on_its_own_address_wins_over_an_ipv6_only_wildcard():
    with listening_as_nobody(socket.AF_INET6, "::", v6only=True) as port:
        with socket.socket() as mine:
            mine.bind(("127.0.0.1", port))
            mine.listen()
            assert sockets.receiver_uids("127.0.0.1", port) == {os.getuid()}
