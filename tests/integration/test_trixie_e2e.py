"""Debian 13 (trixie), the current stable: the same install, login, server and kernel as
on Debian 12, on a booted trixie target."""

import pytest
from conftest import installed
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code
from targethost import target_host

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trixie():
    target = installed("hubstead-trixie", suite="trixie")
    try:
        yield target
    finally:
        target.tb.down()


def test_debian_13_installs_and_a_student_computes(trixie):
    assert "VERSION_CODENAME=trixie" in trixie.tb.run("cat", "/etc/os-release").stdout
    assert "is running" in trixie.install_output
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    trixie.tb.run("hubstead", "users", "add", "tess", "--password-stdin", input="tess-password-1\n")
    _, token = own_server("tess", "tess-password-1")
    assert run_code("tess", token, "print(6 * 7)").strip() == "42"
    pid = target_host(trixie.tb).service("jupyter-tess").systemd_properties["MainPID"]
    assert trixie.tb.run("stat", "-c", "%U", f"/proc/{pid}").stdout.strip() == "jupyter-tess"
