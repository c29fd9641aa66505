"""A student against a classmate, from her own server's kernel, on a booted target: Bob
listens in on Alice's kernel, squats beside her server's port, shares scratch space with
her, forges the audit trail. Each test performs the attack as Bob would and shows it gets
nothing (issue 18, items 3, 6, 7 and 8)."""

import json
import time

import pytest
from hubclient import ADMIN, next_port_hook, own_server, run_code, teacher_page_post

from hubstead.core import usernames

pytestmark = pytest.mark.integration

ALICE, BOB, PASSWORD = "alice", "bob", "classmate-pass-1"


@pytest.fixture(scope="module")
def students(hub):
    """Alice's and Bob's running servers: {name: an API token of theirs}."""
    tokens = {}
    for name in (ALICE, BOB):
        hub.tb.run("hubstead", "users", "add", name, "--password-stdin", input=PASSWORD + "\n")
        tokens[name] = own_server(name, PASSWORD)[1]
    return tokens


def in_kernel(students, name: str, code: str, timeout: float = 60) -> str:
    return run_code(name, students[name], code, timeout=timeout).strip()


def in_background(students, name: str, program: str) -> None:
    """``program`` running on its own in ``name``'s server, as a process of her kernel's
    that outlives the kernel."""
    in_kernel(students, name, f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {program!r}], "
                               "start_new_session=True)")


# Bob's eavesdropper: every few hundred ms it looks for sockets of Alice's (the kernel's
# TCP tables name each listener's owner; the Unix socket table names every bound path)
# and subscribes to each with zmq, as a Jupyter client subscribes to a kernel's IOPub.
EAVESDROPPER = """
import errno, json, os, pwd, socket, struct, time, zmq

victim = pwd.getpwnam(VICTIM).pw_uid
context, poller = zmq.Context(), zmq.Poller()
tried, heard = {}, []
end = time.monotonic() + SECONDS
while time.monotonic() < end:
    endpoints = []
    for row in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = row.split()
        if fields[3] == "0A" and int(fields[7]) == victim:
            address, port = fields[1].split(":")
            endpoints.append(f"tcp://{socket.inet_ntoa(struct.pack('<I', int(address, 16)))}:{int(port, 16)}")
    for row in open("/proc/net/unix").read().splitlines()[1:]:
        fields = row.split()
        if len(fields) > 7 and "kernel" in fields[7]:
            try:
                if os.stat(fields[7]).st_uid == os.getuid():
                    continue  # his own kernels'
            except OSError:
                pass
            endpoints.append("ipc://" + fields[7])
    for endpoint in endpoints:
        if endpoint in tried:
            continue
        result = "subscribed"
        if endpoint.startswith("ipc://"):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(endpoint[len("ipc://"):])
            except OSError as e:
                result = errno.errorcode[e.errno]
            probe.close()
        tried[endpoint] = result
        subscriber = context.socket(zmq.SUB)
        subscriber.setsockopt(zmq.SUBSCRIBE, b"")
        subscriber.connect(endpoint)
        poller.register(subscriber, zmq.POLLIN)
    for subscriber, _ in poller.poll(300):
        heard.append(b"".join(subscriber.recv_multipart()).decode("utf-8", "replace"))
    with open(os.path.expanduser("~/heard.json.new"), "w") as f:
        json.dump({"tried": tried, "heard": heard}, f)
    os.replace(os.path.expanduser("~/heard.json.new"), os.path.expanduser("~/heard.json"))
"""


