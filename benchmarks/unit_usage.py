"""What a unit of a booted target costs: its processes, their PSS and the cgroup's CPU
time, over the unit's whole cgroup. Shared by the benchmarks; stdlib only."""

import json

# Runs inside the target: {unit: {processes, pss_kb, cpu_s}}, None for a unit not running.
PROBE = """
import json, os, subprocess, sys
out = {}
for unit in sys.argv[1:]:
    cgroup = subprocess.run(['systemctl', 'show', '-p', 'ControlGroup', '--value', unit],
                            capture_output=True, text=True).stdout.strip()
    if not cgroup:
        out[unit] = None
        continue
    base = '/sys/fs/cgroup' + cgroup
    pids = []
    for d, _, _ in os.walk(base):
        with open(d + '/cgroup.procs') as f:
            pids += f.read().split()
    pss = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/smaps_rollup') as f:
                pss += next(int(line.split()[1]) for line in f if line.startswith('Pss:'))
        except OSError:  # exited meanwhile
            pass
    with open(base + '/cpu.stat') as f:
        usec = int(dict(line.split() for line in f)['usage_usec'])
    out[unit] = {'processes': len(pids), 'pss_kb': pss, 'cpu_s': usec / 1e6}
print(json.dumps(out))
"""


def unit_usage(tb, *units) -> dict:
    """{unit: {processes, pss_kb, cpu_s} or None} of the target ``tb`` (a testbed.Testbed)."""
    return json.loads(tb.exec("python3", "-c", PROBE, *units).stdout)
