"""The whole first-day story on a really booted systemd target: install, teacher logs in,
adds a student, the student computes in their own server, and it all survives a hub
restart, a reboot and a re-run of the installer. Steps run in order on one machine."""

import re

import pytest
import requests
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, run_code, wait_for_route

from hubstead.core import paths

pytestmark = pytest.mark.integration

STUDENT, STUDENT_PASSWORD = "student1", "student-pass-1"
state = {}


def test_install_prints_url_and_admin(hub):
    assert re.search(r"URL:\s+http://\S+/", hub.install_output)
    assert f"admin: {ADMIN}" in hub.install_output
    assert ADMIN_PASSWORD not in hub.install_output


def test_hub_answers_through_the_proxy_on_port_80(hub):
    r = requests.get("http://127.0.0.1/", timeout=30)
    assert r.status_code == 200
    assert "/hub/login" in r.url
    assert hub.unit_property("traefik", "ActiveState") == "active"
    assert hub.unit_property("jupyterhub", "UnitFileState") == "enabled"


def test_hub_and_proxy_api_listen_on_loopback_only(hub):
    listening = hub.tb.run("ss", "--listening", "--tcp", "--numeric", "--no-header").stdout
    local = {line.split()[3] for line in listening.splitlines()}
    internal = (f":{paths.HUB_PORT}", f":{paths.TEACHER_PORT}", f":{paths.TRAEFIK_API_PORT}")
    assert {f"127.0.0.1{port}" for port in internal} <= local
    assert not [a for a in local if a.endswith(internal) and not a.startswith("127.0.0.1:")]


def test_the_proxy_runs_as_its_own_user_and_reads_nothing_else_of_hubsteads(hub):
    pid = hub.tb.run("systemctl", "show", "--property=MainPID", "--value", paths.PROXY_UNIT).stdout.strip()
    assert hub.tb.run("stat", "-c", "%U", f"/proc/{pid}").stdout.strip() == paths.PROXY_USER
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
    state["teacher"] = teacher


def test_teacher_is_not_root(hub):
    r = hub.tb.run("runuser", "-u", "jupyter-teacher", "--", "sudo", "-n", "true", check=False)
    assert r.returncode != 0


def test_adding_a_user_creates_the_unix_account_at_once(hub):
    r = state["teacher"].api("POST", f"/users/{STUDENT}")
    assert r.status_code == 201, r.text
    passwd = hub.tb.run("getent", "passwd", "jupyter-student1").stdout
    assert passwd.split(":")[5] == "/home/jupyter-student1"
    mode = hub.tb.run("stat", "-c", "%a %U", "/home/jupyter-student1").stdout.split()
    assert mode == ["700", "jupyter-student1"]
    other = hub.tb.run("runuser", "-u", "jupyter-teacher", "--", "ls", "/home/jupyter-student1", check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr


def test_invalid_name_is_refused_by_the_hub_and_no_account_made(hub):
    r = state["teacher"].api("POST", "/users/Bad%20Name!")
    assert r.status_code == 400
    assert "Bad" not in hub.tb.run("getent", "passwd").stdout


def test_cli_sets_the_password_of_the_added_user(hub):
    r = hub.tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=STUDENT_PASSWORD + "\n")
    assert "already there: student1 (Unix account jupyter-student1)" in r.stdout
    listing = hub.tb.run("hubstead", "users", "list").stdout
    assert re.search(r"student1\s+student\s+jupyter-student1\s+set\s+stopped", listing), listing
    assert re.search(r"teacher\s+teacher\s+jupyter-teacher", listing), listing


def test_cli_refuses_a_bad_name_with_one_line_and_changes_nothing(hub):
    before = hub.tb.run("cat", "/var/lib/hubstead/passwords.json").stdout
    r = hub.tb.run("hubstead", "users", "add", "Bad Name!", "--generate", check=False)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "invalid user name 'Bad Name!'" in r.stderr
    assert hub.tb.run("cat", "/var/lib/hubstead/passwords.json").stdout == before


