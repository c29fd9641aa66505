"""The whole first-day story on a really booted systemd target: install, teacher logs in,
adds a student, the student computes in their own server, and it all survives a hub
restart, a reboot and a re-run of the installer, on one machine. Each test can run alone:
what it needs (a logged-in teacher, the student, their running server) comes from fixtures."""

import json
import re

import pytest
import requests
from conftest import installed, module_target
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code

from hubstead.config.schema import ROLES
from hubstead.core import paths

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub():
    """A real install (the install itself is under test: its own, not a copy of the image)."""
    with module_target(installed("hubstead-install")) as target:
        yield target


STUDENT, STUDENT_PASSWORD = "student1", "student-pass-1"
STUDENT_UNIT = "jupyter-student1"


@pytest.fixture(scope="module")
def added(teacher):
    """The hub's answer to adding STUDENT through its REST API (what its admin page does)."""
    return teacher.api("POST", f"/users/{STUDENT}")


@pytest.fixture(scope="module")
def student_password_set(hub, added):
    """The CLI's output on giving the student added through the API a password."""
    return hub.tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=STUDENT_PASSWORD + "\n")


@pytest.fixture(scope="module")
def student(student_password_set):
    """STUDENT logged in, with their server running."""
    session = HubSession()
    assert session.login(STUDENT, STUDENT_PASSWORD).status_code == 302
    session.start_server(STUDENT)
    return session


def test_install_prints_url_and_admin(hub):
    assert re.search(r"URL:\s+http://\S+/", hub.install_output)
    assert f"admin: {ADMIN}" in hub.install_output
    assert ADMIN_PASSWORD not in hub.install_output


def test_hub_answers_through_the_proxy_on_port_80(host):
    r = requests.get("http://127.0.0.1/", timeout=30)
    assert r.status_code == 200
    assert "/hub/login" in r.url
    assert host.service(paths.PROXY_UNIT).is_running
    assert host.service(paths.HUB_UNIT).systemd_properties["UnitFileState"] == "enabled"


def test_hub_and_proxy_api_listen_on_loopback_only(host):
    internal = (paths.HUB_PORT, paths.TEACHER_PORT, paths.TRAEFIK_API_PORT)
    for port in internal:
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening, port
    elsewhere = [s for s in host.socket.get_listening_sockets()
                 if s.startswith("tcp://") and int(s.rsplit(":", 1)[1]) in internal
                 and not s.startswith("tcp://127.0.0.1:")]
    assert not elsewhere


def test_the_proxy_runs_as_its_own_user_and_reads_nothing_else_of_hubsteads(hub, host):
    pid = host.service(paths.PROXY_UNIT).systemd_properties["MainPID"]
    assert host.file(f"/proc/{pid}").user == paths.PROXY_USER
    # What a compromised traefik could reach: its rules, not the hub's secrets or state.
    as_proxy = ("runuser", "-u", paths.PROXY_USER, "--", "cat")
    assert "route_api" in hub.tb.run(*as_proxy, str(paths.HUB_ROUTES_FILE)).stdout
    for secret in (paths.PASSWORD_STORE, paths.COOKIE_SECRET, paths.CLI_API_TOKEN, paths.HUB_DB,
                   paths.CONFIG_FILE, paths.TRAEFIK_CONFIG):
        denied = hub.tb.run(*as_proxy, str(secret), check=False)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, secret


def test_wrong_password_is_403_without_saying_which_part(hub):
    r = HubSession().login(ADMIN, "not-the-password")
    assert r.status_code == 403
    assert "Invalid username or password" in r.text
    assert HubSession().login("nobody", "not-the-password").status_code == 403


def test_teacher_logs_in_through_the_form(hub):
    teacher = HubSession()
    r = teacher.login(ADMIN, ADMIN_PASSWORD)
    assert r.status_code == 302
    me = teacher.api("GET", "/user").json()
    # A teacher, not the hub's admin (that is users.sudoers): JupyterHub's admin page works.
    assert me["name"] == ADMIN and me["admin"] is False
    assert teacher.http.get("http://127.0.0.1/hub/admin", timeout=30).status_code == 200


def test_teacher_is_not_root(hub):
    r = hub.tb.run("runuser", "-u", "jupyter-teacher", "--", "sudo", "-n", "true", check=False)
    assert r.returncode != 0


