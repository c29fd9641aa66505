"""Packages for everyone and plugins on a booted target (venv user environment): a
teacher adds pip packages with `hubstead packages` and on the teacher's page and a
student's new kernel imports them; an unknown package is one line and changes nothing;
an apt package comes and goes; a sysadmin's `sudo -u hubstead-env pip install` in their
server installs for everyone; the test plugin (tests/plugins/hubstead-test-plugin) adds a user
package, a hub setting and a new-user step, and at install changes config and runs its
post-install step. The plugin goes first: applying it restarts the hub."""

import html
import re

import pytest
import requests
from hubclient import ADMIN, ADMIN_PASSWORD, BASE, HubSession, own_server, run_code

from hubstead.core import paths

pytestmark = pytest.mark.integration

STUDENT, STUDENT_PASSWORD = "ann", "ann-password-1"
SYSADMIN, SYSADMIN_PASSWORD = "sam", "sam-password-1"
NEWCOMER, NEWCOMER_PASSWORD = "nell", "nell-password-1"
PLUGIN_DIR = "/opt/src/tests/plugins/hubstead-test-plugin"
PLUGIN_SPEC = f"hubstead-test-plugin @ file://{PLUGIN_DIR}"
USER_PYTHON = str(paths.USER_ENV / "bin" / "python")
MISSING = "hubstead-no-such-package-xyz"
TEACHER_PAGE = f"{BASE}/services/teacher/"


def hubstead(hub, *args, check=True, timeout=600):
    return hub.tb.run("hubstead", *args, check=check, timeout=timeout)


def add_user(hub, name, password):
    hub.tb.run("hubstead", "users", "add", name, "--password-stdin", input=password + "\n")


def imports(name: str, token: str, module: str) -> str:
    """What a new kernel of ``name``'s says when it imports ``module``: its file, or the error."""
    try:
        return run_code(name, token, f"import {module}; print({module}.__file__)").strip()
    except RuntimeError as e:
        return f"error: {str(e)[-300:]}"


def user_env_packages(hub) -> str:
    return hub.tb.run(str(paths.HUB_ENV / "bin" / "uv"), "pip", "freeze", "-p", USER_PYTHON).stdout


@pytest.fixture(scope="module")
def plugin(hub):
    """The test plugin named in config and applied (installed into the hub's environment,
    its package into the user environment, the hub restarted with its setting)."""
    hubstead(hub, "config", "add-item", "plugins", PLUGIN_SPEC)
    return hubstead(hub, "config", "apply", timeout=900).stdout


@pytest.fixture(scope="module")
def student(hub, plugin):
    """ann with her server running (started before any package is added)."""
    add_user(hub, STUDENT, STUDENT_PASSWORD)
    return own_server(STUDENT, STUDENT_PASSWORD)[1]


@pytest.fixture(scope="module")
def teacher_page(hub, plugin):
    """The teacher's logged-in session on the teacher's page, and the page's form token."""
    session = HubSession()
    assert session.login(ADMIN, ADMIN_PASSWORD).status_code == 302
    page = session.http.get(TEACHER_PAGE, timeout=60)
    assert page.status_code == 200, page.text[:500]
    return session, html.unescape(re.search(r'name="_xsrf" value="([^"]+)"', page.text)[1])


def test_the_plugin_adds_a_package_a_hub_setting_and_a_new_user_step(hub, host, plugin):
    listed = hubstead(hub, "packages", "list").stdout
    assert "pip\tinflection\t(plugin)" in listed
    assert "plugin\thubstead-test-plugin:test" in listed

    add_user(hub, NEWCOMER, NEWCOMER_PASSWORD)
    welcome = host.file(f"/home/jupyter-{NEWCOMER}/welcome-from-plugin.txt")
    assert welcome.exists and welcome.user == f"jupyter-{NEWCOMER}"
    assert welcome.content_string == f"Welcome, {NEWCOMER}!\n"

    _, token = own_server(NEWCOMER, NEWCOMER_PASSWORD)
    assert imports(NEWCOMER, token, "inflection").startswith(str(paths.USER_ENV))
    assert run_code(NEWCOMER, token, "import os; print(os.environ['HUBSTEAD_TEST_PLUGIN'])").strip() == \
        "hub-setting-from-the-plugin"


def test_the_new_user_step_runs_once_per_account(hub, host, plugin):
    # JupyterHub adds every known user again at each start: no second welcome.
    home = f"/home/jupyter-{NEWCOMER}"
    hub.tb.run("rm", f"{home}/welcome-from-plugin.txt")
    hubstead(hub, "config", "reload", "hub")
    assert not host.file(f"{home}/welcome-from-plugin.txt").exists


def test_a_package_added_on_the_command_line_reaches_a_running_servers_new_kernel(hub, student):
    assert imports(STUDENT, student, "tabulate").startswith("error")

    added = hubstead(hub, "packages", "add", "tabulate")

    assert "added tabulate" in added.stdout
    assert imports(STUDENT, student, "tabulate").startswith(str(paths.USER_ENV))
    assert hubstead(hub, "config", "show", "user_environment.pip_packages").stdout.strip() == "- tabulate"


