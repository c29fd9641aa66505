#!/usr/bin/env python3
"""A class arriving at 9:00: N students log in within S seconds, each doing what a
browser does, against a freshly installed Hubstead on a booted target. Prints numbers,
asserts nothing.

    sudo /var/tmp/hubstead-test-venv/bin/python benchmarks/class_bench.py -n 60 -s 30
    ... --target hubstead-try      # use a target that is already up (bin/try-hubstead)

Each client: GET /hub/login, POST the form with its _xsrf, GET /hub/spawn and follow the
progress event stream until the server is ready, GET /user/NAME/lab through the OAuth
round trip, start a kernel, run ``5 * 4`` over its websocket. Phases are timed per
student; the CPU-seconds come from the units' cgroup accounting (cpu.stat).

The floor: N x the CPU-seconds of one student's whole path (login, server start, kernel
start, one cell), measured on the idle hub in the same run, divided by the cores. No
scheduler can serve the class faster; the ratio is the last student's result to it.
Needs aiohttp (the test venv has it, through JupyterHub); needs root.
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(CHECKOUT / "tests"), str(CHECKOUT / "installer")]
from testbed import Testbed  # noqa: E402 (tests/ is not a package)
from unit_usage import unit_usage  # noqa: E402 (beside this script)

from hubstead.core import paths  # noqa: E402 (from the checkout, above)

BASE = "http://127.0.0.1"
ADMIN, ADMIN_PASSWORD = "teacher", "bench-pass-1"
STUDENT_PASSWORD = "class-pass-9"
HUB_UNITS = ("jupyterhub.service", "traefik.service")
SOLO_RUNS = 3
CLIENT_TIMEOUT = 600  # seconds a client waits for any phase: failures are counted, not hung on

def cpu_and_memory(tb: Testbed, units) -> dict:
    """{unit: (CPU-seconds, PSS MiB)} of the running ones among ``units``."""
    return {unit: (u["cpu_s"], u["pss_kb"] / 1024) for unit, u in unit_usage(tb, *units).items() if u}


def student_unit(name: str) -> str:
    return f"jupyter-{name}.service"


class Student:
    def __init__(self, name: str, after_spawn=None):
        self.name = name
        self.after_spawn = after_spawn  # called (in a thread) once the server is ready
        self.phases: dict[str, float] = {}
        self.error: str | None = None
        self.done_at: float | None = None  # monotonic time of the cell's result

    async def run(self, session: aiohttp.ClientSession) -> None:
        try:
            await asyncio.wait_for(self._run(session), CLIENT_TIMEOUT)
        except Exception as e:  # noqa: BLE001 — a benchmark reports failures, it does not stop on them
            self.error = f"{type(e).__name__}: {e}"[:300]

    async def _phase(self, name, coro):
        t0 = time.monotonic()
        result = await coro
        self.phases[name] = time.monotonic() - t0
        return result

    def _xsrf(self, session, path="/hub/") -> str:
        for cookie in session.cookie_jar:
            if cookie.key == "_xsrf" and cookie["path"] == path:
                return cookie.value
        raise RuntimeError(f"no _xsrf cookie for {path}")

    async def _run(self, session: aiohttp.ClientSession) -> None:
        await self._phase("login", self._login(session))
        await self._phase("spawn", self._spawn(session))
        if self.after_spawn:
            await asyncio.to_thread(self.after_spawn)
        await self._phase("lab", self._lab(session))
        kernel = await self._phase("kernel", self._kernel(session))
        result = await self._phase("cell", self._cell(session, kernel))
        if result != "20":
            raise RuntimeError(f"5 * 4 gave {result!r}")
        self.done_at = time.monotonic()

    async def _login(self, session):
        async with session.get(f"{BASE}/hub/login") as r:
            r.raise_for_status()
        data = {"username": self.name, "password": STUDENT_PASSWORD, "_xsrf": self._xsrf(session)}
        async with session.post(f"{BASE}/hub/login", data=data, allow_redirects=False) as r:
            if r.status != 302:
                raise RuntimeError(f"login: {r.status}")

    async def _spawn(self, session):
        # What the browser does: /hub/spawn redirects to the pending page, whose script
        # follows the progress event stream until the server is ready.
        async with session.get(f"{BASE}/hub/spawn", allow_redirects=False) as r:
            if r.status not in (302, 303):
                raise RuntimeError(f"/hub/spawn: {r.status}")
            target = r.headers["Location"]
        if f"/user/{self.name}/" in target:
            return
        url = f"{BASE}/hub/api/users/{self.name}/server/progress?_xsrf={self._xsrf(session)}"
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=120)) as r:
            r.raise_for_status()
            async for line in r.content:
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise RuntimeError(f"spawn failed: {event.get('message')}")
        raise RuntimeError("progress stream ended without ready")

    async def _lab(self, session):
        # The OAuth round trip: /user/NAME/lab -> hub authorize -> oauth_callback -> lab.
        async with session.get(f"{BASE}/user/{self.name}/lab") as r:
            r.raise_for_status()
            if f"/user/{self.name}/" not in str(r.url):
                raise RuntimeError(f"lab: ended at {r.url}")
            await r.read()

    async def _kernel(self, session):
        headers = {"X-XSRFToken": self._xsrf(session, f"/user/{self.name}/")}
        async with session.post(f"{BASE}/user/{self.name}/api/kernels", json={"name": "python3"},
                                headers=headers) as r:
            r.raise_for_status()
            return (await r.json())["id"]

    async def _cell(self, session, kernel):
        url = f"{BASE}/user/{self.name}/api/kernels/{kernel}/channels"
        async with session.ws_connect(url, max_msg_size=0) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send_json({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                           "session": uuid.uuid4().hex, "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": "5 * 4", "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False},
            })
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if data["msg_type"] == "execute_result":
                    return data["content"]["data"]["text/plain"]
                if data["msg_type"] == "error":
                    raise RuntimeError(data["content"]["evalue"])
        raise RuntimeError("websocket closed before the result")


async def run_class(students: list[Student], spread: float) -> float:
    connector = aiohttp.TCPConnector(limit=0)

    async def arrive(student, delay):
        await asyncio.sleep(delay)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 (an address, not a name)
        async with aiohttp.ClientSession(connector=connector, connector_owner=False, cookie_jar=jar,
                                         timeout=aiohttp.ClientTimeout(total=None, sock_read=180)) as s:
            await student.run(s)

    rng = random.Random(9)
    delays = sorted(rng.uniform(0, spread) for _ in students) if spread else [0] * len(students)
    delays[0] = 0.0
    t0 = time.monotonic()
    await asyncio.gather(*(arrive(s, d) for s, d in zip(students, delays, strict=True)))
    await connector.close()
    return t0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def add_students(tb: Testbed, names: list[str]) -> None:
    script = "set -e\nfor n in " + " ".join(names) + "; do\n" \
        f"  echo {STUDENT_PASSWORD} | hubstead users add \"$n\" --password-stdin >/dev/null\ndone\n"
    tb.run("bash", "-c", script, timeout=1800)


def stop_servers(tb: Testbed, names: list[str]) -> None:
    script = (f"set -e\ntoken=$(cat {paths.CLI_API_TOKEN})\nfor n in " + " ".join(names) + "; do\n"
              "  curl -s -o /dev/null -X DELETE -H \"Authorization: token $token\" "
              f"http://127.0.0.1:{paths.HUB_PORT}/hub/api/users/$n/server\ndone\n")
    tb.run("bash", "-c", script, timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--students", type=int, default=60)
    parser.add_argument("-s", "--spread", type=float, default=30, help="arrivals spread over this many seconds")
    parser.add_argument("--target", help="use this running target (its admin is not needed)")
    parser.add_argument("--keep", action="store_true", help="leave the new target up afterwards")
    parser.add_argument("--prefix", default="s", help="student name prefix (a new one per run on a kept target)")
    args = parser.parse_args()

    tb = Testbed(name=args.target or "hubstead-class", binds_ro={str(CHECKOUT): "/opt/src"})
    if not args.target:
        tb.up()
        t = time.monotonic()
        tb.run("python3", "/opt/src/bin/bootstrap.py", "--from", "/opt/src", "--user-env", "venv",
               "--admin", f"{ADMIN}:{ADMIN_PASSWORD}", timeout=1800)
        print(f"install: {time.monotonic() - t:.1f} s")
    try:
        cores = int(tb.exec("nproc").stdout)
        solos = [f"{args.prefix}solo{i}" for i in range(1, SOLO_RUNS + 1)]
        names = [f"{args.prefix}{i}" for i in range(1, args.students + 1)]
        t = time.monotonic()
        add_students(tb, [*solos, *names])
        print(f"added {len(names) + len(solos)} students with `hubstead users add` in {time.monotonic() - t:.1f} s")

        # Students alone on the idle hub, one after the other: the CPU of the whole path
        # (the floor's unit) and of one server start, medians of SOLO_RUNS.
        time.sleep(5)
        solo_runs = []
        for solo in solos:
            before = cpu_and_memory(tb, HUB_UNITS)
            start_cpu = {}
            alone = Student(solo, after_spawn=lambda s=solo, cpu=start_cpu:
                            cpu.update(cpu_and_memory(tb, [student_unit(s)])))
            asyncio.run(run_class([alone], 0))
            if alone.error:
                print(f"a student alone failed: {alone.error}")
                return 1
            after = cpu_and_memory(tb, [*HUB_UNITS, student_unit(solo)])
            solo_runs.append({
                "hub": after["jupyterhub.service"][0] - before["jupyterhub.service"][0],
                "proxy": after["traefik.service"][0] - before["traefik.service"][0],
                "server": after[student_unit(solo)][0],
                "start": start_cpu[student_unit(solo)][0],
                "wall": sum(alone.phases.values()),
            })
        solo = {k: statistics.median(r[k] for r in solo_runs) for k in solo_runs[0]}
        path_cpu = solo["hub"] + solo["proxy"] + solo["server"]
        print(f"one server start: {solo['start']:.2f} CPU-s (the unit's, up to ready; median of {len(solos)})")
        print(f"one student alone: login→cell {solo['wall']:.1f} s; CPU {path_cpu:.2f} s = hub {solo['hub']:.2f} "
              f"+ proxy {solo['proxy']:.2f} + server and kernel {solo['server']:.2f}")

        floor = len(names) * path_cpu / cores
        before = cpu_and_memory(tb, HUB_UNITS)
        client_cpu0 = time.process_time()
        students = [Student(n) for n in names]
        t0 = asyncio.run(run_class(students, args.spread))
        client_cpu = time.process_time() - client_cpu0
        class_usage = cpu_and_memory(tb, [*HUB_UNITS, *map(student_unit, names)])

        ok = [s for s in students if s.error is None]
        print(f"\n{len(names)} students arriving over {args.spread:.0f} s on {cores} cores: "
              f"{len(ok)} succeeded, {len(names) - len(ok)} failed")
        for s in students:
            if s.error:
                print(f"  {s.name}: {s.error}")
        print(f"{'phase':<8} {'p50':>7} {'p95':>7} {'max':>7}  (seconds)")
        for phase in ("login", "spawn", "lab", "kernel", "cell"):
            values = [s.phases[phase] for s in ok if phase in s.phases]
            print(f"{phase:<8} {pct(values, .5):7.2f} {pct(values, .95):7.2f} {max(values, default=float('nan')):7.2f}")
        totals = [sum(s.phases.values()) for s in ok]
        print(f"{'total':<8} {pct(totals, .5):7.2f} {pct(totals, .95):7.2f} {max(totals, default=float('nan')):7.2f}")
        if ok:
            last = max(s.done_at for s in ok) - t0
            print(f"\nlast student's result {last:.1f} s after the first arrival; "
                  f"floor {floor:.1f} s (= {len(names)} x {path_cpu:.2f} CPU-s / {cores} cores); "
                  f"ratio {last / floor:.2f}")
        servers = [class_usage[student_unit(n)] for n in names if student_unit(n) in class_usage]
        hub_class_cpu, proxy_class_cpu = (class_usage[u][0] - before[u][0] for u in HUB_UNITS)
        print(f"CPU during the class: hub {hub_class_cpu:.1f} s, proxy {proxy_class_cpu:.1f} s, servers+kernels "
              f"{sum(c for c, _ in servers):.1f} s ({statistics.mean(c for c, _ in servers):.2f} s each), "
              f"load clients {client_cpu:.1f} s")
        print(f"memory (PSS): hub {class_usage[HUB_UNITS[0]][1]:.0f} MiB, "
              f"proxy {class_usage[HUB_UNITS[1]][1]:.0f} MiB, "
              f"per student (server + one kernel) median {statistics.median(m for _, m in servers):.0f} MiB, "
              f"total {sum(m for _, m in servers) / 1024:.1f} GiB")
        if args.target:  # leave a kept target as idle as it was, for the next run
            stop_servers(tb, [*solos, *names])
    finally:
        if not args.target and not args.keep:
            tb.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
