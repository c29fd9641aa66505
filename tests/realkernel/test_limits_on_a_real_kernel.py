"""The limits a teacher relies on, enforced by a real kernel: a QEMU VM booting Debian's own
kernel (tests/vm.py), where the nspawn targets only read the unit settings back.

Not part of the default run (it takes minutes of software emulation): run it with
``benchmarks/real-kernel-limits`` or ``tests/run tests/realkernel -s``. Each test prints
what it measured, prefixed ``[real kernel]``.
"""

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest
import requests
from hubclient import HubSession, run_code, wait_for_route
from testbed import HostNetwork
from vm import VM, vm_image

from hubstead.core import paths

pytestmark = [pytest.mark.integration, pytest.mark.realkernel]

STUDENTS = ("ada", "bob", "cy")
PASSWORD = "limits-pass-1"
MEMORY_LIMIT, MEMORY_LIMIT_BYTES = "1200M", 1200 << 20
# 3 GiB: jupyter.slice's cap (85 %) leaves the hub, the proxy and the system some 450 MiB.
VM_MEMORY_MIB = 3072
CPU_LIMIT = 0.5
# TCG: everything takes about 8x its native time.
SLOW = 900
# Where cloud providers serve instance metadata (credentials, user data): AWS, GCP and
# Azure's 169.254.169.254, another link-local one (AWS's ECS task endpoint), AWS's IPv6
# endpoint, Alibaba's and Oracle's. A listener inside the VM stands in for each.
METADATA = ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
METADATA_SECRET = "instance-credentials-of-the-machine"
# The services answer on port 80, which the proxy holds on every address here; the block is
# by address, so the stand-ins take another port.
METADATA_PORT = 8254
STANDIN = f"""
import http.server, socket, socketserver, sys, threading
class Secret(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("request from", self.client_address[0], flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"{METADATA_SECRET}")
class V6(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
for addr in {METADATA!r}:
    server = (V6 if ":" in addr else socketserver.ThreadingTCPServer)((addr, {METADATA_PORT}), Secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""


def _integration_fixtures():
    """tests/integration/conftest.py, for its InstalledHub (the same bootstrap as every target)."""
    spec = importlib.util.spec_from_file_location(
        "integration_fixtures", Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install(tb):
    """Hubstead as every integration target gets it, with a class of three under limits
    (done on the nspawn target: native speed)."""
    _integration_fixtures().InstalledHub(tb, "").bootstrap()
    for name in STUDENTS:
        tb.run("hubstead", "users", "add", name, "--password-stdin", input=PASSWORD + "\n")
    tb.run("hubstead", "config", "set", "limits.memory", MEMORY_LIMIT, timeout=300)
    tb.run("hubstead", "config", "set", "limits.cpu", str(CPU_LIMIT), timeout=300)
    tb.run("hubstead", "config", "reload", "hub", timeout=300)


REPORT: list[str] = []


def report(line: str) -> None:
    REPORT.append(line)
    print(f"[real kernel] {line}", flush=True)


@pytest.fixture(scope="module")
def vm():
    # Held from the image's build to the VM's poweroff: no other run's target in between.
    HostNetwork.acquire("realkernel")
    t0 = time.monotonic()
    machine = None
    try:
        image = vm_image(install)
        report(f"image {image.name}: ready after {time.monotonic() - t0:.0f} s (built now or cached)")
        machine = VM(image, memory_mib=VM_MEMORY_MIB)
        started = time.monotonic()
        machine.up()
        deadline = time.monotonic() + SLOW
        while True:
            try:
                if requests.get(f"{machine.base_url}/hub/login", timeout=30).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the hub in the VM never answered")
            time.sleep(2)
        kernel = machine.run("uname", "-r").stdout.strip()
        controllers = machine.run("cat", "/sys/fs/cgroup/cgroup.controllers").stdout.split()
        report(f"VM up: kernel {kernel}, booted in {machine.boot_seconds:.0f} s, hub answering "
               f"{time.monotonic() - started:.0f} s after QEMU started; cgroup controllers {' '.join(controllers)}")
        assert {"memory", "cpu"} <= set(controllers)
        yield machine
    finally:
        if machine is not None:
            machine.down()
        HostNetwork.release()
        report(f"module wall time {time.monotonic() - t0:.0f} s")
        print("\n".join(["", "[real kernel] summary:", *REPORT]), flush=True)


@pytest.fixture(scope="module")
def servers(vm):
    """Every student's server: name -> API token. One after the other: under emulation a
    start takes about 8x its native time, and JupyterHub's start and HTTP timeouts are native."""
    tokens = {}
    for name in STUDENTS:
        t0 = time.monotonic()
        session = HubSession(vm.base_url)
        assert session.login(name, PASSWORD).status_code == 302
        session.start_server(name, timeout=SLOW)
        tokens[name] = session.token(name)
        wait_for_route(name, tokens[name], vm.base_url, timeout=SLOW)
        report(f"{name}'s server answering {time.monotonic() - t0:.0f} s after her login")
    return tokens


