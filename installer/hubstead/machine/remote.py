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

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + (f" (port {self.port})" if self.port != 22 else "")


def parse_target(spec: str, port: int = 22, identity: Path | None = None) -> Target:
    match = TARGET_RE.fullmatch(spec)
    if not match:
        raise RemoteError(f"--host {spec!r}: expected USER@HOST, e.g. root@hub.example.org or root@192.0.2.10")
    if not 1 <= port <= 65535:
        raise RemoteError(f"--port {port}: expected a TCP port, 1 to 65535")
    if identity is not None and not identity.is_file():
        raise RemoteError(f"--identity {str(identity)!r}: no such file (expected an SSH private key)")
    return Target(match["user"], match["host"].strip("[]"), port, identity)


def ssh_argv(target: Target, command: str) -> list[str]:
    """ssh running ``command`` (a shell line) on the target, never asking anything:
    BatchMode fails where ssh would prompt, and a host seen for the first time has its
    key recorded (a changed key still stops it)."""
    if shutil.which("ssh") is None:
        raise RemoteError("no ssh command here: install the OpenSSH client (Debian: apt install openssh-client)")
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
            "-o", "StrictHostKeyChecking=accept-new", "-p", str(target.port)]
    if target.identity is not None:
        argv += ["-i", str(target.identity), "-o", "IdentitiesOnly=yes"]
    return [*argv, "--", f"{target.user}@{target.host}", command]


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


def fetch_backup(target: Target, file: Path, homes: bool) -> tuple[int, dict | None]:
    """`hubstead backup` on the target into a private directory there, streamed here to
    ``file`` (0600), which it becomes only once whole and checked. Returns the exit code
    and, on success, the backup's manifest."""
    file = file.absolute()
    if file.is_dir() or not file.parent.is_dir():
        raise RemoteError(f"{file}: give the backup's file name, in a directory that exists")
    sudo = probe(target)
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
