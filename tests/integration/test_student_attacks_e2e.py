"""A hostile student, from their own server's kernel, against a booted target: each test
performs an attack as the student would and shows it gets nothing."""

import json
import re
import time

import pytest
import requests
from hubclient import ADMIN, HubSession, next_port_hook, run_code, teacher_page_post, wait_for_route, wait_until

from hubstead.core import paths, usernames

pytestmark = pytest.mark.integration

MALLORY, VICTIM, PASSWORD = "mallory", "victim", "attack-pass-1"
SQUATTED_PORT = 47011
# A student can bind every free high port (thousands of sockets), so whatever port the
# spawner picks next may already be theirs. Made deterministic here: the next port the
# spawner picks is the one Mallory holds.
PORT_HOOK = next_port_hook(SQUATTED_PORT)


def signed_in(name: str) -> HubSession:
    """``name``'s own browser session (users here have PASSWORD): a teacher makes no
    tokens for others."""
    session = HubSession()
    assert session.login(name, PASSWORD).status_code == 302
    return session


@pytest.fixture(scope="module")
def mallory(hub):
    """Mallory's running server and an API token to drive her kernel."""
    hub.tb.run("hubstead", "users", "add", MALLORY, "--password-stdin", input=PASSWORD + "\n")
    session = signed_in(MALLORY)
    session.start_server(MALLORY)
    return session.token(MALLORY)


def as_mallory(token: str, code: str) -> str:
    return run_code(MALLORY, token, code).strip()


def test_no_port_of_the_hub_its_services_or_the_proxy_can_be_bound(mallory):
    ports = [paths.HUB_PORT, paths.TEACHER_PORT, paths.TRAEFIK_API_PORT, paths.ACME_CHALLENGE_PORT]
    out = as_mallory(mallory, f"""
import socket
for port in {ports}:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(port, "BOUND")
    except OSError as e:
        print(port, e.errno)
    finally:
        s.close()
""")
    # 13 (EACCES): not theirs to bind, whether the owner is running or not; 98 (in use)
    # would only mean the owner held it at that moment.
    assert out.splitlines() == [f"{port} 13" for port in ports]


def test_a_student_looping_on_the_hub_port_during_a_restart_never_gets_it(hub, mallory):
    as_mallory(mallory, f"""
import subprocess, sys
loop = '''
import os, socket, time
end = time.monotonic() + 40
tries = got = 0
started = os.path.expanduser("~/hub-port-race.started")
while time.monotonic() < end:
    if tries == 1000:
        open(started, "w").close()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", {paths.HUB_PORT}))
        s.listen()
        got += 1
    except OSError:
        pass
    tries += 1
    s.close()
open(os.path.expanduser("~/hub-port-race.txt"), "w").write(f"{{tries}} {{got}}")
'''
subprocess.Popen([sys.executable, "-c", loop], start_new_session=True)
""")
    home = f"/home/{usernames.UNIX_PREFIX}mallory"
    wait_until(lambda: hub.tb.run("test", "-e", f"{home}/hub-port-race.started", check=False).returncode == 0,
               30, "the student's loop never started")
    hub.tb.run("hubstead", "config", "reload", "hub")
    assert requests.get("http://127.0.0.1/hub/login", timeout=30).status_code == 200
    wait_until(lambda: hub.tb.run("test", "-e", f"{home}/hub-port-race.txt", check=False).returncode == 0,
               90, "the student's 40 s loop never ended")
    tries, got = map(int, as_mallory(mallory, "print(open('hub-port-race.txt').read())").split())
    assert tries > 1000 and got == 0


