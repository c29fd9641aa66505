"""Hubstead on another machine, over SSH: `hubstead install --host USER@HOST` and its kin.

The roles converge a machine from its own hub environment (ansible-runner, local
connection), and that environment has to be built there anyway; so a remote install is
the local one carried over: this Hubstead, packed as a wheel, and bootstrap.py go to a
private temporary directory on the host, and bootstrap runs there with the same
arguments, its progress streamed back. The admins' passwords go on SSH's standard input,
never on a command line. A short probe (BatchMode, a connect timeout) comes first, so an
unreachable host, a refused key or a user without root fail in one line before
anything is sent.
"""

import base64
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from hubstead.core import paths
from hubstead.core.errors import HubsteadError
from hubstead.machine import backup

CONNECT_TIMEOUT = 10  # seconds; a host that does not answer by then is reported unreachable
# USER@HOST: a Unix login name, then a host name, an IPv4 address or a bracketed IPv6 one.
TARGET_RE = re.compile(r"(?P<user>[a-z_][a-z0-9_.-]*)@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])")
# A host key's fingerprint, as ssh-keygen -l prints it.
FINGERPRINT_RE = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
# What the probe prints: how the login becomes root there.
AS_ROOT, WITH_SUDO, NO_ROOT = "root", "sudo", "none"
PROBE = (f'if [ "$(id -u)" -eq 0 ]; then echo {AS_ROOT}; '
         f'elif sudo -n true 2>/dev/null; then echo {WITH_SUDO}; else echo {NO_ROOT}; fi')


class RemoteError(HubsteadError):
    """The remote host can't be used: the message says which and why."""


