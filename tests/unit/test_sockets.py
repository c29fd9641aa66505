import os
import socket

import pytest

from hubstead.hub import sockets


def test_a_listening_socket_is_reported_with_its_owner():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert sockets.listener_uids(port) == set()  # bound, not yet listening
        s.listen()
        assert sockets.listener_uids(port) == {os.getuid()}
    assert sockets.listener_uids(port) == set()


@pytest.mark.skipif(os.geteuid() != 0, reason="listening as another user needs root")
def test_a_squatter_on_any_address_is_seen_as_another_user():
    port_read, port_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the squatter: another user, on all addresses
        os.setuid(65534)
        s = socket.socket(socket.AF_INET6)
        s.bind(("::", 0))
        s.listen()
        os.write(port_write, str(s.getsockname()[1]).encode())
        os.read(done_read, 1)
        os._exit(0)
    try:
        port = int(os.read(port_read, 16))
        assert sockets.listener_uids(port) == {65534}
    finally:
        os.write(done_write, b"x")
        os.waitpid(pid, 0)
