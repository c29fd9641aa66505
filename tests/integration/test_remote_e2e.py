"""`hubstead install --host USER@HOST` from this machine (the teacher's laptop) to a booted
target that only runs sshd on a loopback port, with a key made for the test."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code
from testbed import Testbed

from hubstead.machine import backup

pytestmark = pytest.mark.integration

SSH_PORT = 2222  # the target shares this host's network; 22 may be the host's own sshd
CLOSED_PORT = 2223
HUBSTEAD = Path(sys.executable).parent / "hubstead"  # the venv's: this checkout, as a laptop has it
HOST = "root@127.0.0.1"
KNOWN_HOST = f"[127.0.0.1]:{SSH_PORT}"
SCRATCH_LEFT = "ls -d /tmp/hubstead-ssh.* 2>/dev/null"


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hubstead-test", "-f", str(path)],
                   check=True)
    return path


def _forget_host_key() -> None:
    # Each booted target has new host keys: a stale entry would (rightly) stop ssh.
    subprocess.run(["ssh-keygen", "-R", KNOWN_HOST], capture_output=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ssh")
    return _keygen(directory / "teacher"), _keygen(directory / "stranger")


@pytest.fixture(scope="module")
def remote(keys):
    """A fresh target with sshd on 127.0.0.1:SSH_PORT, root's login by the teacher's key only."""
    tb = Testbed(name="hubstead-remote")
    tb.up()
    _forget_host_key()
    try:
        tb.run("apt-get", "update", "-q", timeout=600)
        tb.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server",
               env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=600)
        tb.run("sh", "-c", f"printf 'Port {SSH_PORT}\\nListenAddress 127.0.0.1\\n' "
               "> /etc/ssh/sshd_config.d/test.conf && systemctl restart ssh")
        tb.run("sh", "-c", "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys",
               input=keys[0].with_suffix(".pub").read_text())
        yield tb
    finally:
        tb.down()
        _forget_host_key()


def over_ssh(keys) -> list[str]:
    return ["--host", HOST, "--port", str(SSH_PORT), "--identity", str(keys[0])]


def hubstead(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    # A new session: no controlling terminal, as from a script (nothing is asked).
    return subprocess.run([str(HUBSTEAD), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, start_new_session=True)


def _snapshot(tb: Testbed) -> str:
    return tb.run("sh", "-c", "ls -A /opt /tmp /etc/hubstead /var/lib 2>&1; systemctl list-units --all "
                  "--no-legend 'jupyterhub*' 'traefik*'").stdout


def _host_key_fingerprint(tb: Testbed) -> str:
    """The fingerprint of the target's ed25519 host key, read on the target itself."""
    return tb.run("ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]


@pytest.mark.parametrize("case", ["wrong key", "closed port", "bad syntax", "wrong host key"])
def test_bad_input_is_one_line_and_changes_nothing(remote, keys, case):
    argv = {
        "wrong key": [*over_ssh(keys)[:-1], str(keys[1])],
        "closed port": ["--host", HOST, "--port", str(CLOSED_PORT), "--identity", str(keys[0])],
        "bad syntax": ["--host", "127.0.0.1", "--port", str(SSH_PORT), "--identity", str(keys[0])],
        "wrong host key": [*over_ssh(keys), "--host-key", "SHA256:" + "A" * 43],
    }[case]
    before = _snapshot(remote)
    start = time.monotonic()
    result = hubstead("install", *argv, "--admin", ADMIN, "--user-env", "venv")
    seconds = time.monotonic() - start
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hubstead: error: "), result.stderr
    expected = {"wrong key": "Permission denied", "closed port": "Connection refused", "bad syntax": "USER@HOST",
                "wrong host key": f"no host key with fingerprint SHA256:{'A' * 43} answers there (it has "}
    assert expected[case] in lines[0]
    assert seconds < 15, f"took {seconds:.1f} s to fail"
    assert _snapshot(remote) == before


@pytest.fixture(scope="module")
def installed(remote, keys):
    # The first contact, with the host key the teacher read on the server: nothing else is trusted.
    _forget_host_key()
    result = hubstead("install", *over_ssh(keys), "--host-key", _host_key_fingerprint(remote),
                      "--admin", f"{ADMIN}:{ADMIN_PASSWORD}", "--user-env", "venv")
    print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "first contact" not in result.stderr
    return result


def test_remote_hub_answers_and_a_students_kernel_computes_there(remote, installed):
    # The progress of the roles came back over SSH, one line per task, through all four roles.
    assert "[4/4] hub: " in installed.stdout
    assert "is running" in installed.stdout
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    remote.run("hubstead", "users", "add", "sam", "--password-stdin", input="sam-password-1\n")
    _, token = own_server("sam", "sam-password-1")
    assert run_code("sam", token, "import os; print(6 * 7, os.getuid() != 0)").strip() == "42 True"


def test_password_sent_over_ssh_stays_out_of_logs_and_artifacts(remote, installed):
    # A successful converge deletes its ansible artifacts: the whole state and config too.
    for where in ("/var/lib/hubstead", "/etc", "/var/log", "/tmp", "/root"):
        found = remote.run("grep", "-rlsF", ADMIN_PASSWORD, where, check=False).stdout
        assert found == "", f"the admin's password is in {found}"
    journal = remote.run("sh", "-c", "journalctl -b --no-pager -o cat").stdout
    assert ADMIN_PASSWORD not in journal
    assert ADMIN_PASSWORD not in installed.stdout + installed.stderr
    # Nothing of the upload is left on the host.
    assert remote.run("sh", "-c", SCRATCH_LEFT, check=False).stdout == ""


def test_apply_over_ssh_runs_the_roles_there_with_their_progress(keys, installed):
    result = hubstead("config", "apply", "--all-roles", *over_ssh(keys))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[4/4] hub: " in result.stdout
    assert re.search(r"^applied: \d+ change\(s\) by roles base, user_env, proxy, hub;", result.stdout, re.M)


def test_backup_over_ssh_lands_here_whole_and_private(remote, keys, installed, tmp_path):
    file = tmp_path / "class.backup"
    result = hubstead("backup", *over_ssh(keys), str(file))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"wrote {file} ")
    assert file.stat().st_mode & 0o777 == 0o600
    assert {user["name"] for user in backup.verify(file)["users"]} == {ADMIN, "sam"}
    assert remote.run("sh", "-c", SCRATCH_LEFT, check=False).stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == [file.name]  # no partial copy beside it


def test_upgrade_over_ssh_reruns_the_installer_there(remote, keys, installed):
    _forget_host_key()  # a first contact without --host-key: says which key it trusted
    result = hubstead("upgrade", *over_ssh(keys))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (f"first contact with {HOST} (port {SSH_PORT}): trusted its host key {_host_key_fingerprint(remote)} "
            "as it answered") in result.stderr
    assert "hubstead-bootstrap: installing Hubstead from /tmp/hubstead-ssh." in result.stdout
    assert re.search(r"^Hubstead \S+ is running \(\d+ changes, ", result.stdout, re.M)
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
