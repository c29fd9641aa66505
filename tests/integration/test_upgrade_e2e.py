"""Re-running the installer upgrades, with a way back, on a booted target: from an older
Hubstead (an earlier commit of this repository) to this one while a student's server runs;
then to a build whose hub cannot start, which is rolled back."""

import subprocess
import time

import pytest
from conftest import CHECKOUT, InstalledHub
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code, wait_for_route
from targethost import target_host
from testbed import Testbed

from hubstead.core import paths

pytestmark = pytest.mark.integration

# The Hubstead of the previous release of this work (issue 8): modules at the package's
# top level, traefik running as root, its rules in /var/lib/hubstead/rules.
OLD_COMMIT = "bc100c1"
STUDENT, PASSWORD = "stu", "stu-password-1"
ROLLED_BACK = 3  # bootstrap's exit code when the upgrade failed and undid itself


def _bootstrap(hub: InstalledHub, source: str, check: bool = True) -> subprocess.CompletedProcess:
    return hub.tb.run("python3", f"{source}/bin/bootstrap.py", "--from", source, "--user-env", "venv",
                      "--admin", f"{ADMIN}:{ADMIN_PASSWORD}", timeout=1200, check=check)


def _copy_in(hub: InstalledHub, name: str, commit: str = "HEAD") -> str:
    """A commit of this repository, unpacked in the target (for HEAD: what is checked out)."""
    inside = hub.tb.root() / "root" / name
    inside.mkdir()
    if commit == "HEAD":
        packed = subprocess.run(["tar", "-c", "--exclude=.git", "-C", str(CHECKOUT), "."],
                                capture_output=True, check=True)
    else:
        packed = subprocess.run(["git", "-C", str(CHECKOUT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(inside)], input=packed.stdout, check=True)
    return f"/root/{name}"


@pytest.fixture(scope="module")
def old_hub():
    """A target with the older Hubstead installed and a student's server running."""
    tb = Testbed(name="hubstead-upgrade", binds_ro={str(CHECKOUT): "/opt/src"})
    tb.up()
    try:
        hub = InstalledHub(tb, "")
        hub.install_output = _bootstrap(hub, _copy_in(hub, "old-src", OLD_COMMIT)).stdout
        tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=PASSWORD + "\n")
        student = HubSession()
        assert student.login(STUDENT, PASSWORD).status_code == 302
        student.start_server(STUDENT)
        hub.student_token = student.token(STUDENT)
        wait_for_route(STUDENT, hub.student_token)
        yield hub
    finally:
        tb.down()


def _server_pid(hub) -> str:
    return target_host(hub.tb).service(f"jupyter-{STUDENT}").systemd_properties["MainPID"]


def _hub_answers_and_the_student_computes(hub):
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    _, token = own_server(STUDENT, PASSWORD)
    assert run_code(STUDENT, token, "print(6 * 7)").strip() == "42"


def test_upgrading_from_the_older_hubstead_keeps_the_running_server(old_hub):
    pid = _server_pid(old_hub)
    out = _bootstrap(old_hub, "/opt/src").stdout
    assert "upgraded" in out
    assert _server_pid(old_hub) == pid  # the student's server ran through the upgrade
    _hub_answers_and_the_student_computes(old_hub)
    # The user environment the older Hubstead made as root is handed to its own account.
    assert old_hub.tb.run("find", str(paths.USER_ENV), "!", "-user", paths.USER_ENV_OWNER).stdout == ""
    # What the new version changed on the machine: the proxy is no longer root.
    traefik = target_host(old_hub.tb).service(paths.PROXY_UNIT).systemd_properties["MainPID"]
    assert old_hub.tb.run("stat", "-c", "%U", f"/proc/{traefik}").stdout.strip() == paths.PROXY_USER
    leftovers = [str(p) for p in (paths.STATE_DIR / "rules", paths.PREVIOUS_STATE_DIR, paths.PREVIOUS_USER_ENV,
                                  paths.PREFIX / "previous-hub")]
    assert old_hub.tb.run("ls", "-d", *leftovers, check=False).stdout == ""


