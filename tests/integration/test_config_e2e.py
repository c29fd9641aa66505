"""`hubstead config` on a booted target: settings reach the running hub after a reload or
an apply, bad values change nothing, and reloads keep user servers running. Each test
can run alone: the student, the teacher and the global limits come from fixtures."""

import re
import time

import pytest
import requests
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession

from hubstead.core import paths

pytestmark = pytest.mark.integration

STUDENT, STUDENT_PASSWORD = "student1", "student-pass-1"
STUDENT_UNIT = "jupyter-student1"
GiB = 2**30


def config(hub, *args, check=True):
    return hub.tb.run("hubstead", "config", *args, check=check, timeout=300)


def student_session(base="http://127.0.0.1"):
    session = HubSession(base)
    assert session.login(STUDENT, STUDENT_PASSWORD).status_code == 302
    return session


@pytest.fixture(scope="module")
def student_account(hub):
    hub.tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=STUDENT_PASSWORD + "\n")


@pytest.fixture(scope="module")
def global_limits(hub):
    """Memory and CPU limits for everyone, reloaded into the hub: the reload's output."""
    config(hub, "set", "limits.memory", "2G")
    config(hub, "set", "limits.cpu", "1.5")
    return config(hub, "reload", "hub").stdout


@pytest.fixture(scope="module")
def student(student_account, global_limits):
    """The student's session, with a server started after the global limits were set."""
    session = student_session()
    session.start_server(STUDENT)
    return session