def test_a_squatter_on_a_classmates_server_port_gets_no_traffic(hub, teacher, mallory):
    hub.tb.run("hubstead", "users", "add", VICTIM, "--password-stdin", input=PASSWORD + "\n")
    hub.tb.run("tee", "/etc/hubstead/jupyterhub_config.d/50-victim-port.py", input=PORT_HOOK)
    hub.tb.run("hubstead", "config", "reload", "hub")
    try:
        # Mallory listens where the victim's server is about to be, and logs what arrives.
        as_mallory(mallory, f"""
import subprocess, sys
trap = '''
import os, socket
s = socket.socket()
s.bind(("127.0.0.1", {SQUATTED_PORT}))
s.listen()
s.settimeout(90)
log = open(os.path.expanduser("~/trap.txt"), "a")
try:
    while True:
        conn, _ = s.accept()
        conn.settimeout(2)
        try:
            data = conn.recv(4096)  # a request with a login or a token, if the hub sent one
        except OSError:
            data = b""
        if data:
            log.write(repr(data[:200]) + "\\\\n")
            log.flush()
        conn.close()
except OSError:
    pass
'''
subprocess.Popen([sys.executable, "-c", trap], start_new_session=True)
""")
        wait_until(lambda: f":{SQUATTED_PORT} " in hub.tb.run("ss", "-ltnH").stdout, 30,
                   "the squatter never listened")
        teacher.start_server(VICTIM)  # on another port: the squatted one is refused
        victim = teacher.api("GET", f"/users/{VICTIM}").json()["servers"][""]
        assert victim["ready"]
        log = hub.tb.run("journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat").stdout
        assert f"port {SQUATTED_PORT} is held by another user's process; not routing this server there" in log
        listening = hub.tb.run("ss", "--listening", "--tcp", "--numeric", "--no-header", "--processes").stdout
        assert not [line for line in listening.splitlines()
                    if f":{SQUATTED_PORT} " in line and "jupyterhub-sing" in line]
        run_code(VICTIM, signed_in(VICTIM).token(VICTIM), "print('my own server')")
        trapped = as_mallory(mallory, "import os; print(open('trap.txt').read() if os.path.exists('trap.txt') else '')")
        assert trapped == ""
    finally:
        hub.tb.run("rm", "/etc/hubstead/jupyterhub_config.d/50-victim-port.py")
        hub.tb.run("hubstead", "config", "reload", "hub")


def test_a_hub_name_that_looks_like_a_cut_long_name_cannot_take_its_account(hub, host, teacher):
    long_name = "averyveryverylongstudentname1"
    hub.tb.run("hubstead", "users", "add", long_name, "--password-stdin", input=PASSWORD + "\n")
    unix_name = usernames.unix_name(long_name)
    lookalike = unix_name.removeprefix(usernames.UNIX_PREFIX)
    assert usernames.unix_name(lookalike) == unix_name  # the collision the attack relies on
    r = teacher.api("POST", "/users", json={"usernames": [lookalike]})
    assert r.status_code == 400
    assert f"Unix account {unix_name} belongs to hub user '{long_name}'" in r.json()["message"]
    assert teacher.api("GET", f"/users/{lookalike}").status_code == 404
    assert host.user(unix_name).gecos == f"Hubstead user {long_name}"


def test_a_removed_users_password_does_not_come_back_with_the_name(hub, teacher):
    hub.tb.run("hubstead", "users", "add", "carl", "--password-stdin", input=PASSWORD + "\n")
    assert HubSession().login("carl", PASSWORD).status_code == 302
    assert teacher.api("DELETE", "/users/carl").status_code == 204
    assert teacher.api("POST", "/users/carl").status_code == 201
    assert HubSession().login("carl", PASSWORD).status_code == 403


