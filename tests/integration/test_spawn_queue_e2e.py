"""The class at 9:00, small enough for CI: with one start slot, students who ask for
their server at once wait their turn in arrival order, see their place on the
spawn-pending page's progress stream, keep it when they close the tab and come back,
are not timed out by the time they waited, and a start that hangs frees its slot."""

import json
import time

import pytest
import requests
from hubclient import BASE, HubSession

pytestmark = pytest.mark.integration

PASSWORD = "queue-pass-1"
STUCK = "stuck"  # their server never answers (see HANG_HOOK)
START_TIMEOUT = 20
# Escape hatch: a short start timeout, and one student whose server runs but never
# listens, so their start can only end by timing out.
HANG_HOOK = f"""
c.Spawner.start_timeout = {START_TIMEOUT}

def _hang(spawner):
    if spawner.user.name == {STUCK!r}:
        spawner.cmd = ["/bin/sh", "-c", "exec sleep 600"]  # the server's arguments go to $0...

c.Spawner.pre_spawn_hook = _hang
"""


class Student(HubSession):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def request_server(self) -> requests.Response:
        """What the browser does: /hub/spawn, which redirects to the pending page."""
        return self.http.get(f"{BASE}/hub/spawn", allow_redirects=False, timeout=30)

    def progress(self, stop_after=None):
        """The progress events of the pending spawn, as the pending page's EventSource
        reads them; with ``stop_after``, hang up (close the tab) after that many."""
        url = f"{BASE}/hub/api/users/{self.name}/server/progress"
        events = []
        with self.http.get(url, params={"_xsrf": self.xsrf()}, stream=True, timeout=(10, 120)) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed") or len(events) == stop_after:
                        break
        return events


def messages(events):
    return [e.get("message", "") for e in events]


@pytest.fixture(scope="module")
def students(hub):
    tb = hub.tb
    names = [STUCK, "q1", "q2", "q3", "q4"]
    tb.run("bash", "-c", f"for n in {' '.join(names)}; do echo {PASSWORD} | "
           "hubstead users add $n --password-stdin >/dev/null; done")
    tb.run("tee", "/etc/hubstead/jupyterhub_config.d/50-queue-test.py", input=HANG_HOOK)
    tb.run("hubstead", "config", "set", "limits.concurrent_spawns", "1")
    tb.run("hubstead", "config", "reload", "hub")
    sessions = {}
    for name in names:
        sessions[name] = Student(name)
        assert sessions[name].login(name, PASSWORD).status_code == 302
    yield sessions
    tb.run("rm", "/etc/hubstead/jupyterhub_config.d/50-queue-test.py")
    tb.run("hubstead", "config", "unset", "limits.concurrent_spawns")
    tb.run("hubstead", "config", "reload", "hub")


def test_students_wait_their_turn_and_all_get_a_server(host, students):
    t0 = time.monotonic()
    for name in (STUCK, "q1", "q2", "q3"):  # arrival order
        r = students[name].request_server()
        assert r.status_code == 302 and f"/hub/spawn-pending/{name}" in r.headers["Location"], r.text

    # q2 looks at the pending page, then closes the tab.
    first_look = messages(students["q2"].progress(stop_after=2))
    assert first_look[1] == "Waiting for a free start slot: 1 student is ahead of you", first_look
    # q4 arrives later than everybody.
    assert students["q4"].request_server().status_code == 302
    # q2 comes back: the same pending start, not a new place at the end of the queue.
    r = students["q2"].request_server()
    assert r.status_code == 302 and "/hub/spawn-pending/q2" in r.headers["Location"]

    q3 = messages(students["q3"].progress())
    waits = [m for m in q3 if m.startswith("Waiting")]
    assert waits[0] == "Waiting for a free start slot: 2 students are ahead of you", q3
    assert "Waiting for a free start slot: you are next" in waits
    assert q3[-2] == "Starting your server", q3
    q3_ready = time.monotonic() - t0
    # The stuck start alone held the slot for START_TIMEOUT: q3's wait was longer than
    # the start timeout, and it still got its server: time in the queue is not counted.
    assert q3_ready > START_TIMEOUT

    for name in ("q1", "q2", "q4"):
        events = students[name].progress()
        assert events[-1].get("ready"), (name, messages(events))
    started = {}
    for name in ("q1", "q2", "q3", "q4"):
        assert students[name].api("GET", f"/users/{name}").json()["servers"][""]["ready"]
        started[name] = int(host.service(f"jupyter-{name}").systemd_properties["ExecMainStartTimestampMonotonic"])
    # First come, first served; q2 kept its place although it hung up.
    assert sorted(started, key=started.get) == ["q1", "q2", "q3", "q4"]


def test_a_start_that_hangs_times_out_and_frees_its_slot(hub, host, students):
    # The stuck student's start failed after the start timeout, and everyone after got in
    # (the test above); its unit is gone and the hub says it has no server.
    assert students[STUCK].api("GET", f"/users/{STUCK}").json()["servers"] == {}
    assert host.service(f"jupyter-{STUCK}").systemd_properties["ActiveState"] in ("inactive", "failed")
    log = hub.tb.run("journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat").stdout
    assert f"{STUCK}'s server failed to start in {START_TIMEOUT} seconds" in log


def test_the_hub_database_is_in_wal_mode(hub):
    out = hub.tb.run("python3", "-c", "import sqlite3; print(sqlite3.connect("
                     "'/var/lib/hubstead/jupyterhub.sqlite').execute('PRAGMA journal_mode').fetchone()[0])")
    assert out.stdout.strip() == "wal"
