#!/usr/bin/env python3
"""Benchmark `hubstead config reload hub|proxy` against their floor: `systemctl restart`
of the same unit plus the same wait (the hub's API answering through the proxy), on a
freshly installed target with one user's server running. Prints numbers, asserts nothing.

    sudo python3 benchmarks/reload_bench.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import install_bench as bench  # noqa: E402 (a sibling script: targets, bootstrap command, login)

ROUNDS = 5
STUDENT, STUDENT_PASSWORD = "student1", "bench-pass-2"


def timed(action):
    t0 = time.monotonic()
    action()
    return time.monotonic() - t0


def measure(tb):
    tb.run(*bench.BOOTSTRAP, timeout=1200)
    tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=STUDENT_PASSWORD + "\n")
    bench.login_to_server_ready(STUDENT, STUDENT_PASSWORD)
    server_pid = bench.unit_main_pid(tb, "jupyter-student1")

    def reload(what):
        return lambda: tb.run("hubstead", "config", "reload", what, timeout=300)

    def floor(unit):
        return lambda: (tb.run("systemctl", "restart", unit), bench.wait_for_hub_api())

    rows = {}
    for label, action in (("reload hub", reload("hub")), ("floor: restart jupyterhub + wait", floor("jupyterhub")),
                          ("reload proxy", reload("proxy")), ("floor: restart traefik + wait", floor("traefik"))):
        rows[label] = [timed(action) for _ in range(ROUNDS)]
    kept = bench.unit_main_pid(tb, "jupyter-student1") == server_pid
    return rows, kept, bench.versions(tb)


def main():
    if bench.os.geteuid() != 0:
        sys.exit("run as root: it boots a systemd-nspawn target")
    rows, kept, versions = bench.in_fresh_target(
        bench.INSTALL_TARGET, measure, binds_ro={str(bench.CHECKOUT): "/opt/src"})
    print(f"Hubstead reload benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"  {', '.join(f'{k} {v}' for k, v in versions.items())}")
    print(f"  {ROUNDS} rounds each, one user server running; wall time from the host")
    print(f"  {'':40} {'median':>8} {'min':>8} {'max':>8}")
    for label, times in rows.items():
        print(f"  {label:40} {statistics.median(times):7.2f}s {min(times):7.2f}s {max(times):7.2f}s")
    for what, unit in (("hub", "jupyterhub"), ("proxy", "traefik")):
        overhead = statistics.median(rows[f"reload {what}"]) - statistics.median(rows[f"floor: restart {unit} + wait"])
        print(f"  overhead of reload {what} over its floor: {overhead:+.2f} s")
    print(f"  the user's server kept running throughout: {'yes' if kept else 'NO'}")


if __name__ == "__main__":
    main()
