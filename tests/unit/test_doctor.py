"""`hubstead doctor`'s checks, each from facts made up, and how they are put together."""

from pathlib import Path

import pytest

from hubstead.core import paths
from hubstead.machine import doctor
from hubstead.machine.doctor import FAIL, OK, WARN, Listener, Result

GIB = 1 << 30
TRAEFIK = Listener("traefik", 700, paths.PROXY_UNIT)


def test_a_unit_that_is_not_running_fails_with_its_restart():
    assert doctor.check_unit(paths.PROXY_UNIT, True, "proxy").status == OK
    result = doctor.check_unit(paths.PROXY_UNIT, False, "proxy")
    assert result.status == FAIL and paths.PROXY_UNIT in result.message
    assert result.fix.startswith(f"sudo systemctl restart {paths.PROXY_UNIT}") and "hubstead logs proxy" in result.fix


def test_a_port_held_by_the_proxy_is_ok():
    assert doctor.check_port(443, [TRAEFIK], {700}) == Result(OK, f"port 443: {paths.PROXY_UNIT}")


def test_a_port_held_by_another_service_names_it_and_how_to_stop_it():
    result = doctor.check_port(80, [TRAEFIK, Listener("nginx", 812, "nginx.service")], {700})
    assert result.status == FAIL
    assert result.message == "port 80 is held by nginx (pid 812, nginx.service), not by the proxy"
    assert result.fix == f"sudo systemctl disable --now nginx.service; then: sudo systemctl restart {paths.PROXY_UNIT}"


def test_a_port_held_by_a_process_outside_any_service_is_killed_by_pid():
    result = doctor.check_port(80, [Listener("python3", 4242, None)], {700})
    assert result.status == FAIL and "python3 (pid 4242)" in result.message
    assert result.fix.startswith("sudo kill 4242;")


def test_a_port_nobody_listens_on_fails_and_one_we_cannot_see_warns():
    assert doctor.check_port(80, [], {700}) == Result(FAIL, "port 80: nothing listens",
                                                     f"sudo systemctl restart {paths.PROXY_UNIT}")
    assert doctor.check_port(80, None, set()).status == WARN


def test_the_listeners_are_read_from_ss_with_their_service(monkeypatch, tmp_path):
    (tmp_path / "700").mkdir()
    (tmp_path / "700" / "cgroup").write_text(f"0::/system.slice/{paths.PROXY_UNIT}\n")
    (tmp_path / "812").mkdir()
    (tmp_path / "812" / "cgroup").write_text("0::/user.slice/user-1000.slice/session-3.scope\n")
    out = ('LISTEN 0 4096 *:80 *:* users:(("traefik",pid=700,fd=7))\n'
           'LISTEN 0 5 0.0.0.0:80 0.0.0.0:* users:(("python3",pid=812,fd=3),("python3",pid=812,fd=4))\n')
    seen = []

    def ss(argv, **kwargs):
        seen.append(argv)
        return type("Done", (), {"stdout": out})()

    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(doctor.subprocess, "run", ss)
    monkeypatch.setattr(doctor, "PROC", tmp_path)
    assert doctor.listeners(80) == [Listener("python3", 812, None), Listener("traefik", 700, paths.PROXY_UNIT)]
    assert seen == [["ss", "-Hltnp", "sport = :80"]]
    out = "LISTEN 0 4096 *:80 *:*\n"  # sockets whose processes we may not see
    assert doctor.listeners(80) is None


def test_a_name_that_does_not_resolve_fails_only_where_it_must():
    required = doctor.check_dns("hub.example.edu", "https.letsencrypt.domains", None, ["192.0.2.7"], True)
    assert required.status == FAIL and "does not resolve" in required.message
    assert "192.0.2.7" in required.fix
    assert "config remove-item https.letsencrypt.domains hub.example.edu" in required.fix
    assert doctor.check_dns("hub", "https.hostnames", None, ["192.0.2.7"], False).status == WARN


def test_a_name_resolving_elsewhere_warns_and_here_is_ok():
    elsewhere = doctor.check_dns("hub.example.edu", "https.letsencrypt.domains", ["203.0.113.9"], ["192.0.2.7"], True)
    assert elsewhere.status == WARN and "203.0.113.9" in elsewhere.message and "NAT" in elsewhere.fix
    here = doctor.check_dns("hub.example.edu", "https.letsencrypt.domains", ["192.0.2.7", "2001:db8::7"],
                            ["192.0.2.7"], True)
    assert here.status == OK


@pytest.mark.parametrize(("days", "status"), [(90, OK), (13.5, WARN), (-2, FAIL)])
def test_the_certificate_warns_two_weeks_ahead_and_fails_expired(days, status):
    result = doctor.check_certificate("letsencrypt", days, None)
    assert result.status == status
    assert result.fix == ("" if status == OK else "sudo hubstead cert renew --force")