def test_a_password_reset_ends_the_old_passwords_sessions_and_tokens(hub, teacher):
    hub.tb.run("hubstead", "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    intruder = HubSession()  # whoever knew alice's password
    assert intruder.login("alice", PASSWORD).status_code == 302
    token = intruder.token("alice")
    assert intruder.api("GET", "/user").status_code == 200
    hub.tb.run("hubstead", "users", "reset-password", "alice")
    assert intruder.api("GET", "/user").status_code == 403
    r = requests.get("http://127.0.0.1/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 403
    r = intruder.http.get("http://127.0.0.1/hub/home", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/login" in r.headers["Location"]


def test_no_api_token_lives_forever(hub, teacher):
    r = teacher.api("POST", f"/users/{ADMIN}/tokens", json={"note": "forever"})
    assert r.status_code == 201 and r.json()["expires_at"]  # asked for none: gets the maximum
    r = teacher.api("POST", f"/users/{ADMIN}/tokens", json={"note": "a year", "expires_in": 365 * 86400})
    assert r.status_code == 400
    r = teacher.api("POST", f"/users/{ADMIN}/tokens", json={"note": "a week", "expires_in": 7 * 86400})
    assert r.status_code == 201


def test_pages_that_show_passwords_are_never_cached(hub, teacher):
    r = teacher.http.get("http://127.0.0.1/services/teacher/", timeout=60)
    assert r.status_code == 200 and "/services/teacher/" in r.url
    assert r.headers["Cache-Control"] == "no-store"


SSH_PORT = 2222  # the test's sshd, on loopback only (the target shares the host's network)


def test_no_way_out_of_the_unit_by_ssh_cron_or_at(hub, mallory):
    tb = hub.tb
    tb.run("bash", "-c", f"""set -e
mkdir -p /etc/ssh/sshd_config.d
printf 'ListenAddress 127.0.0.1\\nPort {SSH_PORT}\\n' > /etc/ssh/sshd_config.d/00-test.conf
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    openssh-server openssh-client cron at >/dev/null
systemctl restart ssh
""", timeout=900)
    # at came after Mallory's account: the hub's start goes over every account again.
    tb.run("hubstead", "config", "reload", "hub")
    # What a student would do from their Lab: their own key in authorized_keys, a crontab, an at job.
    out = as_mallory(mallory, f"""
import os, subprocess
os.makedirs(".ssh", mode=0o700, exist_ok=True)
subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ".ssh/id_ed25519"], check=True)
with open(".ssh/authorized_keys", "w") as f:
    f.write(open(".ssh/id_ed25519.pub").read())
os.chmod(".ssh/authorized_keys", 0o600)
ssh = subprocess.run(["ssh", "-p", "{SSH_PORT}", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                      "-i", ".ssh/id_ed25519", os.environ["USER"] + "@127.0.0.1", "id"],
                     capture_output=True, text=True, timeout=30)
cron = subprocess.run(["crontab", "-"], input="* * * * * touch ~/cron-ran\\n", capture_output=True, text=True)
at = subprocess.run(["at", "now + 1 minute"], input="touch ~/at-ran\\n", capture_output=True, text=True)
import json
print(json.dumps({{"ssh": [ssh.returncode, ssh.stdout], "cron": [cron.returncode, cron.stderr],
                  "at": [at.returncode, at.stderr]}}))
""")
    tried = json.loads(out)
    assert tried["ssh"] == [255, ""], tried  # refused: no shell, no `id` output
    assert tried["cron"][0] != 0 and "not allowed to use this program" in tried["cron"][1], tried
    assert tried["at"][0] != 0 and "permission to use at" in tried["at"][1], tried
    log = tb.run("journalctl", "-u", "ssh", "--no-pager", "-o", "cat").stdout
    assert "not allowed because a group is listed in DenyGroups" in log
    tb.run("bash", "-c", "systemctl disable --now ssh; rm /etc/ssh/sshd_config.d/00-test.conf")


def test_students_together_cannot_take_the_hubs_memory(hub, host, mallory):
    # What a real VM enforces; this target has no memory controller to enforce it with
    # (a runaway here is not stopped), so the test reads what systemd was told.
    unit = f"jupyter-{MALLORY}"
    total = int(hub.tb.run("python3", "-c",
                           "import os; print(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))").stdout)
    student = host.service(unit).systemd_properties
    assert student["Slice"] == paths.USERS_SLICE
    all_students = int(host.service(paths.USERS_SLICE).systemd_properties["MemoryMax"])
    assert int(student["MemoryMax"]) < all_students < total
    assert student["OOMPolicy"] == "continue"  # a kernel dies, not the server
    for service in (paths.HUB_UNIT, paths.PROXY_UNIT):
        assert int(host.service(service).systemd_properties["OOMScoreAdjust"]) < 0


def test_other_users_command_lines_are_invisible(hub, mallory):
    # Root runs something with a secret in its arguments (as a careless `config set` or
    # `--admin name:password` would); Mallory looks through /proc for it.
    hub.tb.run("systemd-run", "--unit=argv-secret", "sh", "-c", "sleep 120", "S3cret-in-argv")
    try:
        out = as_mallory(mallory, """
import os
seen, found = 0, []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    seen += 1
    if b"S3cret-in-argv" in cmdline or b"jupyterhub" in cmdline and b"--config" in cmdline:
        found.append(pid)
print(seen, found)
""")
        seen, found = out.split(" ", 1)
        assert int(seen) > 0 and found == "[]", out  # she sees her own processes only
    finally:
        hub.tb.run("systemctl", "stop", "argv-secret", check=False)


def test_revoked_sudo_is_gone_from_the_running_server_too(hub, teacher):
    name = "sam"
    hub.tb.run("hubstead", "users", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.tb.run("hubstead", "config", "add-item", "users.sudoers", name)
    hub.tb.run("hubstead", "config", "reload", "hub")
    teacher.start_server(name)
    token = signed_in(name).token(name)
    wait_for_route(name, token)
    check = ("import grp, os, subprocess; print(subprocess.run(['sudo', '-n', 'true']).returncode, "
             "sorted(grp.getgrgid(g).gr_name for g in os.getgroups()))")
    assert run_code(name, token, check).startswith("0 "), "sudo should work while allowed"
    hub.tb.run("hubstead", "config", "remove-item", "users.sudoers", name)
    hub.tb.run("hubstead", "config", "reload", "hub")
    # The running server still held the group (a process keeps its groups): the hub ended it.
    deadline = time.monotonic() + 60
    while teacher.api("GET", f"/users/{name}").json()["servers"] and time.monotonic() < deadline:
        time.sleep(1)
    assert teacher.api("GET", f"/users/{name}").json()["servers"] == {}
    teacher.start_server(name)
    token = signed_in(name).token(name)
    wait_for_route(name, token)
    returncode, groups = run_code(name, token, check).strip().split(" ", 1)
    assert returncode != "0" and "hubstead-sudoers" not in groups


def _open_lab(session: HubSession, name: str) -> requests.Response:
    """What the admin page's link to NAME's server does, agreeing to the hub's
    authorization page if it shows one."""
    r = session.http.get(f"http://127.0.0.1/user/{name}/lab", timeout=60)
    if "/hub/api/oauth2/authorize" in r.url:
        fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', r.text)
        r = session.http.post(r.url, data=fields, timeout=60)
    return r


def test_a_teacher_cannot_act_as_a_sysadmin(hub, teacher, mallory):
    # A users.sudoers member is root in their own server: whoever can use it, or log in as
    # them, is root. Teachers can help students in theirs; nothing opens a sysadmin's.
    name, student = "sysann", "stu"
    for user in (name, student):
        hub.tb.run("hubstead", "users", "add", user, "--password-stdin", input=PASSWORD + "\n")
    hub.tb.run("hubstead", "config", "add-item", "users.sudoers", name)
    hub.tb.run("hubstead", "config", "reload", "hub")
    try:
        her = signed_in(name)
        her.start_server(name)
        her_token = her.token(name)
        wait_for_route(name, her_token)
        assert run_code(name, her_token, "print(6 * 7)").strip() == "42"
        assert _open_lab(her, name).status_code == 200  # hers opens for her, in her browser
        wait_for_route(MALLORY, mallory)
        # JupyterHub's admin page links each server: a student's opens for a teacher, hers not.
        assert _open_lab(teacher, MALLORY).status_code == 200
        assert _open_lab(teacher, name).status_code == 403
        # A token in her name, or promoting oneself, or renaming her out of the way:
        assert teacher.api("POST", f"/users/{name}/tokens", json={"expires_in": 600}).status_code == 403
        assert teacher.api("PATCH", f"/users/{ADMIN}", json={"admin": True}).status_code == 403
        assert teacher.api("PATCH", f"/users/{name}", json={"name": "renamed"}).status_code == 403
        # Her password through the teacher's page (a student's works: the form is right).
        assert teacher_page_post(teacher, "reset", name=student, password="reset-pass-1").status_code == 200
        refused = teacher_page_post(teacher, "reset", name=name, password="taken-over-1")
        assert refused.status_code == 403 and "users.sudoers" in refused.text
        listed = teacher_page_post(teacher, "add", names=f"{name},taken-over-1")
        assert listed.status_code == 200 and "users.sudoers" in listed.text
        # Removing her, to add the name again as a user of one's own:
        removed = teacher.api("DELETE", f"/users/{name}")
        assert removed.status_code == 403 and "users.sudoers" in removed.json()["message"]
        assert teacher.api("GET", f"/users/{name}").status_code == 200
        assert HubSession().login(name, PASSWORD).status_code == 302  # still her password
        assert HubSession().login(name, "taken-over-1").status_code == 403
    finally:
        hub.tb.run("hubstead", "config", "remove-item", "users.sudoers", name)
        hub.tb.run("hubstead", "config", "reload", "hub")


def test_the_next_user_with_a_deleted_accounts_uid_cannot_read_its_kept_home(hub, host, teacher):
    hub.tb.run("hubstead", "config", "set", "users.removal.account", "delete")
    hub.tb.run("hubstead", "config", "set", "users.removal.home", "keep")
    hub.tb.run("hubstead", "config", "reload", "hub")
    try:
        hub.tb.run("hubstead", "users", "add", "olga", "--password-stdin", input=PASSWORD + "\n")
        uid = host.user("jupyter-olga").uid
        hub.tb.run("bash", "-c", "echo olga-notes > /home/jupyter-olga/notes.txt"
                                 " && chown jupyter-olga /home/jupyter-olga/notes.txt")
        assert teacher.api("DELETE", "/users/olga").status_code == 204
        hub.tb.run("hubstead", "users", "add", "pete", "--password-stdin", input=PASSWORD + "\n")
        assert host.user("jupyter-pete").uid == uid  # useradd reuses the free UID
        assert [host.file(f).uid for f in ("/home/jupyter-olga", "/home/jupyter-olga/notes.txt")] == [0, 0]
        read = hub.tb.run("runuser", "-u", "jupyter-pete", "--", "cat", "/home/jupyter-olga/notes.txt", check=False)
        assert read.returncode != 0 and "olga-notes" not in read.stdout
    finally:
        hub.tb.run("hubstead", "config", "unset", "users.removal.account")
        hub.tb.run("hubstead", "config", "unset", "users.removal.home")
        hub.tb.run("hubstead", "config", "reload", "hub")


def test_strangers_guessing_cannot_lock_a_teacher_out_of_her_own_browser(hub):
    hub.tb.run("hubstead", "users", "add", "tina", "--admin", "--password-stdin", input=PASSWORD + "\n")
    her_browser = HubSession()
    assert her_browser.login("tina", PASSWORD).status_code == 302
    her_browser.http.get("http://127.0.0.1/hub/logout", timeout=30)
    for _ in range(5):  # users.lockout.max_failures wrong guesses, from anywhere
        assert HubSession().login("tina", "not-her-password").status_code == 403
    assert HubSession().login("tina", PASSWORD).status_code == 403  # any other browser: locked
    assert her_browser.login("tina", PASSWORD).status_code == 302  # hers: not


def test_nothing_of_the_hub_or_a_classmate_is_readable_or_writable(hub, teacher, mallory):
    # A classmate with a file in their home and one in their server's /tmp.
    hub.tb.run("hubstead", "users", "add", "nina", "--password-stdin", input=PASSWORD + "\n")
    teacher.start_server("nina")
    run_code("nina", signed_in("nina").token("nina"),
             "open('/tmp/nina-tmp.txt', 'w').write('x'); open('homework.txt', 'w').write('y')")
    out = as_mallory(mallory, f"""
import os, subprocess
def attempt(what, action):
    try:
        action()
        print(what, "DONE")
    except OSError as e:
        print(what, "refused", e.errno)
attempt("list-classmate-home", lambda: os.listdir("/home/jupyter-nina"))
attempt("read-classmate-file", lambda: open("/home/jupyter-nina/homework.txt").read())
attempt("see-classmate-tmp", lambda: open("/tmp/nina-tmp.txt").read())
attempt("write-user-env", lambda: open("{paths.USER_ENV}/bin/evil", "w"))
attempt("read-state", lambda: os.listdir("{paths.STATE_DIR}"))
attempt("read-config", lambda: open("{paths.CONFIG_FILE}").read())
attempt("write-course-folder", lambda: open("{paths.SHARED_DIR}/evil.txt", "w"))
print("sudo", subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode)
print("token-in-cmdline", any(os.environ["JUPYTERHUB_API_TOKEN"].encode() in open(f"/proc/{{p}}/cmdline", "rb").read()
      for p in os.listdir("/proc") if p.isdigit()))
""").splitlines()
    results = dict(line.split(" ", 1) for line in out)
    for what in ("list-classmate-home", "read-classmate-file", "write-user-env", "read-state", "read-config",
                 "write-course-folder"):
        assert results[what].startswith("refused 13"), (what, results[what])  # EACCES
    assert results["see-classmate-tmp"] == "refused 2"  # ENOENT: her /tmp is her own
    assert results["sudo"] != "0"
    assert results["token-in-cmdline"] == "False"


def test_a_token_in_a_url_is_not_accepted(hub, teacher, mallory):
    r = requests.get(f"http://127.0.0.1/user/{MALLORY}/api/contents?token={mallory}", timeout=30,
                     allow_redirects=False)
    assert r.status_code in (302, 403), r.status_code
    r = requests.get(f"http://127.0.0.1/user/{MALLORY}/api/contents", timeout=30,
                     headers={"Authorization": f"token {mallory}"})
    assert r.status_code == 200


# `systemd-analyze security` exposure (0 safest, 10 most exposed) of each unit as it is
# now: a change that loosens a unit fails here. Lower a budget when a unit gets tighter.
# The teacher's page runs inside jupyterhub.service (a managed hub service).
EXPOSURE_BUDGET = {"jupyterhub.service": 8.1, "traefik.service": 1.7, f"jupyter-{MALLORY}.service": 7.4}


@pytest.mark.parametrize("unit", EXPOSURE_BUDGET)
def test_units_stay_within_their_exposure_budget(hub, mallory, unit):
    out = hub.tb.run("systemd-analyze", "security", "--no-pager", unit).stdout
    exposure = float(out.split(f"Overall exposure level for {unit}:")[1].split()[0])
    assert exposure <= EXPOSURE_BUDGET[unit], f"{unit}: exposure {exposure} > budget {EXPOSURE_BUDGET[unit]}"
