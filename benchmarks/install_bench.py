#!/usr/bin/env python3
"""How long a Hubstead install takes, next to the floor any installer must pay, and what
the running hub costs in memory. Prints numbers, asserts nothing.

    sudo python3 benchmarks/install_bench.py

Boots three throw-away targets with tests/testbed.py, one after the other (~10 min):
the floor once to warm the shared package caches, a fresh install from this checkout
(then its no-op re-runs, memory and a first login), and the floor again, warm.
Targets share the host's network (port 80), so it waits while any other target is up.
Stdlib only; needs root.
"""

import http.cookiejar
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import tomllib

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT / "tests"))
from testbed import CACHE_DIR, Testbed  # noqa: E402 (tests/ is not a package)
from unit_usage import unit_usage  # noqa: E402 (beside this script)


def _load(name, path):
    """A module of the checkout by file: bootstrap.py is a script, and importing the
    hubstead package would need its dependencies."""
    spec = importlib.util.spec_from_file_location(name, CHECKOUT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bootstrap = _load("bootstrap", "bin/bootstrap.py")
paths = _load("hubstead_paths", "installer/hubstead/core/paths.py")

HUB_ENV, USER_ENV = str(paths.HUB_ENV), str(paths.USER_ENV)
UV = f"{HUB_ENV}/bin/uv"
INSTALL_TARGET, FLOOR_TARGET = "hubstead-bench", "hubstead-bench-floor"
ADMIN, ADMIN_PASSWORD = "teacher", "bench-pass-1"
BOOTSTRAP = ("python3", "/opt/src/bin/bootstrap.py", "--from", "/opt/src", "--user-env", "venv",
             "--admin", f"{ADMIN}:{ADMIN_PASSWORD}")
HUB_URL = "http://127.0.0.1"
OTHER_TARGET_POLL, OTHER_TARGET_LIMIT = 30, 20 * 60
IDLE_SETTLE = 15  # seconds between the install's end and the memory reading

# Runs inside the target: prefixes each output line with the seconds since start, so that
# one run gives both its wall time and its phases. No '$' or '%': systemd-run's unit would
# expand them.
STAMP_LINES = """
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for line in p.stdout:
    print(f'{time.monotonic() - t0:.2f} {line}', end='', flush=True)
sys.exit(p.wait())
"""

# Where a phase of bootstrap.py / `hubstead install` starts, by the first line that
# announces it; a phase lasts until the next one starts. None marks the end.
APT_PHASE = "apt-get update + install"
PHASE_MARKERS = [
    (re.compile(r"hubstead-bootstrap: installing (?!Hubstead)"), APT_PHASE),
    (re.compile(r"hubstead-bootstrap: creating the hub environment"), "hub venv + pip install uv"),
    (re.compile(r"hubstead-bootstrap: installing Hubstead from"), "uv pip install Hubstead; CLI, ansible start"),
    (re.compile(r"\[\d+/\d+\] (\w+): "), "converge: {}"),
    (re.compile(r"Hubstead \S+ is running"), None),
]


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def hub_packages():
    with open(CHECKOUT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def user_packages():
    """hubstead_user_env_base_packages from the user_env role's defaults: a flat YAML list of
    strings, read without PyYAML (the host's system python may lack it)."""
    lines = (CHECKOUT / "roles/user_env/defaults/main.yml").read_text().splitlines()
    items = []
    for line in lines[lines.index("hubstead_user_env_base_packages:") + 1:]:
        item = re.fullmatch(r"\s+-\s+(.+)", line)
        if not item:
            break
        items.append(item[1].strip().strip("\"'"))
    if not items:
        sys.exit("no hubstead_user_env_base_packages in roles/user_env/defaults/main.yml")
    # The role takes JupyterHub's range from Hubstead's own requirement (a variable there).
    jupyterhub = next(p for p in hub_packages() if re.match(r"jupyterhub\s*[<>=!~]", p))
    return [jupyterhub if "hubstead_user_env_jupyterhub" in item else item for item in items]


def wait_for_other_targets():
    """The install binds port 80 on the host's network: no other target may be up."""
    deadline = time.monotonic() + OTHER_TARGET_LIMIT
    while pids := subprocess.run(["pgrep", "-x", "systemd-nspawn"], capture_output=True, text=True).stdout.split():
        if time.monotonic() > deadline:
            sys.exit(f"another target (systemd-nspawn {' '.join(pids)}) is still up after "
                     f"{OTHER_TARGET_LIMIT // 60} min; try again later")
        log(f"another target is up (systemd-nspawn {' '.join(pids)}); checking again in {OTHER_TARGET_POLL} s")
        time.sleep(OTHER_TARGET_POLL)


def in_fresh_target(name, measure, **testbed_args):
    wait_for_other_targets()
    with Testbed(name=name, **testbed_args) as tb:  # __exit__ downs it, whatever happens
        return measure(tb)


def timed(tb, *cmd, env=None):
    """Wall time of cmd run inside with tb.run; seconds."""
    t0 = time.monotonic()
    tb.run(*cmd, env=env, timeout=1200)
    return time.monotonic() - t0


def timed_phases(tb, first_phase, *cmd):
    """(wall seconds, [(phase, seconds)], "N changes" as the converge reported) of cmd run
    inside with tb.run."""
    t0 = time.monotonic()
    output = tb.run("python3", "-c", STAMP_LINES, *cmd, timeout=1200).stdout
    wall = time.monotonic() - t0
    starts, seen = [(first_phase, 0.0)], set()
    for line in output.splitlines():
        stamp, _, text = line.partition(" ")
        for marker, label in PHASE_MARKERS:
            match = marker.match(text)
            if match:
                label = label and label.format(*match.groups())
                if label not in seen:
                    seen.add(label)
                    starts.append((label, float(stamp)))
                break
    phases = [(label, end - start) for (label, start), (_, end) in zip(starts, starts[1:], strict=False)]
    changes = re.search(r"is running \((\d+ changes?)", output)
    return wall, phases, changes[1] if changes else "changes not reported"


def unit_main_pid(tb, unit):
    return tb.exec("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()


def hub_pid(tb):
    return unit_main_pid(tb, "jupyterhub.service")


def timed_rerun(tb, first_phase, *cmd):
    """timed_phases on the installed target, noting whether it restarted the hub: a restart
    is what users of a running hub would notice."""
    before = hub_pid(tb)
    wall, phases, changes = timed_phases(tb, first_phase, *cmd)
    restarted = hub_pid(tb) != before
    return wall, phases, f"{changes}; hub {'restarted' if restarted else 'kept running'}"


def measure_floor(tb):
    """The same work as bootstrap.py + the venv user_env role, done straight."""
    hub_python, user_python = f"{HUB_ENV}/bin/python", f"{USER_ENV}/bin/python"
    steps = {
        APT_PHASE: [
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *bootstrap.APT_PACKAGES],
        ],
        "hub venv + pip install uv": [
            ["python3", "-m", "venv", HUB_ENV],
            [hub_python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "uv"],
        ],
        "uv pip install hub packages": [
            [UV, "pip", "install", "-q", "--compile-bytecode", "-p", hub_python, *hub_packages()],
        ],
        "user env: uv venv --seed + uv pip install": [
            [UV, "venv", "-q", "--seed", "-p", "/usr/bin/python3", USER_ENV],
            [UV, "pip", "install", "-q", "--compile-bytecode", "-p", user_python, *user_packages()],
        ],
    }
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    phases = [(label, sum(timed(tb, *cmd, env=env) for cmd in cmds)) for label, cmds in steps.items()]
    total = sum(seconds for _, seconds in phases)
    log(f"floor: {total:.1f} s")
    return total, phases


def versions(tb):
    hub_python = f"{HUB_ENV}/bin/python"
    metadata = "import importlib.metadata as m, sys; print(*(m.version(p) for p in sys.argv[1:]))"
    hubstead, jupyterhub = tb.exec(hub_python, "-c", metadata, "hubstead", "jupyterhub").stdout.split()
    traefik = re.search(r"Version:\s+(\S+)", tb.exec(f"{HUB_ENV}/bin/traefik", "version").stdout)[1]
    (jupyterlab,) = tb.exec(f"{USER_ENV}/bin/python", "-c", metadata, "jupyterlab").stdout.split()
    uv = tb.exec(UV, "--version").stdout.split()[1]
    debian = (tb.root() / "etc/debian_version").read_text().strip()
    return {"hubstead": hubstead, "jupyterhub": jupyterhub, "traefik": traefik,
            "jupyterlab (user env)": jupyterlab, "uv": uv, "Debian (target)": debian}


def wait_for_hub_api(timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{HUB_URL}/hub/api/", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:  # URLError is one
            pass
        time.sleep(0.05)
    raise TimeoutError("hub API did not answer")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # the login's 302 is the answer, not a page to follow


def login_to_server_ready(name, password, timeout=180):
    """Seconds from posting the login form to the user's server reported ready, started
    through the REST API with the login's cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)

    def xsrf():
        return next(c.value for c in sorted(jar, key=lambda c: c.path != "/hub/") if c.name == "_xsrf")

    def api(method, path):
        request = urllib.request.Request(f"{HUB_URL}/hub/api{path}", method=method,
                                         headers={"X-XSRFToken": xsrf()})
        with opener.open(request, timeout=60) as response:
            return json.loads(response.read() or "null")

    opener.open(f"{HUB_URL}/hub/login", timeout=30).read()
    form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf()}).encode()
    t0 = time.monotonic()
    try:
        opener.open(f"{HUB_URL}/hub/login", data=form, timeout=60)
        raise RuntimeError("login did not redirect: wrong password?")
    except urllib.error.HTTPError as e:
        if e.code != 302:
            raise
    api("POST", f"/users/{name}/server")
    while time.monotonic() - t0 < timeout:
        server = api("GET", f"/users/{name}")["servers"].get("")
        if server and server.get("ready"):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError(f"{name}'s server not ready after {timeout} s")


def measure_install(tb):
    results = {}
    results["install"] = timed_phases(tb, "start, host checks", *BOOTSTRAP)
    log(f"fresh install: {results['install'][0]:.1f} s")
    time.sleep(IDLE_SETTLE)
    results["memory"] = unit_usage(tb, "jupyterhub.service", "traefik.service")
    results["versions"] = versions(tb)
    results["rerun"] = timed_rerun(tb, "start, host checks, apt check", *BOOTSTRAP)
    log(f"no-op bootstrap re-run: {results['rerun'][0]:.1f} s")
    results["converge"] = timed_rerun(tb, "CLI, ansible start", f"{HUB_ENV}/bin/hubstead", "install",
                                      "--admin", ADMIN)
    log(f"no-op hubstead install: {results['converge'][0]:.1f} s")
    results["login"] = login_to_server_ready(ADMIN, ADMIN_PASSWORD)
    log(f"login -> server ready: {results['login']:.1f} s")
    results["memory"].update(unit_usage(tb, f"jupyter-{ADMIN}.service"))
    return results


def cache_sizes():
    return {name: int(subprocess.run(["du", "-sm", str(CACHE_DIR / name)], capture_output=True,
                                     text=True).stdout.split()[0])
            for name in ("uv", "apt-archives") if (CACHE_DIR / name).is_dir()}


def host_summary():
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return f"{os.cpu_count()} CPUs, {mem_kb / 2**20:.0f} GiB, kernel {platform.release()}"


def report(started, caches, floor_pass1, install, floor_pass2):
    def row(label, value, unit, note=""):
        print(f"  {label:<58} {value:8.1f} {unit:<7} {note}".rstrip())

    def section(title, total, phases, note=""):
        row(title, total, "s", note)
        for label, seconds in phases:
            row(f"  {label}", seconds, "s")

    print(f"\nHubstead install benchmark, {started}")
    print("  " + ", ".join(f"{name} {version}" for name, version in install["versions"].items()))
    print(f"  host: {host_summary()}")
    print(f"  shared caches at start ({CACHE_DIR}): "
          + (", ".join(f"{name} {mb} MB" for name, mb in caches.items()) or "none"))
    print("  floor pass 1 ran first to warm them: the install and floor pass 2 ran with warm caches.")
    print("  Never cached: apt lists (apt-get update) and pip's download of uv (fresh ~/.cache/pip).")

    print("\nTime (wall; phases from output timestamps, each until the next one starts;")
    print("the last converge phase includes handlers and waiting for the hub to answer)")
    install_total = install["install"][0]
    floor_total, floor_phases = floor_pass2
    overhead = install_total - floor_total
    section("fresh install: bootstrap.py --user-env venv", *install["install"])
    section("floor, pass 2 (warm): the same packages installed straight", floor_total, floor_phases)
    row("floor, pass 1 (cache warm-up)", floor_pass1[0], "s", "gap to pass 2: noise, or caches that were cold")
    row("overhead = fresh install - floor (warm)", overhead, "s", f"{overhead / install_total:.0%} of the install")
    # apt-get update fetches its lists from the network every time: most of the run-to-run noise.
    apt_gap = dict(install["install"][1]).get(APT_PHASE, 0) - dict(floor_phases)[APT_PHASE]
    row("overhead, apt phases left out of both", overhead - apt_gap, "s", "apt-get update is the noisiest part")
    section("no-op re-run: the same bootstrap.py command", *install["rerun"])
    section(f"no-op converge: hubstead install --admin {ADMIN}", *install["converge"])
    row(f"login -> {ADMIN}'s server ready (first spawn)", install["login"], "s")

    print(f"\nMemory (PSS summed over each unit's cgroup; hub and proxy idle {IDLE_SETTLE} s after install)")
    notes = {"jupyterhub.service": "hub + idle culler", f"jupyter-{ADMIN}.service": "just started, no kernel"}
    for unit, usage in install["memory"].items():
        if usage is None:
            print(f"  {unit:<58} not running")
            continue
        row(unit, usage["pss_kb"] / 1024, "MiB",
            "; ".join(filter(None, [f"processes: {usage['processes']}", notes.get(unit)])))


def main():
    if os.geteuid() != 0:
        sys.exit("run as root: it boots systemd-nspawn targets")
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    caches = cache_sizes()
    log(f"caches at start: {caches}")
    floor_pass1 = in_fresh_target(FLOOR_TARGET, measure_floor)
    install = in_fresh_target(INSTALL_TARGET, measure_install, binds_ro={str(CHECKOUT): "/opt/src"})
    floor_pass2 = in_fresh_target(FLOOR_TARGET, measure_floor)
    report(started, caches, floor_pass1, install, floor_pass2)


if __name__ == "__main__":
    main()