def test_each_mode_says_how_its_certificate_is_renewed():
    assert doctor.check_certificate("selfsigned", -1, None).fix.startswith("sudo hubstead config apply")
    assert "https.manual.cert" in doctor.check_certificate("manual", 3, None).fix


def test_no_certificate_served_fails():
    result = doctor.check_certificate("selfsigned", None, "nothing served on port 443 (refused)")
    assert result.status == FAIL and "refused" in result.message and paths.PROXY_UNIT in result.fix


def test_the_renewal_timer_must_run_and_its_last_run_succeed():
    assert doctor.check_renewal(True, False).status == OK
    stopped = doctor.check_renewal(False, False)
    assert stopped.status == FAIL and stopped.fix == f"sudo systemctl enable --now {paths.CERTBOT_TIMER}"
    failed = doctor.check_renewal(True, True)
    assert failed.status == WARN and paths.CERTBOT_SERVICE in failed.fix


@pytest.mark.parametrize(("space", "inodes", "status"), [
    (0.5, 0.9, OK), (0.08, 0.9, WARN), (0.015, 0.9, FAIL), (0.5, 0.01, FAIL), (0.5, None, OK),
])
def test_disk_space_and_inodes_warn_under_ten_and_fail_under_two_percent(space, inodes, status):
    assert doctor.check_disk("/, /var", space, inodes).status == status


def test_the_disk_fix_looks_where_it_is_short():
    assert doctor.check_disk("/home", 0.01, 0.5).fix.startswith("sudo du -xh --max-depth=2 /home ")
    assert doctor.check_disk("/, /var", 0.5, 0.01).fix.startswith("sudo du -x --inodes --max-depth=2 / ")


def _memory(available, servers_used=2 * GIB, servers_max=6 * GIB, total=16 * GIB):
    return {"servers": servers_used, "servers_max": servers_max, "available": available, "total": total}


def _server(used, cap):
    return {"user": None, "unit": "jupyter-x.service", "memory": used, "memory_max": cap}


def test_memory_is_ok_when_the_servers_can_grow_to_their_caps():
    servers = [_server(GIB, 2 * GIB), _server(GIB, 2 * GIB)]
    assert doctor.check_memory(_memory(available=4 * GIB), servers) == Result(
        OK, "memory: 2 servers running, using 2.0 GiB; 4.0 GiB of 16.0 GiB available")


def test_memory_warns_when_the_servers_could_outgrow_what_is_available():
    servers = [_server(GIB, 4 * GIB), _server(GIB, 4 * GIB)]  # may grow 6 GiB, the slice lets 4
    result = doctor.check_memory(_memory(available=3 * GIB), servers)
    assert result.status == WARN and "grow by 4.0 GiB" in result.message and "limits.memory" in result.fix
    assert doctor.check_memory(_memory(available=5 * GIB), servers).status == OK


def test_memory_warns_for_an_uncapped_server_in_an_uncapped_slice():
    result = doctor.check_memory(_memory(available=8 * GIB, servers_max=None), [_server(GIB, None)])
    assert result.status == WARN and "without bound" in result.message


