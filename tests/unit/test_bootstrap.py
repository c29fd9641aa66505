"""bin/bootstrap.py's host checks and hand-over (it is stdlib-only and runs before
anything is installed, so it is loaded from its file)."""

import importlib.util
import json
import socket
import subprocess
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bootstrap", Path(__file__).resolve().parents[2] / "bin" / "bootstrap.py")
bootstrap = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bootstrap)


@pytest.mark.parametrize("distro, version", [
    ("debian", "12"), ("debian", "13"), ("ubuntu", "24.04"), ("ubuntu", "26.04")])
def test_supported_systems(distro, version):
    bootstrap.check_os({"ID": distro, "VERSION_ID": version})


@pytest.mark.parametrize("distro, version", [("debian", "11"), ("ubuntu", "22.04"), ("fedora", "40"), ("debian", "")])
def test_unsupported_systems_fail_with_one_line_naming_them(distro, version):
    with pytest.raises(bootstrap.HostError) as e:
        bootstrap.check_os({"ID": distro, "VERSION_ID": version})
    message = str(e.value)
    assert f"{distro} {version}" in message and "Debian >= 12 or Ubuntu >= 24.04" in message
    assert "\n" not in message


def test_os_release_parsing(tmp_path):
    f = tmp_path / "os-release"
    f.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert bootstrap.os_release(f)["VERSION_ID"] == "12"


def test_unsupported_architecture(monkeypatch):
    monkeypatch.setattr(bootstrap.platform, "machine", lambda: "riscv64")
    with pytest.raises(bootstrap.HostError, match="riscv64: use x86_64 or aarch64"):
        bootstrap.check_arch()


def test_not_root(monkeypatch):
    monkeypatch.setattr(bootstrap.os, "geteuid", lambda: 1000)
    with pytest.raises(bootstrap.HostError, match="must run as root"):
        bootstrap.check_root()


def test_no_systemd_here_is_reported():
    # This CI machine's PID 1 is not systemd: exactly the case to refuse.
    if Path("/run/systemd/system").is_dir() and Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("PID 1 is systemd on this machine")
    with pytest.raises(bootstrap.HostError, match="systemd is not PID 1"):
        bootstrap.check_systemd()


def test_a_busy_port_is_seen():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not bootstrap.port_free(s.getsockname()[1])