def test_an_upgrade_whose_hub_does_not_start_is_rolled_back(old_hub):
    broken = _copy_in(old_hub, "broken-src")
    settings = old_hub.tb.root() / broken.lstrip("/") / "installer/hubstead/hub/settings.py"
    settings.write_text(settings.read_text() + "\nraise RuntimeError('this build cannot start a hub')\n")
    pid = _server_pid(old_hub)
    password_store = old_hub.tb.run("sha256sum", str(paths.PASSWORD_STORE)).stdout
    r = _bootstrap(old_hub, broken, check=False)
    assert r.returncode == ROLLED_BACK, r.stdout + r.stderr
    assert "the upgrade failed and was rolled back" in r.stderr
    # The hub runs the version it ran before, with the same state; the server survived.
    assert old_hub.tb.run("grep", "-rq", "cannot start a hub", str(paths.HUB_ENV / "lib"), check=False).returncode == 1
    assert old_hub.tb.run("sha256sum", str(paths.PASSWORD_STORE)).stdout == password_store
    assert _server_pid(old_hub) == pid
    _hub_answers_and_the_student_computes(old_hub)


def test_a_reboot_in_the_middle_of_an_upgrade_leaves_the_previous_hub_working(old_hub):
    # A build that has converged the machine (new hub environment, units, hub restarted on
    # it) and then waits for the hub far longer than any upgrade: the reboot comes then.
    slow = _copy_in(old_hub, "slow-src")
    health = old_hub.tb.root() / slow.lstrip("/") / "installer/hubstead/machine/health.py"
    health.write_text(health.read_text().replace(
        '    """Wait until the hub\'s API answers through the proxy; returns the seconds waited."""\n',
        '    """Wait until the hub\'s API answers through the proxy; returns the seconds waited."""\n'
        '    import time; time.sleep(3600)  # slow build\n'))
    assert "slow build" in health.read_text()
    password_store = old_hub.tb.run("sha256sum", str(paths.PASSWORD_STORE)).stdout
    digest_before = old_hub.tb.run("cat", str(paths.HUB_CONFIG_DIGEST)).stdout
    old_hub.tb.run("systemd-run", "--unit=slow-upgrade", "python3", f"{slow}/bin/bootstrap.py", "--from", slow,
                   "--user-env", "venv", "--admin", f"{ADMIN}:{ADMIN_PASSWORD}")
    deadline = time.monotonic() + 900
    while old_hub.tb.run("cat", str(paths.HUB_CONFIG_DIGEST)).stdout == digest_before:
        assert time.monotonic() < deadline, "the slow build never converged the machine"
        time.sleep(1)
    assert old_hub.tb.run("grep", "-rqs", "slow build", str(paths.HUB_ENV / "lib"), check=False).returncode == 0
    old_hub.tb.reboot(timeout=300)  # the stop waits for the upgrade's units
    # At boot the previous Hubstead is put back and converges the machine.
    deadline = time.monotonic() + 900
    while old_hub.tb.run("test", "-e", str(paths.PREVIOUS_HUB_ENV), check=False).returncode == 0 or \
            old_hub.tb.run("systemctl", "is-active", "--quiet", paths.ROLLBACK_UNIT, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the rollback never finished"
        time.sleep(2)
    rollback_log = old_hub.tb.run("journalctl", "-b", "-u", paths.ROLLBACK_UNIT, "--no-pager", "-o", "cat").stdout
    assert "the previous Hubstead, its settings and state are back" in rollback_log, rollback_log
    assert old_hub.tb.run("grep", "-rqs", "slow build", str(paths.HUB_ENV / "lib"), check=False).returncode == 1
    assert old_hub.tb.run("cat", str(paths.HUB_CONFIG_DIGEST)).stdout == digest_before
    assert old_hub.tb.run("sha256sum", str(paths.PASSWORD_STORE)).stdout == password_store
    old_hub.wait_http("http://127.0.0.1/hub/api/", timeout=120, status=200)
    _hub_answers_and_the_student_computes(old_hub)
