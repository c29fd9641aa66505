"""The installer killed (SIGKILL, with everything it started) in the middle of a fresh
install: running it again completes, and the hub works."""

import time

import pytest
from conftest import CHECKOUT, InstalledHub
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code
from testbed import Testbed

pytestmark = pytest.mark.integration

INSTALL_UNIT = "fault-install"


@pytest.fixture(scope="module")
def bare():
    tb = Testbed(name="hubstead-faults", binds_ro={str(CHECKOUT): "/opt/src"})
    tb.up()
    try:
        yield InstalledHub(tb, "")
    finally:
        tb.down()


def test_an_install_killed_while_it_builds_the_user_environment_completes_when_run_again(bare):
    # The installer in the background, as its own unit: killing the unit kills the
    # installer, `hubstead install`, ansible and uv at once, as a power cut would.
    bare.tb.run("systemd-run", f"--unit={INSTALL_UNIT}", "--collect", "python3", "/opt/src/bin/bootstrap.py",
                "--from", "/opt/src", "--user-env", "venv", "--admin", f"{ADMIN}:{ADMIN_PASSWORD}")
    deadline = time.monotonic() + 900
    while "user_env:" not in bare.tb.run("journalctl", "-u", INSTALL_UNIT, "--no-pager", "-o", "cat").stdout:
        assert time.monotonic() < deadline, "the install never reached the user environment"
        time.sleep(1)
    time.sleep(3)  # well inside the user environment's build
    bare.tb.run("systemctl", "kill", "--signal=SIGKILL", f"{INSTALL_UNIT}.service")
    out = bare.bootstrap().stdout
    assert "is running" in out
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    bare.tb.run("hubstead", "users", "add", "kim", "--password-stdin", input="kim-password-1\n")
    _, token = own_server("kim", "kim-password-1")
    assert run_code("kim", token, "print(6 * 7)").strip() == "42"