def cell(vm, tokens, name: str, code: str) -> str:
    return run_code(name, tokens[name], code, vm.base_url, timeout=SLOW).strip()


class InBackground(threading.Thread):
    """A student's cell that may never finish (its kernel is killed): its output or error."""

    def __init__(self, vm, tokens, name: str, code: str):
        super().__init__(daemon=True, name=name)
        self.args_ = (vm, tokens, name, code)
        self.outcome = ""  # stays empty while the cell waits for a kernel that was killed

    def run(self):
        try:
            self.outcome = cell(*self.args_)
        except Exception as e:
            self.outcome = f"{type(e).__name__}: {str(e)[:200]}"


def hog(megabytes: int, hold: float = 0) -> str:
    """A cell that writes ``megabytes`` of memory (resident: every byte written), then holds it."""
    return (f"import time\nchunks = []\nwhile len(chunks) * 16 < {megabytes}:\n"
            f"    chunks.append(b'x' * (16 << 20))\nprint('still alive holding', len(chunks) * 16, 'MiB')\n"
            f"time.sleep({hold})\n")


def unit_of(name: str) -> str:
    return f"jupyter-{name}.service"


def cgroup_file(vm, unit: str, file: str) -> str:
    group = vm.run("systemctl", "show", "-p", "ControlGroup", "--value", unit).stdout.strip()
    assert group, f"{unit} has no cgroup"
    return vm.run("cat", f"/sys/fs/cgroup{group}/{file}").stdout


def keyed(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def main_pids(vm, *units: str) -> dict[str, str]:
    return {u: vm.run("systemctl", "show", "-p", "MainPID", "--value", u).stdout.strip() for u in units}


def wait_until(what: str, probe, timeout: float = SLOW, every: float = 2):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every)
    return value


def kernel_log(vm, pattern: str) -> list[str]:
    return vm.run("journalctl", "-k", "-o", "cat", "--no-pager", "--grep", pattern, check=False).stdout.splitlines()


def test_a_student_past_her_memory_limit_is_oom_killed_and_the_class_keeps_running(vm, servers):
    ada = unit_of("ada")
    services = main_pids(vm, paths.HUB_UNIT, paths.PROXY_UNIT, ada, unit_of("bob"))
    assert int(cgroup_file(vm, ada, "memory.max")) == MEMORY_LIMIT_BYTES
    t0 = time.monotonic()
    runaway = InBackground(vm, servers, "ada", hog(2 * MEMORY_LIMIT_BYTES >> 20))
    runaway.start()
    wait_until("ada's runaway cell is never killed", lambda: keyed(cgroup_file(vm, ada, "memory.events"))["oom_kill"])
    killed_after = time.monotonic() - t0
    kills = wait_until("no OOM kill of ada's unit in the kernel's log",
                       lambda: kernel_log(vm, f"oom_memcg=/{paths.USERS_SLICE}/{ada}"), timeout=60)
    assert f"task_memcg=/{paths.USERS_SLICE}/{ada}" in kills[0]  # the victim was one of hers
    victim = kernel_log(vm, "Memory cgroup out of memory: Killed process")
    runaway.join(5)  # a killed kernel's cell never ends (JupyterLab restarts the kernel)
    assert "still alive" not in runaway.outcome
    peak = int(cgroup_file(vm, ada, "memory.peak"))
    report(f"OOM: ada wrote {2 * MEMORY_LIMIT_BYTES >> 20} MiB under limits.memory={MEMORY_LIMIT}; killed after "
           f"{killed_after:.0f} s, her unit's peak {peak >> 20} MiB; journal: {victim[-1] if victim else kills[0]}")
    assert peak <= MEMORY_LIMIT_BYTES
    # Only the kernel went (OOMPolicy=continue): hub, proxy, her server and bob's run on, unrestarted.
    assert main_pids(vm, *services) == services
    for unit in services:
        assert vm.run("systemctl", "is-active", unit, check=False).stdout.strip() == "active", unit
    t1 = time.monotonic()
    assert cell(vm, servers, "bob", "print(6 * 7)") == "42"
    assert cell(vm, servers, "ada", "print('ada is back')") == "ada is back"
    report(f"OOM: afterwards bob's and ada's new cells answered in {time.monotonic() - t1:.0f} s; "
           f"hub, proxy and both servers kept their PIDs")


