"""Day to day on a booted target: `hubstead status` with a student's server running,
`hubstead doctor` on a healthy machine and on one whose proxy is stopped, `hubstead logs`
(the hub's, the teacher's page's lines, a refused name). Steps run in order."""

import json
import re
import time

import pytest
import requests
from hubclient import HubSession

from hubstead.core import paths

pytestmark = pytest.mark.integration

STUDENT, STUDENT_PASSWORD = "student1", "student-pass-1"


def hubstead(hub, *args, check=True, **kwargs):
    return hub.tb.run("hubstead", *args, check=check, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def student(hub):
    """A student whose server runs."""
    hubstead(hub, "users", "add", STUDENT, "--password-stdin", input=STUDENT_PASSWORD + "\n")
    session = HubSession()
    assert session.login(STUDENT, STUDENT_PASSWORD).status_code == 302
    session.start_server(STUDENT)
    return session


def test_status_shows_the_units_and_a_running_server(hub, student):
    out = hubstead(hub, "status").stdout
    assert re.search(rf"^hub: +active since .+ \({re.escape(paths.HUB_UNIT)}\)$", out, re.M), out
    assert re.search(rf"^proxy: +active since .+ \({re.escape(paths.PROXY_UNIT)}\)$", out, re.M), out
    assert re.search(r"^servers: +1 running$", out, re.M), out
    # "of" its cap where the kernel's memory controller enforces one (not in these targets).
    assert re.search(rf"^  {STUDENT} +\d+\.\d [KMG]iB( of \d+\.\d [KMG]iB)?$", out, re.M), out
    info = json.loads(hubstead(hub, "status", "--json").stdout)
    assert [s["user"] for s in info["servers"]] == [STUDENT] and info["servers"][0]["memory"] > 0
    assert STUDENT in info["users"]["online"]
    assert info["memory"]["available"] > 0 and info["certificate"]["mode"] == "off"


def test_doctor_passes_on_a_healthy_machine(hub):
    r = hubstead(hub, "doctor", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ok    {paths.PROXY_UNIT} is active" in r.stdout
    assert "ok    the hub answers through the proxy" in r.stdout
    assert not re.search(r"^fail ", r.stdout, re.M)


def test_doctor_fails_naming_a_stopped_proxy_and_its_fix(hub):
    hub.tb.run("systemctl", "stop", paths.PROXY_UNIT)
    try:
        r = hubstead(hub, "doctor", check=False)
        assert r.returncode == 1, r.stdout
        assert f"fail  {paths.PROXY_UNIT} is not running" in r.stdout
        assert f"      fix: sudo systemctl restart {paths.PROXY_UNIT}; if it stops again: sudo hubstead logs proxy" \
            in r.stdout
        assert re.search(r"^fail +the hub did not answer", r.stdout, re.M), r.stdout
    finally:
        hub.tb.run("systemctl", "start", paths.PROXY_UNIT)
    hub.wait_http("http://127.0.0.1/hub/api/", status=200)
    assert hubstead(hub, "doctor", check=False).returncode == 0


def test_logs_shows_the_last_lines_of_the_hub(hub):
    r = hubstead(hub, "logs", "hub", "-n", "5")
    lines = r.stdout.splitlines()
    assert 1 <= len(lines) <= 5 and "jupyterhub" in r.stdout, r.stdout


def test_logs_teacher_shows_the_teacher_pages_own_lines(hub):
    requests.get("http://127.0.0.1/services/teacher/", allow_redirects=False, timeout=10)
    deadline = time.monotonic() + 10
    while "/services/teacher/" not in (out := hubstead(hub, "logs", "teacher", "-n", "20").stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    assert paths.TEACHER_LOG in out


def test_logs_of_a_student_is_their_servers_unit(hub, student):
    # systemd's own line about the unit ("Started jupyter-student1.service …") is in it.
    assert f"jupyter-{STUDENT}.service" in hubstead(hub, "logs", STUDENT, "-n", "1000").stdout


def test_logs_of_an_unknown_name_is_one_line_and_exit_1(hub):
    r = hubstead(hub, "logs", "nobody!", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "hubstead: error: no log 'nobody!': use hub, proxy, teacher or a hub user's name\n"