def test_hand_over_keeps_passwords_off_the_command_line(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(bootstrap.os, "execve", lambda path, argv, env: seen.update(argv=argv, env=env))
    args = bootstrap.parse_args(["--admin", "Teacher:S3cret-pass", "--admin", "ta", "--user-env", "venv"])
    bootstrap.hand_over(args, bootstrap.admin_passwords(args.admin))
    warning = capsys.readouterr().err
    assert "warning: the password of teacher is on the command line" in warning and "S3cret" not in warning
    assert "S3cret-pass" not in " ".join(seen["argv"])
    assert seen["argv"][1:] == ["install", "--admin", "Teacher", "--admin", "ta", "--user-env", "venv"]
    assert json.loads(seen["env"][bootstrap.ADMIN_PASSWORDS_ENV]) == {"teacher": "S3cret-pass"}


def test_admin_passwords_are_asked_on_the_terminal_and_enter_means_generate(monkeypatch, capsys):
    answers = {"Password for hub admin teacher (Enter: generate one): ": "typed-pass-1",
               "Password for hub admin ta (Enter: generate one): ": ""}
    monkeypatch.setattr(bootstrap.getpass, "getpass", lambda prompt, stream: answers[prompt])
    assert bootstrap.admin_passwords(["Teacher", "ta"], terminal=object()) == {"teacher": "typed-pass-1"}
    assert bootstrap.admin_passwords(["teacher"], terminal=None) == {}  # no terminal: generated later
    assert capsys.readouterr().err == ""


def test_passwords_env_name_matches_the_cli():
    from hubstead.cli import main as cli
    assert bootstrap.ADMIN_PASSWORDS_ENV == cli.ADMIN_PASSWORDS_ENV


def test_rolled_back_exit_code_matches_the_upgrade():
    from hubstead.machine import upgrade
    assert bootstrap.ROLLED_BACK == upgrade.ROLLED_BACK


def test_the_progress_page_files_are_where_the_install_and_the_proxy_role_look():
    from hubstead.core import paths
    assert (bootstrap.PROGRESS_LOG, bootstrap.PROGRESS_PID, bootstrap.PROGRESS_PORT) == (
        str(paths.INSTALL_PROGRESS_LOG), str(paths.INSTALL_PROGRESS_PID), paths.HTTP_PORT)


def test_the_hub_env_and_its_copy_are_where_the_boot_time_rollback_looks():
    from hubstead.core import paths
    assert (bootstrap.HUB_ENV, bootstrap.PREVIOUS_HUB_ENV, bootstrap.PARTIAL_SUFFIX) == (
        str(paths.HUB_ENV), str(paths.PREVIOUS_HUB_ENV), paths.PARTIAL_SUFFIX)


def _hub_envs(monkeypatch, tmp_path, version):
    hub, previous = tmp_path / "hub", tmp_path / "previous-hub"
    (hub / "bin").mkdir(parents=True)
    (hub / "bin" / "hubstead").write_text(version)
    monkeypatch.setattr(bootstrap, "HUB_ENV", str(hub))
    monkeypatch.setattr(bootstrap, "PREVIOUS_HUB_ENV", str(previous))
    return hub, previous


@pytest.mark.parametrize("returncode, hub_after", [(0, "new"), (bootstrap.ROLLED_BACK, "new"), (1, "old"), (-9, "old")])
def test_a_rerun_puts_the_previous_hub_env_back_when_the_new_hubstead_does_not_finish(
        monkeypatch, tmp_path, returncode, hub_after):
    # A re-run sets the environment aside, installs the new Hubstead over it and runs it
    # as an upgrade. 0: done; ROLLED_BACK: it put everything back itself; anything else
    # (it crashed before it could): the installer puts the environment back.
    hub, previous = _hub_envs(monkeypatch, tmp_path, "old")
    assert bootstrap.set_hub_env_aside() == str(previous)
    (hub / "bin" / "hubstead").write_text("new")
    seen = {}

    def fake_run(argv, env):
        seen["argv"] = argv
        if returncode in (0, bootstrap.ROLLED_BACK):
            import shutil
            shutil.rmtree(previous)  # the upgrade forgets or uses the copy itself
        return subprocess.CompletedProcess(argv, returncode)

    monkeypatch.setattr(bootstrap.subprocess, "run", fake_run)
    assert bootstrap.hand_over(bootstrap.parse_args([]), {}, str(previous)) == returncode
    assert seen["argv"][-2:] == ["--previous-hub-env", str(previous)]
    assert (hub / "bin" / "hubstead").read_text() == hub_after
    assert not previous.exists()


def test_a_first_install_sets_nothing_aside(monkeypatch, tmp_path):
    hub, previous = _hub_envs(monkeypatch, tmp_path, "x")
    (hub / "bin" / "hubstead").unlink()
    assert bootstrap.set_hub_env_aside() is None and not previous.exists()


def test_a_checkout_is_copied_before_building(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".git").mkdir()
    target, tmp = bootstrap.install_spec(str(tmp_path))
    try:
        assert Path(target, "pyproject.toml").exists() and not Path(target, ".git").exists()
    finally:
        import shutil
        shutil.rmtree(tmp)
    assert bootstrap.install_spec("hubstead==1.0") == ("hubstead==1.0", None)


def test_the_documented_admin_password_is_accepted():
    from hubstead.machine.install import parse_admin
    admin = parse_admin("teacher:S3cret")  # the README's and the mission's example
    assert (admin.name, admin.password) == ("teacher", "S3cret")


def test_a_too_short_handed_over_password_is_one_line_and_changes_nothing(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from hubstead.cli import main as cli
    from hubstead.core import paths
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(paths, "CONFIG_FILE", tmp_path / "config.yaml")
    monkeypatch.setenv(cli.ADMIN_PASSWORDS_ENV, json.dumps({"teacher": "abc"}))
    r = CliRunner().invoke(cli.main, ["install", "--admin", "teacher"])
    assert r.exit_code == 1
    assert r.output.strip() == "hubstead: error: --admin: password too short: use at least 6 characters"
    assert not paths.CONFIG_FILE.exists()


def test_a_python_older_than_ansible_needs_is_refused_in_one_line():
    with pytest.raises(bootstrap.HostError) as e:
        bootstrap.check_python((3, 10, 12))
    assert str(e.value) == "python3 is 3.10 here: Hubstead needs 3.11 or newer (Ansible runs its roles)"
    bootstrap.check_python((3, 11, 2))


def test_the_progress_page_shows_the_steps_and_leaves_nothing_when_stopped(monkeypatch, tmp_path):
    # As the proxy role stops it: SIGTERM to the pid in its pid file, then the file is gone.
    import os
    import signal
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    progress = tmp_path / "progress"
    monkeypatch.setattr(bootstrap, "PROGRESS_PORT", port)
    monkeypatch.setattr(bootstrap, "PROGRESS_DIR", str(progress))
    monkeypatch.setattr(bootstrap, "PROGRESS_LOG", str(progress / "steps.log"))
    monkeypatch.setattr(bootstrap, "PROGRESS_PID", str(progress / "page.pid"))
    bootstrap.start_progress_page()
    bootstrap.say("installing Hubstead from /opt/src")
    with open(progress / "steps.log", "a") as log:  # as `hubstead install` appends its steps
        log.write("[1/4] base: Hubstead's groups\n")
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(base + bootstrap.PROGRESS_JSON_PATH) as r:
        assert json.load(r) == {"steps": ["installing Hubstead from /opt/src", "[1/4] base: Hubstead's groups"]}
    with pytest.raises(urllib.error.HTTPError) as page:  # any path: the page, and "not the hub yet"
        urllib.request.urlopen(base + "/hub/login")
    assert page.value.code == 503 and b"installing JupyterHub" in page.value.read()

    os.kill(int((progress / "page.pid").read_text()), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while progress.exists():
        assert time.monotonic() < deadline, "the page did not clean up after itself"
        time.sleep(0.05)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "/", timeout=2)
    bootstrap.say("after the page")  # the installer goes on without it


def test_without_the_package_index_the_install_stops_with_one_line_and_leaves_nothing(monkeypatch, tmp_path):
    # pip as a machine behind a proxy that isn't there would have it: nothing answers.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setattr(bootstrap, "HUB_ENV", str(tmp_path / "opt" / "hub"))
    with pytest.raises(bootstrap.HostError) as e:
        bootstrap.ensure_hub_env()
    message = str(e.value)
    assert message.startswith("cannot reach the package index: ") and "\n" not in message
    assert message.endswith("set HTTPS_PROXY (and the index in /etc/pip.conf if you use a mirror) "
                            "or use --wheelhouse DIR")
    assert "127.0.0.1" in message or "onnection" in message  # the network's own words, not just "not found"
    assert not (tmp_path / "opt").exists()


def test_a_wheelhouse_without_wheels_is_refused_before_anything_changes(tmp_path):
    with pytest.raises(bootstrap.HostError) as e:
        bootstrap.check_wheelhouse(str(tmp_path))
    assert str(e.value).startswith(f"--wheelhouse {tmp_path}: no wheels there")
    with pytest.raises(bootstrap.HostError):
        bootstrap.check_wheelhouse(str(tmp_path / "missing"))