def test_a_busy_student_gets_her_cpu_share_and_a_classmates_cell_still_answers(vm, servers):
    bob = unit_of("bob")
    # Two busy loops, one per core, in sessions of their own (they outlive the cell's kernel).
    pids = cell(vm, servers, "bob", "import subprocess, sys\nprocs = [subprocess.Popen([sys.executable, '-c', "
                "'while True: pass'], start_new_session=True) for _ in range(2)]\n"
                "print(' '.join(str(p.pid) for p in procs))").split()
    try:
        def sample():
            out = vm.run("sh", "-c", f"cat /proc/uptime; cat /sys/fs/cgroup$(systemctl show -p ControlGroup "
                                     f"--value {bob})/cpu.stat").stdout.splitlines()
            return float(out[0].split()[0]), keyed("\n".join(out[1:]))

        up0, stat0 = sample()
        t0 = time.monotonic()
        assert cell(vm, servers, "cy", "print(6 * 7)") == "42"
        answered = time.monotonic() - t0
        vm.run("sleep", str(max(0.0, 30 - (time.monotonic() - t0))))
        up1, stat1 = sample()
    finally:
        vm.run("kill", *pids, check=False)
    share = (stat1["usage_usec"] - stat0["usage_usec"]) / 1e6 / (up1 - up0)
    throttled = stat1["nr_throttled"] - stat0["nr_throttled"]
    report(f"CPU: bob's two busy loops under limits.cpu={CPU_LIMIT} used {share:.2f} CPUs over {up1 - up0:.0f} s "
           f"(throttled {throttled} times, {(stat1['throttled_usec'] - stat0['throttled_usec']) / 1e6:.1f} s); "
           f"cy's new cell answered meanwhile in {answered:.1f} s")
    assert throttled > 0
    assert CPU_LIMIT * 0.5 < share <= CPU_LIMIT * 1.1


