"""`--host USER@HOST`: what is refused before anything is sent, and the wheel that is sent."""

import base64
import hashlib
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubstead.cli import main as cli
from hubstead.machine import remote


@pytest.mark.parametrize("spec", ["127.0.0.1", "root@", "@host", "Root@host", "root@host:22", "root@-x",
                                  "root@host; rm -rf /", "root@host name"])
def test_a_host_that_is_not_user_at_host_is_refused_naming_it(spec):
    with pytest.raises(remote.RemoteError) as e:
        remote.parse_target(spec)
    assert repr(spec) in str(e.value) and "USER@HOST" in str(e.value) and "\n" not in str(e.value)


def test_user_at_host_forms():
    assert remote.parse_target("root@hub.example.org").host == "hub.example.org"
    target = remote.parse_target("admin@[2001:db8::1]", port=2200)
    assert (target.user, target.host, target.port) == ("admin", "2001:db8::1", 2200)
    assert remote.ssh_argv(target, "true")[-2:] == ["admin@2001:db8::1", "true"]


def test_a_missing_key_file_or_a_bad_port_is_refused(tmp_path):
    with pytest.raises(remote.RemoteError, match="--identity .*no such file"):
        remote.parse_target("root@host", identity=tmp_path / "nokey")
    with pytest.raises(remote.RemoteError, match="--port 70000"):
        remote.parse_target("root@host", port=70000)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_fails_in_one_line_at_once():
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(remote.RemoteError) as e:
        remote.probe(remote.Target("root", "127.0.0.1", port))
    assert time.monotonic() - start < 5
    assert f"port {port}" in str(e.value) and "Connection refused" in str(e.value) and "\n" not in str(e.value)


def test_the_wheel_holds_this_hubstead_with_the_installer_and_the_roles(tmp_path):
    wheel = remote.pack_self(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
        for line in record.splitlines():
            name, digest, size = line.rsplit(",", 2)
            if digest:  # installers check each file against its RECORD line
                data = archive.read(name)
                assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
                    b"=").decode() and int(size) == len(data), name
    assert {"hubstead/_data/bootstrap.py", "hubstead/_data/roles/hub/tasks/main.yml",
            "hubstead/machine/remote.py"} <= names
    assert not any("__pycache__" in name for name in names)
    target = tmp_path / "site"
    subprocess.run([str(Path(sys.executable).parent / "uv"), "pip", "install", "-q", "--no-deps", "--offline",
                    "--target", str(target), str(wheel)], check=True)
    assert (target / "hubstead" / "_data" / "bootstrap.py").is_file()
    assert "hubstead = hubstead.cli.main:main" in next(target.glob("hubstead-*.dist-info/entry_points.txt")).read_text()


def _run(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def test_port_or_identity_without_host_is_refused():
    result = _run("install", "--port", "2222")
    assert result.exit_code == 1 and "go with --host" in result.output


def test_a_weak_password_stops_a_remote_install_before_it_connects():
    result = _run("install", "--host", "root@127.0.0.1", "--port", str(_closed_port()), "--admin", "teacher:abc")
    assert result.exit_code == 1 and "Connection refused" not in result.output
    assert result.output.startswith("hubstead: error: ") and "password" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_upgrade_from_a_spec_is_local_only():
    result = _run("upgrade", "--host", "root@127.0.0.1", "--from", "/tmp/x.whl")
    assert result.exit_code == 1 and "work here only" in result.output


def test_a_remote_backup_to_a_directory_is_refused_before_connecting(tmp_path):
    result = _run("backup", "--host", "root@127.0.0.1", "--port", str(_closed_port()), str(tmp_path))
    assert result.exit_code == 1 and "give the backup's file name" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, says", [
    (["--known-hosts", "/nonexistent/known_hosts"], "--known-hosts '/nonexistent/known_hosts': no such file"),
    (["--host-key", "MD5:aa:bb"], "--host-key 'MD5:aa:bb': expected a fingerprint like SHA256:"),
    (["--host-key", "SHA256:" + "A" * 43, "--known-hosts", __file__], "give one of them"),
])
def test_a_bad_host_key_option_is_refused_in_one_line_before_connecting(extra, says):
    port = _closed_port()
    r = _run("config", "apply", "--host", "root@127.0.0.1", "--port", str(port), *extra)
    assert r.exit_code == 1 and says in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_host_key_options_go_with_host():
    r = _run("config", "apply", "--host-key", "SHA256:" + "A" * 43)
    assert r.exit_code == 1 and "go with --host USER@HOST" in r.output


def test_a_pinned_host_key_that_nothing_presents_stops_it_and_nothing_is_sent(tmp_path):
    target = remote.Target("root", "127.0.0.1", _closed_port())
    with pytest.raises(remote.RemoteError) as e:
        remote.pin_host_key(target, "SHA256:" + "A" * 43, tmp_path)
    assert "no host key answered" in str(e.value) and "nothing was sent" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_known_hosts_file_is_the_only_trust_and_its_fingerprints_are_read(tmp_path):
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2200 {public[0]} {public[1]}\n")
    listed = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], capture_output=True, text=True)
    fingerprint = listed.stdout.split()[1]
    target = remote.parse_target("root@127.0.0.1", port=2200, known_hosts=known)
    assert remote.known_fingerprints(target) == [fingerprint]
    assert remote.known_fingerprints(remote.Target("root", "127.0.0.1", 2201, known_hosts=known)) == []
    # ssh checks the host against that file only, and refuses any key not in it.
    argv = remote.ssh_argv(target, "true")
    assert f"UserKnownHostsFile={known}" in argv and "StrictHostKeyChecking=yes" in argv
    assert "StrictHostKeyChecking=accept-new" not in argv