def test_a_long_name_gets_a_hashed_unix_account_and_spawn_recreates_a_lost_one(hub):
    from hubstead.core.usernames import unix_name
    long_name = "averyveryverylongstudentname1"
    account = unix_name(long_name)
    assert state["teacher"].api("POST", f"/users/{long_name}").status_code == 201
    assert hub.tb.run("getent", "passwd", account).stdout.startswith(f"{account}:")
    # An account deleted behind the hub's back comes back when the server starts.
    hub.tb.run("userdel", "--remove", account)
    state["teacher"].start_server(long_name)
    assert hub.tb.run("getent", "passwd", account).stdout.startswith(f"{account}:")
    assert hub.unit_property(account, "ActiveState") == "active"
    assert state["teacher"].api("DELETE", f"/users/{long_name}/server").status_code in (202, 204)


def test_student_logs_in_and_gets_their_own_unit_as_their_own_uid(hub):
    student = HubSession()
    assert student.login(STUDENT, STUDENT_PASSWORD).status_code == 302
    state["spawn_seconds"] = student.start_server(STUDENT)
    assert hub.unit_property("jupyter-student1", "ActiveState") == "active"
    uid = hub.tb.run("id", "-u", "jupyter-student1").stdout.strip()
    pid = hub.unit_property("jupyter-student1", "MainPID")
    status = hub.tb.run("cat", f"/proc/{pid}/status").stdout
    assert re.search(rf"^Uid:\s+{uid}\s", status, re.M)
    assert hub.unit_property("jupyter-student1", "PrivateTmp") == "yes"
    assert hub.unit_property("jupyter-student1", "NoNewPrivileges") == "yes"
    denied = {a.removesuffix("/32").removesuffix("/128")
              for a in hub.unit_property("jupyter-student1", "IPAddressDeny").split()}
    assert {"169.254.0.0/16", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"} <= denied, denied
    lab = student.http.get(f"http://127.0.0.1/user/{STUDENT}/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    state["student"], state["pid"] = student, pid


def test_kernel_computes_over_a_websocket_through_the_proxy(hub):
    token = state["student"].token(STUDENT)
    state["token"] = token
    assert run_code(STUDENT, token, "print(6*7)").strip() == "42"
    whoami = run_code(STUDENT, token, "import getpass; print(getpass.getuser())").strip()
    assert whoami == "jupyter-student1"


def test_hub_restart_keeps_the_student_server_running_and_reachable(hub):
    hub.tb.run("systemctl", "restart", "jupyterhub")
    hub.wait_http("http://127.0.0.1/hub/api/")
    assert hub.unit_property("jupyter-student1", "MainPID") == state["pid"]
    r = requests.get(f"http://127.0.0.1/user/{STUDENT}/api/status",
                     headers={"Authorization": f"token {state['token']}"}, timeout=30)
    assert r.status_code == 200


def test_secrets_stay_out_of_logs_and_command_lines(hub):
    journal = hub.tb.run("journalctl", "--no-pager", "-o", "cat").stdout
    cmdlines = hub.tb.run("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    token = hub.tb.run("cat", "/var/lib/hubstead/cli-api.token").stdout.strip()
    for secret in (ADMIN_PASSWORD, STUDENT_PASSWORD, token):
        assert secret not in journal
        assert secret not in cmdlines
    assert hub.tb.run("ls", "/var/lib/hubstead/ansible").stdout.strip() == ""  # no artifacts kept


def test_rerunning_bootstrap_changes_and_restarts_nothing(hub):
    hub_pid = hub.unit_property("jupyterhub", "MainPID")
    proxy_pid = hub.unit_property("traefik", "MainPID")
    out = hub.bootstrap().stdout
    assert "(0 changes" in out, out
    assert hub.unit_property("jupyterhub", "MainPID") == hub_pid
    assert hub.unit_property("traefik", "MainPID") == proxy_pid


def test_reboot_brings_hub_proxy_and_login_back(hub):
    hub.tb.reboot()
    hub.wait_http("http://127.0.0.1/hub/api/", timeout=120, status=200)
    assert hub.unit_property("jupyterhub", "ActiveState") == "active"
    assert hub.unit_property("traefik", "ActiveState") == "active"
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    student = HubSession()
    assert student.login(STUDENT, STUDENT_PASSWORD).status_code == 302
    student.start_server(STUDENT)
    token = student.token(STUDENT)
    wait_for_route(STUDENT, token)
    assert run_code(STUDENT, token, "print(6*7)").strip() == "42"