def test_the_slice_cap_keeps_the_hub_alive_when_every_student_allocates_at_once(vm, servers):
    slice_events = f"/sys/fs/cgroup/{paths.USERS_SLICE}/memory.events"
    cap = int(vm.run("cat", f"/sys/fs/cgroup/{paths.USERS_SLICE}/memory.max").stdout)
    ram = int(vm.run("python3", "-c", "import os; print(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))")
              .stdout)
    each = MEMORY_LIMIT_BYTES * 3 // 4 >> 20  # within each one's own limit, together past the slice's
    assert len(STUDENTS) * each << 20 > cap
    services = main_pids(vm, paths.HUB_UNIT, paths.PROXY_UNIT)
    kills_before = keyed(vm.run("cat", slice_events).stdout)["oom_kill"]
    log_before = len(kernel_log(vm, f"oom_memcg=/{paths.USERS_SLICE},"))
    hogs = [InBackground(vm, servers, name, hog(each, hold=60)) for name in STUDENTS]
    t0 = time.monotonic()
    for h in hogs:
        h.start()
    slowest = 0.0

    def killed_in_slice():
        nonlocal slowest
        t = time.monotonic()
        assert requests.get(f"{vm.base_url}/hub/api/", timeout=120).status_code == 200  # the hub answers meanwhile
        slowest = max(slowest, time.monotonic() - t)
        return keyed(vm.run("cat", slice_events).stdout)["oom_kill"] > kills_before

    wait_until("the class's allocations never hit the slice's cap", killed_in_slice)
    killed_after = time.monotonic() - t0
    lines = wait_until("no OOM kill against jupyter.slice in the kernel's log",
                       lambda: kernel_log(vm, f"oom_memcg=/{paths.USERS_SLICE},")[log_before:], timeout=60)
    assert all(f"task_memcg=/{paths.USERS_SLICE}/" in line for line in lines)  # victims: students only
    hub_oom = keyed(cgroup_file(vm, paths.HUB_UNIT, "memory.events"))["oom_kill"]
    hub_adj = vm.run("cat", f"/proc/{services[paths.HUB_UNIT]}/oom_score_adj").stdout.strip()
    report(f"slice: {len(STUDENTS)} students wrote {each} MiB each at once against jupyter.slice's cap "
           f"{cap >> 20} MiB of {ram >> 20} MiB; first kill after {killed_after:.0f} s: {lines[0]}; "
           f"the hub's slowest answer meanwhile {slowest:.1f} s, its oom_score_adj {hub_adj}")
    assert hub_oom == 0
    assert main_pids(vm, *services) == services
    assert requests.get(f"{vm.base_url}/hub/api/", timeout=60).status_code == 200
    assert cell(vm, servers, "cy", "print(6 * 7)") == "42"


def test_a_students_kernel_cannot_reach_the_metadata_addresses_but_reaches_the_hub_and_the_index(vm, servers):
    for addr in METADATA:
        vm.run("ip", "-6" if ":" in addr else "-4", "addr", "add", f"{addr}/{128 if ':' in addr else 32}", "dev", "lo")
    vm.run("systemd-run", "--unit=metadata-standin", "python3", "-c", STANDIN)
    # Root (outside the student's unit) gets the secret from every stand-in: they listen.
    for addr in METADATA:
        url = f"http://[{addr}]:{METADATA_PORT}/" if ":" in addr else f"http://{addr}:{METADATA_PORT}/"
        got = wait_until(f"the stand-in on {addr} never answered",
                         lambda url=url: vm.run("curl", "-sg", "--max-time", "30", url, check=False).stdout)
        assert got == METADATA_SECRET
    served = len(vm.run("journalctl", "-u", "metadata-standin", "-o", "cat", "--grep", "request from").stdout
                 .splitlines())
    out = cell(vm, servers, "cy", f"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request
seen = {{}}
for addr in {METADATA!r}:
    t = time.monotonic()
    try:
        with socket.create_connection((addr, {METADATA_PORT}), timeout=30) as s:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            seen[addr] = "answered: " + s.recv(200).decode(errors="replace")
    except OSError as e:
        seen[addr] = f"{{type(e).__name__}}: {{e}} after {{time.monotonic() - t:.2f}} s"
hub = urllib.request.urlopen(os.environ["JUPYTERHUB_API_URL"] + "/", timeout=120).status
with tempfile.TemporaryDirectory() as d:
    pip = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q", "-d", d,
                          "pip"], capture_output=True, text=True, timeout=600)
    downloaded = os.listdir(d)
print(json.dumps({{"metadata": seen, "hub": hub, "pip": pip.returncode, "pip_err": pip.stderr[-300:],
                  "downloaded": downloaded}}))
""")
    result = json.loads(out.splitlines()[-1])
    after = len(vm.run("journalctl", "-u", "metadata-standin", "-o", "cat", "--grep", "request from").stdout
                .splitlines())
    for addr, what in result["metadata"].items():
        report(f"metadata: cy's kernel connecting to {addr} port {METADATA_PORT} -> {what}")
    report(f"metadata: the same kernel reached the hub's API (HTTP {result['hub']}) and downloaded "
           f"{result['downloaded']} from the package index (pip rc {result['pip']})")
    assert all(not what.startswith("answered") and METADATA_SECRET not in what for what in result["metadata"].values())
    assert after == served  # not one request of the student's reached a stand-in
    assert result["hub"] == 200
    assert result["pip"] == 0, result["pip_err"]
    assert result["downloaded"]
