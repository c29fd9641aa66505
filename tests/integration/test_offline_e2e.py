"""A machine without internet installs from a wheelhouse. The wheelhouse is made on a
connected machine (this host) by the documented command; the target then reboots with a
loopback of its own and nothing else (no route to the package index or anywhere), and
is driven from inside. Debian's packages the installer needs are there already, as from
a local mirror or the install media: only Python comes from the wheelhouse."""

import subprocess

import pytest
from conftest import CHECKOUT
from hubclient import ADMIN, ADMIN_PASSWORD
from testbed import Testbed

from hubstead.core import paths

pytestmark = pytest.mark.integration

WHEELHOUSE = "/root/wheels"
INSTALL = ("python3", "/opt/src/bin/bootstrap.py", "--user-env", "venv", "--admin", f"{ADMIN}:{ADMIN_PASSWORD}")
# The test client, run inside the target by the user environment's python (requests and
# websocket-client come with JupyterLab): the host can't reach the target any more.
STUDENT_COMPUTES = """
import sys
sys.path.insert(0, "/opt/src/tests/integration")
from hubclient import own_server, run_code
_, token = own_server("kim", "kim-password-1")
print(run_code("kim", token, "print(6 * 7)").strip())
"""


@pytest.fixture(scope="module")
def offline():
    tb = Testbed(name="hubstead-offline", binds_ro={str(CHECKOUT): "/opt/src"})
    tb.up()
    try:
        apt = tb.run("python3", "-c", "import runpy; print(' '.join(runpy.run_path('/opt/src/bin/bootstrap.py')"
                                      "['APT_PACKAGES']))").stdout.split()
        tb.run("apt-get", "update", "-q", timeout=300)
        tb.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends",
               *apt, timeout=600)
        # On a connected machine of the same release and CPU: this host.
        subprocess.run(["python3", str(CHECKOUT / "bin" / "bootstrap.py"), "--make-wheelhouse",
                        str(tb.root() / WHEELHOUSE.lstrip("/")), "--from", str(CHECKOUT)], check=True, timeout=1200)
        tb.reboot(network=False)
        yield tb
    finally:
        tb.down()


def test_without_the_index_the_installer_says_so_in_one_line_and_changes_nothing(offline):
    r = offline.run(*INSTALL, "--from", "/opt/src", check=False)
    assert r.returncode == 1
    [line] = r.stderr.splitlines()
    assert line.startswith("hubstead-bootstrap: error: cannot reach the package index: [Errno")
    assert line.endswith("or use --wheelhouse DIR")
    assert offline.run("test", "-e", str(paths.PREFIX), check=False).returncode == 1
    assert offline.run("test", "-e", str(paths.CONFIG_DIR), check=False).returncode == 1


def test_with_the_wheelhouse_it_installs_and_a_student_computes(offline):
    # Hubstead itself comes from the wheelhouse too (no --from).
    out = offline.run(*INSTALL, "--wheelhouse", WHEELHOUSE, timeout=1200).stdout
    assert "is running" in out
    assert offline.run("hubstead", "config", "show", "wheelhouse").stdout.strip() == WHEELHOUSE
    offline.run("hubstead", "users", "add", "kim", "--password-stdin", input="kim-password-1\n")
    computed = offline.run(str(paths.USER_ENV / "bin" / "python"), "-c", STUDENT_COMPUTES, timeout=300).stdout
    assert computed.strip() == "42"


def test_a_package_from_the_wheelhouse_is_added_to_the_user_environment_offline(offline):
    # A package the wheelhouse has (it came with the hub's) and the students do not yet.
    python = str(paths.USER_ENV / "bin" / "python")
    assert offline.run(python, "-c", "import ruamel.yaml", check=False).returncode == 1
    offline.run("hubstead", "config", "add-item", "user_environment.pip_packages", "ruamel.yaml")
    offline.run("hubstead", "config", "apply", timeout=900)
    offline.run(python, "-c", "import ruamel.yaml")