def test_a_classmate_subscribing_to_a_students_kernel_hears_nothing(hub, students):
    in_background(students, BOB, EAVESDROPPER.replace("VICTIM", repr(usernames.unix_name(ALICE)))
                  .replace("SECONDS", "45"))
    time.sleep(2)
    # Alice works in a notebook: a new kernel, a cell that prints for a while.
    out = in_kernel(students, ALICE, "import time\nfor i in range(8):\n"
                                     "    print('alice-private', i * 6, flush=True)\n    time.sleep(1)")
    assert out.splitlines()[-1] == "alice-private 42"  # her kernel works as before
    time.sleep(2)
    spied = json.loads(in_kernel(students, BOB, "print(open('heard.json').read())"))
    # Bob did find sockets of Alice's kernel (five per kernel, beside her server's port)
    # and connected to them ...
    assert len(spied["tried"]) >= 5, spied["tried"]
    # ... and received nothing of hers: no code, no output.
    assert [m for m in spied["heard"] if "alice-private" in m] == [], spied["tried"]
    # Her kernel's sockets are files in her server's private runtime directory: his
    # process may not even reach them.
    assert {result for endpoint, result in spied["tried"].items()
            if endpoint.startswith("ipc://")} <= {"EACCES", "ENOENT"}, spied["tried"]


SIDE_PORT = 47012
# Bob listens on the port Alice's server gets next, on addresses the proxy never sends to
# (it connects to 127.0.0.1): neither conflicts with her server's bind, so neither can
# receive what is sent to her.
SIDE_LISTENER = f"""
import os, socket, time
held = []
for family, address in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.2")):
    s = socket.socket(family)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((address, {SIDE_PORT}))
    s.listen()
    s.settimeout(0.1)
    held.append(s)
end = time.monotonic() + 90
got = 0
open(os.path.expanduser("~/side.txt"), "w").write(str(got))
while time.monotonic() < end:
    for s in held:
        try:
            got += len(s.accept()[0].recv(4096))
        except OSError:
            pass
    open(os.path.expanduser("~/side.txt"), "w").write(str(got))
"""


def test_a_listener_on_another_address_does_not_cost_a_classmate_her_port(hub, teacher, students):
    teacher.api("DELETE", f"/users/{ALICE}/server")
    deadline = time.monotonic() + 60
    while teacher.api("GET", f"/users/{ALICE}").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    hub.tb.run("tee", "/etc/hubstead/jupyterhub_config.d/50-side-port.py", input=next_port_hook(SIDE_PORT))
    hub.tb.run("hubstead", "config", "reload", "hub")
    try:
        in_background(students, BOB, SIDE_LISTENER)
        time.sleep(2)
        assert in_kernel(students, BOB, "print(open('side.txt').read())") == "0"  # he listens
        teacher.start_server(ALICE)
        # First try, on the port she was given: nothing was held against her.
        log = hub.tb.run("journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat").stdout
        assert f"port {SIDE_PORT} is held by another user's process" not in log
        listening = hub.tb.run("ss", "--listening", "--tcp", "--numeric", "--no-header", "--processes",
                               f"sport = :{SIDE_PORT}").stdout
        assert [line.split()[3] for line in listening.splitlines() if "jupyterhub-sing" in line] \
            == [f"127.0.0.1:{SIDE_PORT}"], listening
    finally:
        hub.tb.run("rm", "/etc/hubstead/jupyterhub_config.d/50-side-port.py")
        hub.tb.run("hubstead", "config", "reload", "hub")
    students[ALICE] = own_server(ALICE, PASSWORD)[1]  # reached through the proxy
    assert in_kernel(students, ALICE, "print(6 * 7)") == "42"
    assert in_kernel(students, BOB, "print(open('side.txt').read())") == "0"  # nothing of hers reached him


def test_no_process_of_a_student_can_hold_every_ephemeral_port(hub, students):
    # The spawner's ports (and every outgoing connection's) come from the ephemeral range:
    # a process holding all of it would stop every start in the class. Bob counts the
    # files one process of his can have open, raising its own limit as far as it goes.
    out = in_kernel(students, BOB, """
import os, resource
low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
opened = []
try:
    while len(opened) <= high - low:
        opened.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
for fd in opened:
    os.close(fd)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
print(len(opened), high - low + 1)
""")
    opened, ephemeral = map(int, out.split())
    assert opened < ephemeral, (opened, ephemeral)


def test_doctor_checks_that_students_cannot_bind_the_hubs_loopback_ports(hub):
    r = hub.tb.run("hubstead", "doctor", check=False)
    line = next((line for line in r.stdout.splitlines() if "ip_unprivileged_port_start" in line), None)
    assert line is not None and line.startswith("ok "), r.stdout