def test_adding_a_user_creates_the_unix_account_at_once(hub, host, added):
    assert added.status_code == 201, added.text
    assert host.user("jupyter-student1").home == "/home/jupyter-student1"
    home = host.file("/home/jupyter-student1")
    assert home.mode == 0o700 and home.user == "jupyter-student1"
    other = hub.tb.run("runuser", "-u", "jupyter-teacher", "--", "ls", "/home/jupyter-student1", check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr


def test_invalid_name_is_refused_by_the_hub_and_no_account_made(hub, teacher):
    r = teacher.api("POST", "/users/Bad%20Name!")
    assert r.status_code == 400
    assert "Bad" not in hub.tb.run("getent", "passwd").stdout


def test_cli_sets_the_password_of_the_added_user(hub, student_password_set):
    assert "already there: student1 (Unix account jupyter-student1)" in student_password_set.stdout
    listing = hub.tb.run("hubstead", "users", "list").stdout
    assert re.search(r"student1\s+student\s+jupyter-student1\s+set\s+stopped", listing), listing
    assert re.search(r"teacher\s+teacher\s+jupyter-teacher", listing), listing


def test_cli_refuses_a_bad_name_with_one_line_and_changes_nothing(hub, host):
    before = host.file(str(paths.PASSWORD_STORE)).content_string
    r = hub.tb.run("hubstead", "users", "add", "Bad Name!", "--generate", check=False)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "invalid user name 'Bad Name!'" in r.stderr
    assert host.file(str(paths.PASSWORD_STORE)).content_string == before


def test_a_long_name_gets_a_hashed_unix_account_and_spawn_recreates_a_lost_one(hub, host, teacher):
    from hubstead.core.usernames import unix_name
    long_name = "averyveryverylongstudentname1"
    account = unix_name(long_name)
    assert teacher.api("POST", f"/users/{long_name}").status_code == 201
    assert host.user(account).exists
    # An account deleted behind the hub's back comes back when the server starts.
    hub.tb.run("userdel", "--remove", account)
    teacher.start_server(long_name)
    assert host.user(account).exists
    assert host.service(account).is_running
    assert teacher.api("DELETE", f"/users/{long_name}/server").status_code in (202, 204)


def test_student_logs_in_and_gets_their_own_unit_as_their_own_uid(host, student):
    unit = host.service(STUDENT_UNIT)
    assert unit.is_running
    uid = host.user("jupyter-student1").uid
    status = host.file(f"/proc/{unit.systemd_properties['MainPID']}/status").content_string
    assert re.search(rf"^Uid:\s+{uid}\s", status, re.M)
    assert unit.systemd_properties["PrivateTmp"] == "yes"
    assert unit.systemd_properties["NoNewPrivileges"] == "yes"
    denied = {a.removesuffix("/32").removesuffix("/128") for a in unit.systemd_properties["IPAddressDeny"].split()}
    assert {"169.254.0.0/16", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"} <= denied, denied
    lab = student.http.get(f"http://127.0.0.1/user/{STUDENT}/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text


def test_kernel_computes_over_a_websocket_through_the_proxy(student):
    token = student.token(STUDENT)
    assert run_code(STUDENT, token, "print(6*7)").strip() == "42"
    whoami = run_code(STUDENT, token, "import getpass; print(getpass.getuser())").strip()
    assert whoami == "jupyter-student1"


def test_hub_restart_keeps_the_student_server_running_and_reachable(hub, host, student):
    token = student.token(STUDENT)
    pid = host.service(STUDENT_UNIT).systemd_properties["MainPID"]
    hub.tb.run("systemctl", "restart", "jupyterhub")
    hub.wait_http("http://127.0.0.1/hub/api/")
    assert host.service(STUDENT_UNIT).systemd_properties["MainPID"] == pid
    r = requests.get(f"http://127.0.0.1/user/{STUDENT}/api/status",
                     headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200


def test_secrets_stay_out_of_logs_and_command_lines(hub, host, student):
    # `student` has had their password set and used (stdin, the login form) and a server started.
    journal = hub.tb.run("journalctl", "--no-pager", "-o", "cat").stdout
    cmdlines = hub.tb.run("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    token = host.file(str(paths.CLI_API_TOKEN)).content_string.strip()
    for secret in (ADMIN_PASSWORD, STUDENT_PASSWORD, token):
        assert secret not in journal
        assert secret not in cmdlines
    assert host.file(str(paths.ANSIBLE_RUNS)).listdir() == []  # no artifacts kept


# Each role converges on its own (the tags `hubstead config apply` picks roles by), and
# a second run finds nothing left to change.
RUN_EACH_ROLE_TWICE = """
import json
from hubstead import config
from hubstead.config.schema import ROLES
from hubstead.machine import converge
variables = converge.role_variables(config.load())
second = {}
for role in ROLES:
    converge.run(variables, roles=(role,))
    second[role] = converge.run(variables, roles=(role,)).changed_tasks
print(json.dumps(second))
"""


def test_each_role_run_alone_a_second_time_changes_nothing(hub):
    out = hub.tb.run(str(paths.HUB_ENV / "bin" / "python"), "-c", RUN_EACH_ROLE_TWICE, timeout=1200).stdout
    assert json.loads(out.splitlines()[-1]) == {role: [] for role in ROLES}


def test_rerunning_bootstrap_changes_and_restarts_nothing(hub, host):
    hub_pid = host.service(paths.HUB_UNIT).systemd_properties["MainPID"]
    proxy_pid = host.service(paths.PROXY_UNIT).systemd_properties["MainPID"]
    out = hub.bootstrap().stdout
    assert "(0 changes" in out, out
    assert host.service(paths.HUB_UNIT).systemd_properties["MainPID"] == hub_pid
    assert host.service(paths.PROXY_UNIT).systemd_properties["MainPID"] == proxy_pid


def test_reboot_brings_hub_proxy_and_login_back(hub, host, student_password_set):
    hub.tb.reboot()
    hub.wait_http("http://127.0.0.1/hub/api/", timeout=120, status=200)
    assert host.service(paths.HUB_UNIT).is_running
    assert host.service(paths.PROXY_UNIT).is_running
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    _, token = own_server(STUDENT, STUDENT_PASSWORD)
    assert run_code(STUDENT, token, "print(6*7)").strip() == "42"
