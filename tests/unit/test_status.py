"""`hubstead status`: what is read from the cgroups and /proc, who counts as online, and
the screen it makes."""

import datetime

import pytest

from hubstead.core import paths
from hubstead.machine import status

MIB = 1 << 20
NOW = datetime.datetime(2025, 3, 3, 9, 30, tzinfo=datetime.timezone.utc)


@pytest.fixture
def cgroups(monkeypatch, tmp_path):
    """A cgroup tree with the users' slice and two servers in it."""
    monkeypatch.setattr(paths, "CGROUP_ROOT", tmp_path)
    slice_dir = tmp_path / paths.USERS_SLICE
    for unit, current, cap in (("jupyter-ann.service", 300 * MIB, str(1024 * MIB)),
                               ("jupyter-orphan.service", 100 * MIB, "max")):
        (slice_dir / unit).mkdir(parents=True)
        (slice_dir / unit / "memory.current").write_text(f"{current}\n")
        (slice_dir / unit / "memory.max").write_text(f"{cap}\n")
    (slice_dir / "memory.current").write_text(f"{400 * MIB}\n")
    (slice_dir / "memory.max").write_text(f"{2048 * MIB}\n")
    return tmp_path


def test_servers_are_read_from_the_slice_and_named_after_their_hub_users(cgroups):
    assert status.servers([{"name": "ann"}, {"name": "bob"}]) == [
        {"user": "ann", "unit": "jupyter-ann.service", "memory": 300 * MIB, "memory_max": 1024 * MIB},
        {"user": None, "unit": "jupyter-orphan.service", "memory": 100 * MIB, "memory_max": None},
    ]
    assert [s["user"] for s in status.servers(None)] == [None, None]  # the hub did not answer


def test_memory_is_the_slice_against_its_cap_and_the_machine(cgroups, monkeypatch):
    monkeypatch.setattr(status, "meminfo", lambda: {"MemTotal": 8192 * MIB, "MemAvailable": 5000 * MIB})
    assert status.memory() == {"servers": 400 * MIB, "servers_max": 2048 * MIB,
                               "available": 5000 * MIB, "total": 8192 * MIB}


def test_meminfo_reads_total_and_available_in_bytes(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:        8000000 kB\nMemFree:  10 kB\nMemAvailable:    5000000 kB\n")
    assert status.meminfo(tmp_path / "meminfo") == {"MemTotal": 8000000 * 1024, "MemAvailable": 5000000 * 1024}


def test_online_means_seen_in_the_last_ten_minutes():
    users = [{"name": "ann", "last_activity": "2025-03-03T09:25:00.123456Z"},
             {"name": "bob", "last_activity": "2025-03-03T09:10:00Z"},
             {"name": "cy", "last_activity": None},
             {"name": "di", "last_activity": "2025-03-03T09:21:00+00:00"}]
    assert status.online(users, NOW) == ["ann", "di"]


def _info(**changes):
    info = {
        "hub": {"unit": paths.HUB_UNIT, "state": "active", "since": "Mon 2025-03-03 08:00:01 UTC"},
        "proxy": {"unit": paths.PROXY_UNIT, "state": "failed", "since": "Mon 2025-03-03 09:00:00 UTC"},
        "certificate": {"mode": "letsencrypt", "expires": "2025-05-01 12:00 UTC (59 days)"},
        "users": {"total": 25, "online": ["ann", "bob"]},
        "servers": [{"user": "ann", "unit": "jupyter-ann.service", "memory": 300 * MIB, "memory_max": 1024 * MIB},
                    {"user": None, "unit": "jupyter-orphan.service", "memory": 500 * MIB, "memory_max": None}],
        "memory": {"servers": 800 * MIB, "servers_max": 6144 * MIB, "available": 3072 * MIB, "total": 8192 * MIB},
    }
    info.update(changes)
    return info


def test_the_screen_says_what_runs_since_when_who_is_on_and_what_memory_is_taken():
    assert status.format_status(_info()).splitlines() == [
        f"hub:          active since Mon 2025-03-03 08:00:01 UTC ({paths.HUB_UNIT})",
        f"proxy:        failed since Mon 2025-03-03 09:00:00 UTC ({paths.PROXY_UNIT})",
        "certificate:  letsencrypt, expires 2025-05-01 12:00 UTC (59 days)",
        "users:        2 online of 25 (active in the last 10 minutes)",
        "servers:      2 running",
        f"memory:       servers 800.0 MiB of 6.0 GiB ({paths.USERS_SLICE}); machine 3.0 GiB available of 8.0 GiB",
        "  jupyter-orphan.service  500.0 MiB",
        "  ann                     300.0 MiB of 1.0 GiB",
    ]


def test_the_screen_without_the_hub_https_or_a_served_certificate():
    lines = status.format_status(_info(users=None, certificate={"mode": "off"})).splitlines()
    assert lines[2] == "certificate:  off (plain HTTP)"
    assert lines[3] == "users:        unknown: the hub does not answer"
    down = status.format_status(_info(certificate={"mode": "selfsigned", "served": "nothing answers on port 443"}))
    assert down.splitlines()[2] == "certificate:  selfsigned, nothing answers on port 443"


def test_a_full_class_fits_one_screen():
    many = [{"user": f"s{i:02}", "unit": f"jupyter-s{i:02}.service", "memory": i * MIB, "memory_max": None}
            for i in range(40)]
    lines = status.format_status(_info(servers=many)).splitlines()
    assert len(lines) == 6 + status.MAX_SERVER_ROWS + 1
    assert lines[6].startswith("  s39 ") and lines[-1].startswith("  … and 25 more")