def test_memory_fails_when_the_machine_has_almost_none_left():
    assert doctor.check_memory(_memory(available=GIB // 2), []).status == FAIL


def test_a_python_that_does_not_run_gets_the_command_that_rebuilds_its_environment():
    assert doctor.check_python(paths.USER_ENV, None).status == OK
    result = doctor.check_python(paths.USER_ENV, "No such file or directory")
    assert result.status == FAIL and str(paths.USER_ENV / "bin" / "python") in result.message
    assert result.fix.startswith(f"sudo rm -rf {paths.USER_ENV} && sudo hubstead install")
    assert doctor.check_python(paths.HUB_ENV, "gone").fix.startswith(f"sudo rm -rf {paths.HUB_ENV}, then run bootstrap")


def test_a_missing_python_is_found(tmp_path):
    assert doctor.python_error(tmp_path) is not None
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to("/usr/bin/python3.1-removed-by-an-upgrade")
    assert "No such file" in doctor.python_error(tmp_path)


def test_an_unsynchronized_or_unknown_clock_warns():
    assert doctor.check_clock(True).status == OK
    assert doctor.check_clock(False).status == WARN and "set-ntp true" in doctor.check_clock(False).fix
    assert doctor.check_clock(None).status == WARN


def test_the_hub_not_answering_through_the_proxy_fails():
    assert doctor.check_hub(None).status == OK
    result = doctor.check_hub("the hub did not answer at http://127.0.0.1/hub/api/ within 5 s")
    assert result.status == FAIL and "within 5 s" in result.message


@pytest.mark.parametrize(("start", "status"), [(1024, OK), (max(paths.LOOPBACK_PORTS) + 1, OK),
                                             (max(paths.LOOPBACK_PORTS), FAIL), (0, FAIL), (None, WARN)])
def test_students_able_to_bind_the_hubs_loopback_ports_fail(start, status):
    result = doctor.check_unprivileged_ports(start)
    assert result.status == status
    if status != OK:
        assert "net.ipv4.ip_unprivileged_port_start" in result.fix and "sysctl --system" in result.fix


def test_the_first_unprivileged_port_is_read_from_the_kernel():
    assert 0 <= doctor.unprivileged_port_start() <= 65536


def test_warnings_pass_and_a_failure_does_not():
    warned = [Result(OK, "a"), Result(WARN, "b", "do b")]
    assert doctor.passed(warned)
    assert not doctor.passed([*warned, Result(FAIL, "c", "do c")])
    assert doctor.format_results([*warned, Result(FAIL, "c", "do c")]).splitlines() == [
        "ok    a", "warn  b", "      fix: do b", "fail  c", "      fix: do c", "1 failed, 1 warnings, 1 ok"]


@pytest.fixture
def machine(monkeypatch):
    """A machine where everything is fine; a test changes the facts it is about."""
    facts = {"active": {paths.HUB_UNIT, paths.PROXY_UNIT, paths.CERTBOT_TIMER}, "ports": [], "resolved": []}
    monkeypatch.setattr(doctor.systemd, "is_active", lambda unit: unit in facts["active"])
    monkeypatch.setattr(doctor.systemd, "unit_pids", lambda unit: [700])
    monkeypatch.setattr(doctor.systemd, "properties", lambda unit, *names: {"Result": "success"})
    monkeypatch.setattr(doctor, "listeners", lambda port: facts["ports"].append(port) or [TRAEFIK])
    monkeypatch.setattr(doctor, "_hub_error", lambda effective: None)
    monkeypatch.setattr(doctor, "_certificate", lambda effective: Result(OK, "certificate"))
    monkeypatch.setattr(doctor.health, "public_hosts", lambda: ["192.0.2.7"])
    monkeypatch.setattr(doctor, "resolve", lambda name: facts["resolved"].append(name) or ["192.0.2.7"])
    monkeypatch.setattr(doctor, "disks", lambda: {"/": (0.5, 0.5)})
    monkeypatch.setattr(doctor.machine_status, "memory", lambda: _memory(available=8 * GIB))
    monkeypatch.setattr(doctor.machine_status, "servers", lambda hub_users: [])
    monkeypatch.setattr(doctor, "python_error", lambda env, run_as=(): None)
    monkeypatch.setattr(doctor, "clock_synchronized", lambda: True)
    monkeypatch.setattr(doctor, "unprivileged_port_start", lambda: 1024)
    return facts


def _effective(mode, hostnames=(), domains=()):
    return {"http": {"port": 80}, "wheelhouse": None, "https": {"mode": mode, "port": 443, "hostnames": list(hostnames),
                                            "letsencrypt": {"domains": list(domains)}}}


def test_plain_http_checks_port_80_only_and_no_certificate(machine):
    results = doctor.run(_effective("off", hostnames=["hub"]))
    assert doctor.passed(results) and machine["ports"] == [80] and machine["resolved"] == []
    assert "certificate" not in [r.message for r in results]


def test_letsencrypt_checks_both_ports_its_domains_and_the_renewal_timer(machine):
    machine["active"].discard(paths.CERTBOT_TIMER)
    results = doctor.run(_effective("letsencrypt", hostnames=["hub"], domains=["hub.example.edu"]))
    assert machine["ports"] == [80, 443] and machine["resolved"] == ["hub.example.edu"]
    assert [r.message for r in results if r.status == FAIL] == [
        f"{paths.CERTBOT_TIMER} is not active: the certificate will not be renewed"]


def test_selfsigned_looks_up_its_host_names_but_not_its_addresses(machine):
    doctor.run(_effective("selfsigned", hostnames=["hub", "192.0.2.7"]))
    assert machine["resolved"] == ["hub"]


def test_a_stopped_proxy_fails_the_run(machine):
    machine["active"].discard(paths.PROXY_UNIT)
    results = doctor.run(_effective("off"))
    assert not doctor.passed(results)
    assert Result(FAIL, f"{paths.PROXY_UNIT} is not running",
                  f"sudo systemctl restart {paths.PROXY_UNIT}; if it stops again: sudo hubstead logs proxy") in results


def test_the_disks_are_grouped_by_filesystem():
    found = doctor.disks()
    assert found and all(0 <= space <= 1 for space, _ in found.values())
    assert sorted(p for where in found for p in where.split(", ")) == sorted(
        p for p in doctor.DISK_PATHS if Path(p).exists())
