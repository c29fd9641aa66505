"""A course inside the hub, on one booted target: a teacher's course material link that a
student follows (in a real Chromium) to a git repository served on loopback inside the
target; an R kernel switched on by one setting; a second environment with a package of
its own; a student signed in with an e-mail address; and a student's kernel used from
outside the hub by a Jupyter client library, with a token the student made."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from browser import Browser
from hubclient import own_server, run_code, teacher_page_post, wait_for_route
from jupyter_kernel_client import JupyterKernelClient

from hubstead.core import usernames

pytestmark = pytest.mark.integration

STUDENT, STUDENT_PASSWORD = "ann", "ann-password-1"
EMAIL_USER, EMAIL_PASSWORD = "alice@school.edu", "alice-password-1"
# The course repository, served by git daemon on the target's loopback (no network).
GIT_PORT = 9418
REPO = f"git://127.0.0.1:{GIT_PORT}/course.git"
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
# The kernel's Unix user (not getpass.getuser(): $USER in a unit may be the uid).
WHO_AM_I = "import os, pwd; who = pwd.getpwuid(os.getuid()).pw_name"
MAKE_REPO = f"""set -e
rm -rf /tmp/course-work /srv/course-git && mkdir -p /srv/course-git
git init -q -b main /tmp/course-work && cd /tmp/course-work
mkdir week1 && printf '%s' '{NOTEBOOK}' > week1/lesson1.ipynb && echo 'x,y' > data.csv
git add . && git -c user.name=teacher -c user.email=t@school.edu commit -qm 'week 1'
git clone -q --bare /tmp/course-work /srv/course-git/course.git
"""


def hubstead(hub, *args, check=True, input=None, timeout=1200):
    return hub.tb.run("hubstead", *args, check=check, input=input, timeout=timeout)


def config_text(hub) -> str:
    return hub.tb.run("cat", "/etc/hubstead/config.yaml").stdout


@pytest.fixture(scope="module")
def student(hub):
    """ann, logged in with her server running: her session and a token of hers."""
    hubstead(hub, "users", "add", STUDENT, "--password-stdin", input=STUDENT_PASSWORD + "\n")
    return own_server(STUDENT, STUDENT_PASSWORD)


@pytest.fixture(scope="module")
def course_repo(hub):
    """A git repository with week1/lesson1.ipynb and data.csv, served by git daemon on loopback
    (which the sysadmins allow course links on, as a school's own git server's network)."""
    hubstead(hub, "config", "add-item", "hub.course_link_networks", "127.0.0.1/32")
    hub.tb.run("sh", "-c", MAKE_REPO)
    hub.tb.run("systemd-run", "--unit=course-git", "git", "daemon", "--export-all", "--reuseaddr",
               "--base-path=/srv/course-git", "--listen=127.0.0.1", f"--port={GIT_PORT}", "/srv/course-git")
    hub.tb.run("sh", "-c", f"for i in $(seq 50); do git ls-remote {REPO} >/dev/null 2>&1 && exit 0; sleep 0.2; done; "
                           "exit 1")
    return REPO


def test_git_is_installed_for_nbgitpuller(hub):
    assert hub.tb.run("git", "--version").stdout.startswith("git version")


def test_a_student_follows_the_teachers_link_and_finds_the_files_in_her_home(hub, teacher, student, course_repo):
    r = teacher_page_post(teacher, "link", repo=course_repo, branch="main", path="week1/lesson1.ipynb", app="lab")
    assert r.status_code == 200, r.text
    link = html.unescape(re.search(r'id="course-link" value="([^"]+)"', r.text).group(1))
    assert link.startswith("http://127.0.0.1/hub/user-redirect/git-pull?")
    with Browser() as browser:
        browser.login(STUDENT, STUDENT_PASSWORD)
        browser.driver.get(link)
        # nbgitpuller clones, then opens the file in JupyterLab.
        browser.wait_url_contains("/user/ann/lab/tree/course/week1/lesson1.ipynb", timeout=120)
    home = hub.home(usernames.unix_name(STUDENT))
    listing = hub.tb.run("stat", "-c", "%U %n", f"{home}/course/week1/lesson1.ipynb", f"{home}/course/data.csv").stdout
    assert listing.split() == ["jupyter-ann", f"{home}/course/week1/lesson1.ipynb",
                               "jupyter-ann", f"{home}/course/data.csv"]


@pytest.mark.parametrize("form, says", [
    ({"repo": f"git://127.0.0.1:{GIT_PORT}/nothere.git"}, "not reachable as a git repository"),
    ({"repo": REPO, "branch": "mian"}, "has no branch 'mian'"),
    ({"repo": "file:///etc/hubstead"}, "use an https://, http:// or git:// URL"),
])
def test_a_broken_repository_is_a_clear_error_on_the_teachers_page(teacher, course_repo, form, says):
    r = teacher_page_post(teacher, "link", **{"branch": "main", "path": "", "app": "lab", **form})
    assert r.status_code == 400 and says in r.text, r.text


def test_a_student_with_an_email_name_gets_a_server_as_the_mapped_unix_user(hub):
    hubstead(hub, "users", "add", EMAIL_USER, "--password-stdin", input=EMAIL_PASSWORD + "\n")
    _, token = own_server(EMAIL_USER, EMAIL_PASSWORD)
    unix_name = usernames.unix_name(EMAIL_USER)
    assert re.match(r"^jupyter-alice-school-[0-9a-f]{6}$", unix_name)
    assert run_code(EMAIL_USER, token, f"{WHO_AM_I}; import os; print(who, os.getcwd())").split() == [
        unix_name, hub.home(unix_name)]
    # The spawner names the account's uid in the unit.
    uid = hub.tb.run("id", "-u", unix_name).stdout.strip()
    assert hub.tb.run("systemctl", "show", "-p", "User", "--value", f"{unix_name}.service").stdout.strip() == uid


def remote_client(token: str) -> JupyterKernelClient:
    # As docs/remote-kernels.md says: the token in a header, never in a URL.
    return JupyterKernelClient(server_url=f"http://127.0.0.1/user/{STUDENT}", token=token,
                               headers={"Authorization": f"token {token}"})


def test_a_jupyter_client_outside_the_hub_runs_code_in_a_students_kernel(student):
    session, _ = student
    token = session.token(STUDENT)  # as the hub's token page makes one
    with remote_client(token) as kernel:
        reply = kernel.execute(f"{WHO_AM_I}; print(who, 6 * 7)", timeout=60)
    assert reply["status"] == "ok"
    assert [o.get("text") for o in reply["outputs"]] == ["jupyter-ann 42\n"]


def test_the_docs_console_outside_the_hub_reaches_a_students_kernel(student, tmp_path):
    session, _ = student
    docs = (Path(__file__).resolve().parents[2] / "docs" / "remote-kernels.md").read_text()
    script = tmp_path / "hub-console.py"
    script.write_text(re.search(r"<!-- hub-console.py:[^>]*-->\n```python\n(.*?)```", docs, re.DOTALL).group(1))
    result = subprocess.run([sys.executable, str(script)], input=f"{WHO_AM_I}\nprint(who, 6 * 7)\n",
                            capture_output=True, text=True, timeout=180,
                            env={**os.environ, "HUB_SERVER_URL": f"http://127.0.0.1/user/{STUDENT}",
                                 "HUB_TOKEN": session.token(STUDENT)})
    assert result.returncode == 0 and "jupyter-ann 42" in result.stdout, result.stdout + result.stderr


def test_a_client_without_a_students_token_gets_no_kernel(student):
    with pytest.raises(requests.HTTPError, match="403"), remote_client("not-a-token") as kernel:
        kernel.execute("1")


def kernelspecs(token: str) -> dict:
    r = requests.get(f"http://127.0.0.1/user/{STUDENT}/api/kernelspecs",
                     headers={"Authorization": f"token {token}"}, timeout=30)
    r.raise_for_status()
    return r.json()["kernelspecs"]


def test_one_setting_gives_every_student_an_r_kernel(hub, student):
    _, token = student
    assert "ir" not in kernelspecs(token)
    hubstead(hub, "config", "set", "user_environment.r", "true")
    hubstead(hub, "config", "apply")
    wait_for_route(STUDENT, token)  # the hub restarted
    assert kernelspecs(token)["ir"]["spec"]["language"] == "R"
    assert run_code(STUDENT, token, "cat(6*7)", kernel="ir", timeout=120) == "42"


def test_a_bad_environment_name_is_one_line_and_changes_nothing(hub):
    before = config_text(hub)
    result = hubstead(hub, "env", "create", "Stats!", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ("hubstead: error: invalid environment name 'Stats!': use lowercase letters, "
                                     "digits, '_' and '-', starting with a letter, at most 32 characters")
    assert config_text(hub) == before


def test_a_package_that_does_not_exist_leaves_no_environment(hub):
    before = config_text(hub)
    hub.tb.run("sh", "-c", "echo no-such-package-hubstead-e2e > /root/broken.txt")
    result = hubstead(hub, "env", "create", "broken", "-r", "/root/broken.txt", check=False)
    assert result.returncode == 1 and "no-such-package-hubstead-e2e" in result.stderr
    assert config_text(hub) == before
    assert hub.tb.run("test", "-e", "/opt/hubstead/envs/broken", check=False).returncode == 1


def test_a_second_environments_kernel_has_its_own_package(hub, student):
    _, token = student
    hub.tb.run("sh", "-c", "printf 'cowsay\\n' > /root/stats.txt")
    hubstead(hub, "env", "create", "stats", "--python", "3.11", "-r", "/root/stats.txt")
    wait_for_route(STUDENT, token)
    assert "stats" in hubstead(hub, "env", "list").stdout
    assert kernelspecs(token)["env-stats"]["spec"]["display_name"] == "Python (stats)"
    assert run_code(STUDENT, token, "import sys, cowsay; print(sys.prefix, sys.version_info[:2])",
                    kernel="env-stats") == "/opt/hubstead/envs/stats (3, 11)\n"
    # The default kernel does not have it.
    assert run_code(STUDENT, token, "import importlib.util; print(importlib.util.find_spec('cowsay'))") == "None\n"


def test_apply_makes_a_lost_environment_again_and_remove_takes_it_away(hub, student):
    _, token = student
    hub.tb.run("rm", "-rf", "/opt/hubstead/envs/stats")  # as a disk restored without it would be
    hubstead(hub, "config", "apply", "--all-roles")
    wait_for_route(STUDENT, token)
    assert run_code(STUDENT, token, "import cowsay; print('ok')", kernel="env-stats") == "ok\n"
    hubstead(hub, "env", "remove", "stats")
    wait_for_route(STUDENT, token)
    assert "env-stats" not in kernelspecs(token)
    assert hub.tb.run("test", "-e", "/opt/hubstead/envs/stats", check=False).returncode == 1
