"""A first install on a booted target, as a teacher's browser sees it: a progress page on
port 80 follows the installer's steps and hands the browser to the hub once it is up. The
installer is killed (SIGKILL, with everything it started, the page too) in the middle:
running it again completes, the hub works, and nothing of the page remains."""

import time

import pytest
import requests
from browser import Browser
from conftest import CHECKOUT, InstalledHub
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code, wait_until
from testbed import Testbed

from hubstead.core import paths

pytestmark = pytest.mark.integration

PAGE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def bare():
    tb = Testbed(name="hubstead-faults", binds_ro={str(CHECKOUT): "/opt/src"})
    tb.up()
    try:
        yield InstalledHub(tb, "")
    finally:
        tb.down()


def _install_in_background(bare: InstalledHub, unit: str) -> None:
    # As its own unit: killing the unit kills the installer, `hubstead install`, ansible,
    # uv and the progress page at once, as a power cut would.
    bare.tb.run("systemd-run", f"--unit={unit}", "python3", "/opt/src/bin/bootstrap.py",
                "--from", "/opt/src", "--user-env", "venv", "--admin", f"{ADMIN}:{ADMIN_PASSWORD}")


def _steps_on_the_page() -> list[str]:
    try:
        return requests.get(f"{PAGE}/_hubstead/progress", timeout=5).json()["steps"]
    except (requests.ConnectionError, ValueError):
        return []


def _packages_in_user_env(bare: InstalledHub) -> int:
    found = bare.tb.exec("sh", "-c", f"ls -d {paths.USER_ENV}/lib/python3*/site-packages/*.dist-info 2>/dev/null",
                         check=False).stdout
    return len(found.split())


def test_the_progress_page_follows_an_install_that_is_then_killed(bare):
    _install_in_background(bare, "first-install")
    deadline = time.monotonic() + 900
    while not any(step.startswith("[2/4] user_env:") for step in _steps_on_the_page()):
        assert time.monotonic() < deadline, "the page never showed the user environment's build"
        time.sleep(1)
    steps = _steps_on_the_page()
    assert any("installing Hubstead from /opt/src" in step for step in steps)  # the installer's own steps
    assert any(step.startswith("[1/4] base:") for step in steps)  # and the roles'
    # Whatever the teacher types after the address gets the page, not an error.
    page = requests.get(f"{PAGE}/hub/login", timeout=5)
    assert page.status_code == 503 and "installing JupyterHub" in page.text
    assert ADMIN_PASSWORD not in page.text + "\n".join(steps)
    # The cut lands while packages are being written into the user environment (past the
    # seeded pip and setuptools): the worst moment, some whole, some half there, none compiled.
    wait_until(lambda: _packages_in_user_env(bare) > 5, 600, "no package ever reached the user environment",
               every=0.1)
    bare.tb.run("systemctl", "kill", "--signal=SIGKILL", "first-install.service")
    bare.tb.run("systemctl", "reset-failed", "first-install.service", check=False)


def test_run_again_it_completes_and_the_page_hands_the_browser_to_the_hub(bare):
    _install_in_background(bare, "second-install")
    with Browser() as browser:
        deadline = time.monotonic() + 60
        while not _steps_on_the_page():
            assert time.monotonic() < deadline, "no progress page on port 80"
            time.sleep(0.5)
        browser.open("/")
        browser.wait_for("#steps li", timeout=60)
        browser.screenshot("install-progress")
        # The page follows the install to its end and then opens the hub by itself.
        browser.wait_url_contains("/hub/login", timeout=900)
        browser.wait_for("#username_input")
    deadline = time.monotonic() + 120
    while bare.tb.run("systemctl", "is-active", "--quiet", "second-install.service", check=False).returncode == 0:
        assert time.monotonic() < deadline, "the installer did not finish after the hub came up"
        time.sleep(1)
    out = bare.tb.run("journalctl", "-u", "second-install.service", "--no-pager", "-o", "cat").stdout
    assert "is running" in out, out
    # Nothing of the page is left: traefik holds port 80, the page's files are gone.
    listeners = bare.tb.run("ss", "-ltnpH", f"sport = :{paths.HTTP_PORT}").stdout
    assert "traefik" in listeners and "python" not in listeners, listeners
    assert bare.tb.run("test", "-e", str(paths.INSTALL_PROGRESS_DIR), check=False).returncode == 1
    assert requests.get(f"{PAGE}/_hubstead/progress", timeout=5).status_code == 404

    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    bare.tb.run("hubstead", "users", "add", "kim", "--password-stdin", input="kim-password-1\n")
    _, token = own_server("kim", "kim-password-1")
    assert run_code("kim", token, "print(6 * 7)").strip() == "42"


def test_packages_a_cut_left_half_written_are_whole_again_after_the_next_run(bare):
    """What a cut in the middle of `uv pip install` leaves (seen by killing it at random
    points): some distributions with their metadata but without their modules or scripts,
    which a plain re-run counts as installed. The next run must make them whole."""
    if bare.tb.run("test", "-e", str(paths.CONFIG_FILE), check=False).returncode != 0:
        bare.bootstrap()  # run alone: the machine the tests above leave
    site = bare.tb.exec("sh", "-c", f"echo {paths.USER_ENV}/lib/python3*/site-packages").stdout.strip()
    # The state of a build cut short: the install started and did not finish.
    bare.tb.run("sh", "-c", f"rm -rf {site}/jupyterhub {paths.USER_ENV}/bin/jupyterhub-singleuser")
    bare.tb.run("rm", "-f", str(paths.USER_ENV_BUILT))
    bare.bootstrap()
    bare.tb.run("hubstead", "users", "add", "lee", "--password-stdin", input="lee-password-1\n")
    _, token = own_server("lee", "lee-password-1")
    assert run_code("lee", token, "print(6 * 7)").strip() == "42"