def test_scratch_space_and_ipc_are_each_servers_own(hub, students):
    libc = "import ctypes; libc = ctypes.CDLL(None, use_errno=True); KEY = 0x48554253"
    # Alice's files in the shared-memory and lock directories, and Bob's traps there
    # (names Alice's programs will use, and a System V segment everyone may attach).
    in_kernel(students, ALICE, "for d in ('/dev/shm', '/run/lock'):\n"
                               "    open(d + '/alice-notes', 'w').write('alice-private')")
    bob = in_kernel(students, BOB, f"""{libc}
import os
for d in ("/dev/shm", "/run/lock"):
    try:
        print(d, "READ", open(d + "/alice-notes").read())
    except OSError as e:
        print(d, "refused", e.errno)
    with open(d + "/trap", "w") as f:
        f.write("bob-trap")
    os.chmod(d + "/trap", 0o666)
print("segment", libc.shmget(KEY, 4096, 0o1000 | 0o666) >= 0)  # IPC_CREAT
""").splitlines()
    assert bob[-1] == "segment True"
    assert bob[:-1] == ["/dev/shm refused 2", "/run/lock refused 2"], bob  # ENOENT: not there for him
    alice = in_kernel(students, ALICE, f"""{libc}
import os
for d in ("/dev/shm", "/run/lock"):
    print(d, os.path.exists(d + "/trap"))
    open(d + "/trap", "w").write("alice-private")
print("segment", libc.shmget(KEY, 0, 0) >= 0)
""").splitlines()
    assert alice == ["/dev/shm False", "/run/lock False", "segment False"], alice
    traps = in_kernel(students, BOB, f"""{libc}
print(open("/dev/shm/trap").read(), open("/run/lock/trap").read())
libc.shmctl(libc.shmget(KEY, 0, 0), 0, None)  # IPC_RMID
""")
    assert traps == "bob-trap bob-trap"


FORGED_TARGET = "forged-victim"


def test_forged_audit_entries_are_not_in_hubstead_audit(hub, teacher, students):
    # Bob writes what a teacher's removal of a user looks like, by the journal's native
    # protocol (what systemd.journal.send does) and by syslog (logger).
    in_kernel(students, BOB, f"""
import socket, subprocess
fields = {{"MESSAGE": "{ADMIN}: user-removed {FORGED_TARGET}", "SYSLOG_IDENTIFIER": "hubstead-audit",
          "HUBSTEAD_EVENT": "user-removed", "HUBSTEAD_USER": "{ADMIN}", "HUBSTEAD_TARGET": "{FORGED_TARGET}"}}
journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
journal.sendto("".join(f"{{k}}={{v}}\\n" for k, v in fields.items()).encode(), "/run/systemd/journal/socket")
subprocess.run(["logger", "-t", "hubstead-audit", "{ADMIN}: user-removed {FORGED_TARGET}"], check=True)
""")
    # A real action of the teacher's: she removes a user on the teacher's page.
    hub.tb.run("hubstead", "users", "add", "dora", "--password-stdin", input=PASSWORD + "\n")
    assert teacher_page_post(teacher, "remove", name="dora").status_code == 200
    time.sleep(1)
    forged = hub.tb.run("journalctl", "--no-pager", "-o", "cat", f"HUBSTEAD_TARGET={FORGED_TARGET}").stdout
    assert FORGED_TARGET in forged  # the forgery is in the journal ...
    audit = hub.tb.run("hubstead", "audit").stdout
    assert FORGED_TARGET not in audit, audit  # ... not in the audit trail
    removed = [line for line in audit.splitlines() if "user-removed" in line]
    assert len(removed) == 1 and removed[0].split()[2:5] == [ADMIN, "user-removed", "dora"], audit
    only = hub.tb.run("hubstead", "audit", "--event", "user-removed", "--user", ADMIN).stdout.splitlines()
    assert only == removed

