"""Smoke test of the nspawn testbed itself: boot, run, binds, reboot, teardown."""

import os
from pathlib import Path

import pytest
from testbed import Testbed  # tests/conftest.py puts tests/ on sys.path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not Path("/sys/fs/cgroup").is_dir(),
                       reason="needs root and /sys/fs/cgroup"),
]

NAME = "hubstead-smoke"
UNIT = """\
[Unit]
Description=testbed smoke sleeper

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""


@pytest.fixture(scope="module")
def ro_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ro")
    (path / "hello.txt").write_text("from the host\n")
    return path


@pytest.fixture(scope="module")
def tb(tmp_path_factory, ro_dir):
    testbed = Testbed(NAME, binds_ro={str(ro_dir): "/mnt/ro"}, work=tmp_path_factory.mktemp("work"))
    testbed.up()
    yield testbed
    testbed.down()


def nspawn_processes(name):
    """PIDs of live systemd-nspawn processes started for machine `name`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        zombie = stat[stat.rindex(")") + 2] == "Z"
        if not zombie and argv[0].endswith(b"systemd-nspawn") and f"--machine={name}".encode() in argv:
            pids.append(int(proc.name))
    return pids


def test_system_is_running(tb):
    state = tb.exec("systemctl", "is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded")


def test_run_is_root(tb):
    assert tb.run("id", "-u").stdout.strip() == "0"


def test_file_written_inside_is_visible_under_root(tb):
    tb.run("sh", "-c", "echo written-inside > /root/marker")
    assert (tb.root() / "root/marker").read_text() == "written-inside\n"


def test_read_only_bind(tb):
    assert tb.run("cat", "/mnt/ro/hello.txt").stdout == "from the host\n"
    result = tb.run("sh", "-c", "echo x > /mnt/ro/new.txt", check=False)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr


def test_reboot_keeps_enabled_unit_and_changes_boot_id(tb):
    tb.run("tee", "/etc/systemd/system/tb-sleep.service", input=UNIT)
    tb.run("systemctl", "enable", "--now", "tb-sleep.service")
    assert tb.run("systemctl", "is-active", "tb-sleep.service").stdout.strip() == "active"
    boot_id = tb.exec("cat", "/proc/sys/kernel/random/boot_id").stdout.strip()

    tb.reboot()

    assert tb.exec("cat", "/proc/sys/kernel/random/boot_id").stdout.strip() != boot_id
    assert tb.run("systemctl", "is-active", "tb-sleep.service", check=False).stdout.strip() == "active"


def test_down_leaves_nothing_behind(tb):
    tb.down()
    assert nspawn_processes(NAME) == []
    for hierarchy in ("systemd/", "unified/", ""):  # hybrid host, or pure cgroup2
        assert not Path(f"/sys/fs/cgroup/{hierarchy}testbed-{NAME}").exists()
    assert not tb.root().exists()
    assert (tb.work / f"{NAME}.console.log").is_file()
    tb.down()  # idempotent
