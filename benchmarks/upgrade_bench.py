#!/usr/bin/env python3
"""What an upgrade costs next to its floor, and what the hub's users notice. Prints
numbers, asserts nothing.

    sudo python3 benchmarks/upgrade_bench.py

Boots one throw-away target (~8 min), installs this checkout, starts the teacher's server,
then times on it, each with the hub's API polled from outside every 0.2 s:
- a no-op re-run of the installer (nothing newer);
- an upgrade to a rebuilt Hubstead (this checkout with one changed file, so the hub's
  software differs): backup, copies aside, the roles with the user environment upgraded,
  the hub restarted on the new software, the wait until it answers;
- the floor: the same upgrade done straight, with nothing of ours around it (uv installs
  another rebuilt Hubstead into the hub environment and upgrades the user environment's
  packages, systemctl restarts the hub, the same wait for its API).
Stdlib only (plus install_bench beside it); needs root.
"""

import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from install_bench import (  # noqa: E402 (beside this script)
    ADMIN,
    ADMIN_PASSWORD,
    BOOTSTRAP,
    CHECKOUT,
    HUB_ENV,
    HUB_URL,
    USER_ENV,
    UV,
    host_summary,
    in_fresh_target,
    log,
    login_to_server_ready,
    timed_rerun,
    unit_main_pid,
    user_packages,
    versions,
    wait_for_hub_api,
)

TARGET = "hubstead-bench-upgrade"


class Outage:
    """The longest stretch in which the hub's API did not answer 200 through the proxy."""

    def __init__(self):
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _poll(self):
        down_since = None
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(f"{HUB_URL}/hub/api/", timeout=2) as r:
                    up = r.status == 200
            except OSError:
                up = False
            now = time.monotonic()
            if up and down_since is not None:
                self.longest = max(self.longest, now - down_since)
                down_since = None
            elif not up and down_since is None:
                down_since = now
            time.sleep(0.2)
        if down_since is not None:
            self.longest = max(self.longest, time.monotonic() - down_since)


def rebuilt_copy(tb, name):
    """This checkout, unpacked in the target with one file changed: another build."""
    inside = tb.root() / "root" / name
    inside.mkdir()
    packed = subprocess.run(["tar", "-c", "--exclude=.git", "-C", str(CHECKOUT), "."], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(inside)], input=packed.stdout, check=True)
    init = inside / "installer/hubstead/__init__.py"
    init.write_text(init.read_text() + f"\n# rebuilt for the upgrade benchmark: {name}\n")
    return f"/root/{name}"


def floor_upgrade(tb, source):
    hub_python, user_python = f"{HUB_ENV}/bin/python", f"{USER_ENV}/bin/python"
    t0 = time.monotonic()
    tb.run(UV, "pip", "install", "-q", "--compile-bytecode", "-p", hub_python, "--reinstall-package", "hubstead",
           source, timeout=1200)
    tb.run(UV, "pip", "install", "-q", "--compile-bytecode", "--upgrade", "-p", user_python, *user_packages(),
           timeout=1200)
    tb.run("systemctl", "restart", "jupyterhub.service")
    wait_for_hub_api(timeout=300)
    return time.monotonic() - t0


def measure(tb):
    results = {}
    tb.run(*BOOTSTRAP, timeout=1200)
    results["versions"] = versions(tb)
    login_to_server_ready(ADMIN, ADMIN_PASSWORD)
    server = unit_main_pid(tb, f"jupyter-{ADMIN}.service")
    with Outage() as outage:
        results["no-op"] = (*timed_rerun(tb, "start, host checks", *BOOTSTRAP), outage)
    log(f"no-op re-run: {results['no-op'][0]:.1f} s")
    source = rebuilt_copy(tb, "next-src")
    upgrade = ("python3", f"{source}/bin/bootstrap.py", "--from", source, *BOOTSTRAP[4:])
    with Outage() as outage:
        results["upgrade"] = (*timed_rerun(tb, "start, host checks", *upgrade), outage)
    log(f"upgrade: {results['upgrade'][0]:.1f} s")
    results["server kept"] = unit_main_pid(tb, f"jupyter-{ADMIN}.service") == server
    with Outage() as outage:
        results["floor"] = (floor_upgrade(tb, rebuilt_copy(tb, "floor-src")), outage)
    log(f"floor: {results['floor'][0]:.1f} s")
    return results


def report(started, results):
    def row(label, value, unit, note=""):
        print(f"  {label:<58} {value:8.1f} {unit:<7} {note}".rstrip())

    print(f"\nHubstead upgrade benchmark, {started}")
    print("  " + ", ".join(f"{name} {version}" for name, version in results["versions"].items()))
    print(f"  host: {host_summary()}")
    print("\nTime (wall) and the hub's longest outage (its API through the proxy, polled every 0.2 s)")
    for key, title in (("no-op", "no-op re-run (nothing newer)"), ("upgrade", "upgrade to a rebuilt Hubstead")):
        wall, phases, changes, outage = results[key]
        row(title, wall, "s", changes)
        for label, seconds in phases:
            row(f"  {label}", seconds, "s")
        row("  longest outage", outage.longest, "s")
    floor, outage = results["floor"]
    row("floor: uv install + user env upgrade + systemctl restart", floor, "s")
    row("  longest outage", outage.longest, "s")
    upgrade = results["upgrade"][0]
    row("upgrade / floor", upgrade / floor, "x", f"overhead {upgrade - floor:.1f} s: backup, copies aside, roles")
    print(f"  the teacher's server {'kept running' if results['server kept'] else 'was RESTARTED'} through the upgrade")


def main():
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    results = in_fresh_target(TARGET, measure, binds_ro={str(CHECKOUT): "/opt/src"})
    report(started, results)


if __name__ == "__main__":
    main()