def test_bad_value_is_refused_and_the_file_unchanged(hub, host):
    before = host.file(str(paths.CONFIG_FILE)).sha256sum
    r = config(hub, "set", "limits.memory", "lots", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == ("hubstead: error: limits.memory: 'lots' is not allowed; use a size like "
                                "512M, 2G or 1.5G (suffix K, M, G or T), or null")
    assert host.file(str(paths.CONFIG_FILE)).sha256sum == before
    r = config(hub, "set", "limits.memroy", "2G", check=False)
    assert r.returncode == 1 and "limits.memroy: unknown setting" in r.stderr


def test_limits_reach_the_unit_of_the_next_spawn(host, global_limits, student):
    assert re.search(r"hub reloaded in \d+\.\d s", global_limits)
    unit = host.service(STUDENT_UNIT).systemd_properties
    assert unit["MemoryMax"] == str(2 * GiB)
    assert unit["CPUQuotaPerSecUSec"] == "1.500000s"


def test_group_limits_override_for_members(hub, host, teacher, student):
    assert teacher.api("POST", "/groups/lab").status_code == 201
    assert teacher.api("POST", "/groups/lab/users", json={"users": [STUDENT]}).status_code == 200
    config(hub, "set", "limits.groups.lab.memory", "4G")
    config(hub, "reload", "hub")
    assert teacher.api("DELETE", f"/users/{STUDENT}/server").status_code in (202, 204)
    for _ in range(60):
        if not host.service(STUDENT_UNIT).is_running:
            break
        time.sleep(0.5)
    student.start_server(STUDENT)
    unit = host.service(STUDENT_UNIT).systemd_properties
    assert unit["MemoryMax"] == str(4 * GiB)
    assert unit["CPUQuotaPerSecUSec"] == "1.500000s"  # global cpu kept


def test_reload_proxy_keeps_a_running_server_reachable(hub, host, student):
    token = student.token(STUDENT)
    pid = host.service(STUDENT_UNIT).systemd_properties["MainPID"]
    out = config(hub, "reload", "proxy").stdout
    assert re.search(r"proxy reloaded in \d+\.\d s", out)
    r = requests.get(f"http://127.0.0.1/user/{STUDENT}/api/status",
                     headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200
    assert host.service(STUDENT_UNIT).systemd_properties["MainPID"] == pid


def test_a_short_cull_timeout_culls_an_idle_server(hub, host, teacher, student):
    config(hub, "set", "services.cull.timeout", "15")
    config(hub, "set", "services.cull.every", "5")
    config(hub, "reload", "hub")
    deadline = time.monotonic() + 150
    while host.service(STUDENT_UNIT).is_running:
        assert time.monotonic() < deadline, "the idle server was not culled"
        time.sleep(2)
    server = teacher.api("GET", f"/users/{STUDENT}").json()["servers"].get("")
    assert not server or server.get("stopped") or not server.get("ready")


def test_base_url_moves_the_hub(hub, student_account):
    config(hub, "set", "base_url", "/course/")
    config(hub, "reload", "hub")
    assert requests.get("http://127.0.0.1/course/hub/login", timeout=30).status_code == 200
    assert requests.get("http://127.0.0.1/hub/login", timeout=30).status_code == 404
    assert student_session("http://127.0.0.1/course").http.get(
        "http://127.0.0.1/course/hub/home", timeout=30).status_code == 200
    config(hub, "unset", "base_url")
    config(hub, "reload", "hub")
    assert requests.get("http://127.0.0.1/hub/login", timeout=30).status_code == 200


def test_users_allowed_refuses_someone_else(hub, host):
    # FirstUse lets anyone create an account by logging in: users.allowed is what stops them.
    config(hub, "set", "auth.type", "firstuse")
    config(hub, "set", "auth.FirstUseAuthenticator.create_users", "true")
    config(hub, "set", "users.allowed", "[alice]")
    config(hub, "reload", "hub")
    assert HubSession().login("alice", "alice-first-pass").status_code == 302
    assert host.user("jupyter-alice").exists
    assert HubSession().login("mallory", "mallory-pass-1").status_code == 403
    assert not host.user("jupyter-mallory").exists
    for key in ("users.allowed", "auth.FirstUseAuthenticator", "auth.type"):
        config(hub, "unset", key)
    config(hub, "reload", "hub")
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302


def test_dry_run_shows_the_machine_change_and_writes_nothing(hub, host):
    files = [host.file(str(path)) for path in (paths.CONFIG_FILE, paths.TRAEFIK_CONFIG)]
    before = [f.sha256sum for f in files]
    out = config(hub, "set", "--dry-run", "http.port", "8080").stdout
    assert "http.port: 80 → 8080" in out
    assert '+address = ":8080"' in out and '-address = ":80"' in out
    assert [f.sha256sum for f in files] == before


def test_a_port_change_needs_apply_and_apply_moves_the_proxy(hub):
    config(hub, "set", "http.port", "8080")
    r = config(hub, "reload", "hub", check=False)
    assert r.returncode == 1 and "http.port changed since the machine was last set up" in r.stderr
    out = config(hub, "apply").stdout
    assert "by roles proxy, hub" in out
    assert requests.get("http://127.0.0.1:8080/hub/login", timeout=30).status_code == 200
    config(hub, "unset", "http.port")
    config(hub, "apply")
    assert requests.get("http://127.0.0.1/hub/login", timeout=30).status_code == 200
    assert "(0 changes" in hub.tb.run("hubstead", "install", timeout=600).stdout


def test_escape_hatch_is_loaded_last(hub):
    hub.tb.run("sh", "-c", "echo 'c.JupyterHub.template_vars = {\"announcement\": \"Hatch works\"}' "
                           "> /etc/hubstead/jupyterhub_config.d/50-announce.py")
    config(hub, "reload", "hub")
    assert "Hatch works" in requests.get("http://127.0.0.1/hub/login", timeout=30).text


def test_csp_frame_ancestors_allows_embedding(hub, student_account):
    config(hub, "set", "hub.csp_frame_ancestors", "[https://lms.example.edu]")
    config(hub, "reload", "hub")
    csp = requests.get("http://127.0.0.1/hub/login", timeout=30).headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://lms.example.edu" in csp
    # The student's own Lab (what the LMS page embeds) starts and carries it too.
    student = student_session()
    student.api("DELETE", f"/users/{STUDENT}/server")  # the next start takes the new setting
    deadline = time.monotonic() + 60
    while student.api("GET", f"/users/{STUDENT}").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    student.start_server(STUDENT)
    lab = student.http.get(f"http://127.0.0.1/user/{STUDENT}/lab", timeout=60)
    assert lab.status_code == 200 and f"/user/{STUDENT}/lab" in lab.url
    assert "frame-ancestors 'self' https://lms.example.edu" in lab.headers["Content-Security-Policy"]