def test_an_unknown_package_is_one_line_and_changes_nothing(hub, host):
    config_before, env_before = host.file(str(paths.CONFIG_FILE)).sha256sum, user_env_packages(hub)

    r = hubstead(hub, "packages", "add", "tabulate", MISSING, check=False)

    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and MISSING in r.stderr and "cannot be installed" in r.stderr, r.stderr
    assert host.file(str(paths.CONFIG_FILE)).sha256sum == config_before
    assert user_env_packages(hub) == env_before


def test_a_teacher_adds_and_removes_a_package_on_the_teachers_page(hub, student, teacher_page):
    session, xsrf = teacher_page

    added = session.http.post(f"{TEACHER_PAGE}packages", timeout=600,
                              data={"_xsrf": xsrf, "action": "add", "kind": "pip", "names": "toolz"})

    assert added.status_code == 200 and "<code>toolz</code>" in added.text, added.text[-2000:]
    assert imports(STUDENT, student, "toolz").startswith(str(paths.USER_ENV))

    refused = session.http.post(f"{TEACHER_PAGE}packages", timeout=600,
                                data={"_xsrf": xsrf, "action": "add", "kind": "pip", "names": MISSING})
    assert refused.status_code == 400
    assert refused.text.count("\n") == 0 and MISSING in refused.text and "cannot be installed" in refused.text

    removed = session.http.post(f"{TEACHER_PAGE}packages", timeout=600,
                                data={"_xsrf": xsrf, "action": "remove", "kind": "pip", "names": "toolz"})
    assert removed.status_code == 200 and "<code>toolz</code>" not in removed.text
    assert imports(STUDENT, student, "toolz").startswith("error")


def test_removing_a_pip_package_uninstalls_it(hub, student):
    hubstead(hub, "packages", "add", "tabulate")

    hubstead(hub, "packages", "remove", "tabulate")

    assert imports(STUDENT, student, "tabulate").startswith("error")
    assert "tabulate" not in hubstead(hub, "packages", "list").stdout


def test_an_apt_package_is_installed_for_everyone_and_removed(hub, host, student):
    assert not host.package("tree").is_installed

    hubstead(hub, "packages", "add", "--apt", "tree")

    assert host.package("tree").is_installed
    assert run_code(STUDENT, student, "import subprocess; print(subprocess.run(['tree', '--version'], "
                                      "capture_output=True, text=True).stdout)").startswith("tree v")

    hubstead(hub, "packages", "remove", "--apt", "tree")
    assert not host.package("tree").is_installed
    r = hubstead(hub, "packages", "add", "--apt", "hubstead-no-such-deb", check=False)
    assert r.returncode == 1 and "Unable to locate package hubstead-no-such-deb" in r.stderr


def test_an_apt_package_the_machine_had_is_left_alone(hub, host):
    r = hubstead(hub, "packages", "add", "--apt", "coreutils", check=False)
    assert r.returncode == 1 and "already installed on this machine, not by Hubstead" in r.stderr
    assert host.package("coreutils").is_installed


def test_a_sysadmins_sudo_pip_install_in_their_server_installs_for_everyone(hub, student):
    # As the environment's owner (root's own path never holds the environment).
    hubstead(hub, "config", "add-item", "users.sudoers", SYSADMIN)
    hubstead(hub, "config", "reload", "hub")
    add_user(hub, SYSADMIN, SYSADMIN_PASSWORD)
    _, token = own_server(SYSADMIN, SYSADMIN_PASSWORD)

    # What a terminal in their JupyterLab runs: a login shell of theirs, in their server's unit.
    out = run_code(SYSADMIN, token, "import subprocess; r = subprocess.run(['bash', '-lc', "
                                    f"'sudo -u {paths.USER_ENV_OWNER} pip install --no-input pyjokes && id -un'], "
                                    "capture_output=True, text=True); print(r.returncode, r.stdout[-300:], "
                                    "r.stderr[-600:])", timeout=300)

    assert out.startswith("0 ") and f"jupyter-{SYSADMIN}" in out, out
    assert imports(STUDENT, student, "pyjokes").startswith(str(paths.USER_ENV))


def test_a_student_cannot_sudo_pip_install(hub, student):
    out = run_code(STUDENT, student, "import subprocess; r = subprocess.run(['bash', '-lc', "
                                     "'sudo -n pip install six'], capture_output=True, text=True); "
                                     "print(r.returncode)")
    assert out.strip() != "0"


def test_config_apply_puts_back_a_recorded_package(hub, student):
    # As an upgrade does: it re-runs the roles, which install every recorded package.
    hubstead(hub, "packages", "add", "tabulate")
    hub.tb.run(str(paths.HUB_ENV / "bin" / "uv"), "pip", "uninstall", "-p", USER_PYTHON, "tabulate")
    assert imports(STUDENT, student, "tabulate").startswith("error")

    hubstead(hub, "config", "apply", "--all-roles", timeout=900)

    assert imports(STUDENT, student, "tabulate").startswith(str(paths.USER_ENV))
    assert requests.get(f"{BASE}/hub/health", timeout=30).status_code == 200


def test_the_plugin_changes_config_and_runs_at_install(hub, host, plugin):
    # Last: the install restarts the hub with the changed config.
    assert not host.file("/run/hubstead-test-plugin-post-install").exists

    hubstead(hub, "install", timeout=900)

    assert host.file("/run/hubstead-test-plugin-post-install").content_string == "ran\n"
    assert hubstead(hub, "config", "show", "services.cull.timeout").stdout.strip() == "7200"