@dataclass(frozen=True)
class Target:
    user: str
    host: str
    port: int = 22
    identity: Path | None = None
    # Only the host keys listed here are trusted (--known-hosts, or what --host-key
    # pinned); None: ssh's own known_hosts, a host seen for the first time trusted as it
    # answers (and the CLI says so).
    known_hosts: Path | None = None

    @property
    def known_as(self) -> str:
        """The host's name in a known_hosts file."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + (f" (port {self.port})" if self.port != 22 else "")


def parse_target(spec: str, port: int = 22, identity: Path | None = None,
                 known_hosts: Path | None = None) -> Target:
    match = TARGET_RE.fullmatch(spec)
    if not match:
        raise RemoteError(f"--host {spec!r}: expected USER@HOST, e.g. root@hub.example.org or root@192.0.2.10")
    if not 1 <= port <= 65535:
        raise RemoteError(f"--port {port}: expected a TCP port, 1 to 65535")
    if identity is not None and not identity.is_file():
        raise RemoteError(f"--identity {str(identity)!r}: no such file (expected an SSH private key)")
    if known_hosts is not None and not known_hosts.is_file():
        raise RemoteError(f"--known-hosts {str(known_hosts)!r}: no such file "
                          "(expected a known_hosts file with the host's key)")
    return Target(match["user"], match["host"].strip("[]"), port, identity, known_hosts)


def ssh_argv(target: Target, command: str) -> list[str]:
    """ssh running ``command`` (a shell line) on the target, never asking anything:
    BatchMode fails where ssh would prompt, and a host seen for the first time has its
    key recorded (a changed key still stops it)."""
    if shutil.which("ssh") is None:
        raise RemoteError("no ssh command here: install the OpenSSH client (Debian: apt install openssh-client)")
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-p", str(target.port)]
    if target.known_hosts is None:
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
    else:
        argv += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={target.known_hosts}",
                 "-o", "GlobalKnownHostsFile=/dev/null"]
    if target.identity is not None:
        argv += ["-i", str(target.identity), "-o", "IdentitiesOnly=yes"]
    return [*argv, "--", f"{target.user}@{target.host}", command]


def _user_known_hosts(target: Target) -> Path:
    """The known_hosts file ssh records new host keys in, for this target."""
    if target.known_hosts is not None:
        return target.known_hosts
    config = subprocess.run(["ssh", "-G", "-p", str(target.port), "--", f"{target.user}@{target.host}"],
                            capture_output=True, text=True).stdout
    files = next((line.split()[1:] for line in config.splitlines() if line.startswith("userknownhostsfile ")),
                 ["~/.ssh/known_hosts"])
    return Path(files[0]).expanduser()


def known_fingerprints(target: Target) -> list[str]:
    """The fingerprints (SHA256:…) of the host keys trusted for this target."""
    found = subprocess.run(["ssh-keygen", "-F", target.known_as, "-l", "-f", str(_user_known_hosts(target))],
                           capture_output=True, text=True).stdout
    return sorted({word for line in found.splitlines() if not line.startswith("#")
                   for word in line.split() if FINGERPRINT_RE.fullmatch(word)})


def pin_host_key(target: Target, fingerprint: str, directory: Path) -> Target:
    """The target, trusting only the host key with this fingerprint: its keys are asked
    for (ssh-keyscan), the one that matches is written to a known_hosts file in
    ``directory``, and every later connection checks the host against that file only."""
    if not FINGERPRINT_RE.fullmatch(fingerprint):
        raise RemoteError(f"--host-key {fingerprint!r}: expected a fingerprint like SHA256:<43 characters>, "
                          "as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it there")
    scanned = subprocess.run(["ssh-keyscan", "-T", str(CONNECT_TIMEOUT), "-p", str(target.port), target.host],
                             capture_output=True, text=True).stdout
    keys = [line for line in scanned.splitlines() if line and not line.startswith("#")]
    matching = [line for line in keys if _fingerprint(line) == fingerprint]
    if not matching:
        raise RemoteError(f"{target}: no host key with fingerprint {fingerprint} answers there "
                          + (f"(it has {', '.join(sorted({_fingerprint(line) for line in keys}))})" if keys else
                             "(no host key answered)") + "; nothing was sent")
    pinned = directory / "known_hosts"
    pinned.write_text("".join(line + "\n" for line in matching))
    return Target(target.user, target.host, target.port, target.identity, pinned)


def _fingerprint(known_hosts_line: str) -> str:
    listed = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=known_hosts_line + "\n",
                            capture_output=True, text=True).stdout.split()
    return listed[1] if len(listed) > 1 else ""


def probe(target: Target) -> str:
    """Connect once: the prefix that makes a command run as root there ('' or 'sudo -n ')."""
    try:
        result = subprocess.run(ssh_argv(target, PROBE), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                timeout=3 * CONNECT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{target}: no answer over SSH in {3 * CONNECT_TIMEOUT} s") from None
    answer = result.stdout.strip().splitlines()[-1:] or [""]
    if result.returncode != 0 or answer[0] not in (AS_ROOT, WITH_SUDO, NO_ROOT):
        why = (result.stderr.strip().splitlines() or [f"ssh exited with {result.returncode}"])[-1]
        raise RemoteError(f"cannot log in to {target} over SSH: {why}")
    if answer[0] == NO_ROOT:
        raise RemoteError(f"{target}: {target.user} is not root and has no sudo without a password there; "
                          f"use root@{target.host} or give {target.user} passwordless sudo")
    return "" if answer[0] == AS_ROOT else "sudo -n "


def pack_self(directory: Path) -> Path:
    """This Hubstead as a wheel in ``directory``, built from its installed files, so the
    host runs exactly the version that drives it."""
    dist = metadata.distribution("hubstead")
    info = f"hubstead-{dist.version}.dist-info"
    package = [f for f in dist.files or [] if f.parts[0] == "hubstead" and "__pycache__" not in f.parts]
    if not package:
        raise RemoteError("this Hubstead is not installed from a wheel (an editable install?): "
                          "install it with pip or uv to install on another host")
    wheel = directory / f"hubstead-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        members = [(str(f), Path(f.locate()).read_bytes()) for f in package]
        members += [(f"{info}/{name}", (dist.read_text(name) or "").encode())
                    for name in ("METADATA", "WHEEL", "entry_points.txt")]
        for name, data in members:
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def _upload(target: Target, files: list[Path]) -> str:
    """Put ``files`` in a new private directory on the target; its path there."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in files:
            tar.add(file, arcname=file.name)
    command = (f"umask 077 && d=$(mktemp -d {shlex.quote(paths.REMOTE_SCRATCH_TEMPLATE)}) "
               '&& tar -x -f - -C "$d" && echo "$d"')
    result = subprocess.run(ssh_argv(target, command), input=buffer.getvalue(), capture_output=True)
    if result.returncode != 0:
        why = (result.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise RemoteError(f"{target}: could not copy the installer there: {why}")
    return result.stdout.decode().strip()


def bootstrap(target: Target, sudo: str, args: list[str], passwords: dict[str, str], workdir: Path) -> int:
    """Run bootstrap.py on the target with ``args`` (no passwords in them) and this
    Hubstead; its output goes to ours as it comes. Returns its exit code."""
    wheel = pack_self(workdir)
    remote_dir = _upload(target, [paths.BOOTSTRAP, wheel])
    run = shlex.join(["python3", f"{remote_dir}/bootstrap.py", "--from", f"{remote_dir}/{wheel.name}",
                      "--admin-passwords-stdin", *args])
    # The directory goes whatever bootstrap's outcome; its exit code is the command's.
    command = f"cd / && {sudo}{run}; rc=$?; rm -rf {shlex.quote(remote_dir)}; exit $rc"
    with subprocess.Popen(ssh_argv(target, command), stdin=subprocess.PIPE) as ssh:
        assert ssh.stdin is not None
        ssh.stdin.write(json.dumps(passwords).encode())
        ssh.stdin.close()
        return ssh.wait()


def hubstead(target: Target, sudo: str, args: list[str]) -> int:
    """Run ``hubstead ARGS`` as root on the target; its output goes to ours."""
    return subprocess.run(ssh_argv(target, sudo + shlex.join(["hubstead", *args])),
                          stdin=subprocess.DEVNULL).returncode


def check_backup_file(file: Path) -> Path:
    """Where a backup fetched here goes (absolute); refused before anything connects."""
    file = file.absolute()
    if file.is_dir() or not file.parent.is_dir():
        raise RemoteError(f"{file}: give the backup's file name, in a directory that exists")
    return file


def fetch_backup(target: Target, sudo: str, file: Path, homes: bool) -> tuple[int, dict | None]:
    """`hubstead backup` on the target (``sudo``: see probe) into a private directory
    there, streamed here to ``file`` (0600, see check_backup_file), which it becomes only
    once whole and checked. Returns the exit code and, on success, the backup's manifest."""
    # Its "wrote …" line would name the scratch file there: the caller says where it is here.
    inner = (f"d=$(mktemp -d {shlex.quote(paths.REMOTE_SCRATCH_TEMPLATE)}) && "
             f'hubstead backup "$d/backup" {"--homes" if homes else ""} >/dev/null && cat "$d/backup"; '
             'rc=$?; rm -rf "$d"; exit $rc')
    fd, partial = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            returncode = subprocess.run(ssh_argv(target, f"{sudo}sh -c {shlex.quote(inner)}"),
                                        stdin=subprocess.DEVNULL, stdout=out).returncode
        if returncode != 0:
            return returncode, None
        manifest = backup.verify(Path(partial))
        os.replace(partial, file)
        return 0, manifest
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
