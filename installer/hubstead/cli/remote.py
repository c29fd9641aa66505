"""``--host USER@HOST``: install, upgrade, apply and back up another machine over SSH
(hubstead.machine.remote), from a laptop that need not be root, nor run Debian."""

import contextlib
import functools
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from hubstead.core.passwords import check_strength
from hubstead.machine import remote
from hubstead.machine.install import parse_admin

_OPTIONS = (
    click.option("--host", metavar="USER@HOST", default=None,
                 help="Do it on that machine, over SSH, instead of here (USER: root, or one with "
                      "passwordless sudo there)."),
    click.option("--port", type=int, default=22, show_default=True, help="With --host: its SSH port."),
    click.option("--identity", type=click.Path(path_type=Path), default=None, metavar="KEY",
                 help="With --host: the SSH private key to log in with (default: ssh's own choice)."),
    click.option("--known-hosts", type=click.Path(path_type=Path), default=None, metavar="FILE",
                 help="With --host: trust only the host keys in FILE (known_hosts format), also the first time."),
    click.option("--host-key", default=None, metavar="SHA256:…",
                 help="With --host: trust only the host key with this fingerprint (ssh-keygen -lf "
                      "/etc/ssh/ssh_host_ed25519_key.pub prints it there). Without this or --known-hosts, "
                      "a host seen for the first time is trusted as it answers, and its fingerprint shown."),
)


@dataclass(frozen=True)
class Host:
    """What --host and its options say."""

    spec: str
    port: int = 22
    identity: Path | None = None
    known_hosts: Path | None = None
    host_key: str | None = None


def host_options(command):
    """--host and its options on ``command``, which gets them as ``host``: a Host, or None
    (the others mean nothing without --host)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        host = Host(kwargs.pop("host") or "", kwargs.pop("port"), kwargs.pop("identity"),
                    kwargs.pop("known_hosts"), kwargs.pop("host_key"))
        if not host.spec and host != Host(""):
            raise remote.RemoteError("--port, --identity, --known-hosts and --host-key go with --host USER@HOST")
        if host.known_hosts is not None and host.host_key is not None:
            raise remote.RemoteError("--known-hosts and --host-key: give one of them")
        return command(*args, host=host if host.spec else None, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


@contextlib.contextmanager
def connected(host: Host) -> Iterator[tuple[remote.Target, str]]:
    """The target, checked by one short SSH login, and how to become root there; while it
    lasts, every connection trusts only the host key that login trusted. A host seen for
    the first time is trusted as it answers unless --known-hosts or --host-key say which
    key to expect; either way this says which key it was."""
    target = remote.parse_target(host.spec, host.port, host.identity, host.known_hosts)
    with tempfile.TemporaryDirectory(prefix="hubstead-ssh-") as pinned:
        if host.host_key is not None:
            target = remote.pin_host_key(target, host.host_key, Path(pinned))
        known = remote.known_fingerprints(target)
        sudo = remote.probe(target)
        if not known:
            click.echo(f"hubstead: first contact with {target}: trusted its host key "
                       f"{', '.join(remote.known_fingerprints(target))} as it answered (recorded for next time); "
                       "compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there, "
                       "or give --host-key or --known-hosts", err=True)
        yield target, sudo


def _passwords(admin_specs: tuple[str, ...], host: str) -> tuple[list[str], dict[str, str]]:
    """The admins' names and the passwords to send: NAME:PASSWORD (with a warning), typed
    here on a terminal, or none (the host generates one and prints it once)."""
    admins = [parse_admin(spec) for spec in admin_specs]
    passwords = {}
    for admin in admins:
        if admin.password is not None:
            click.echo(f"hubstead: warning: the password of {admin.name} is on this machine's command line, "
                       f"which its other users can see while this runs; next time use --admin {admin.name} "
                       "and type it when asked", err=True)
        elif sys.stdin.isatty():
            admin.password = click.prompt(f"Password for hub admin {admin.name} on {host} (Enter: generate one)",
                                          hide_input=True, default="", show_default=False) or None
            if admin.password is not None:
                check_strength(admin.password)
        if admin.password is not None:
            passwords[admin.name] = admin.password
    return [admin.name for admin in admins], passwords


def install(host: Host, admin_specs: tuple[str, ...], user_env: str | None) -> int:
    """bootstrap.py with these arguments on the host: a new install, or a re-run."""
    target = remote.parse_target(host.spec, host.port, host.identity, host.known_hosts)
    names, passwords = _passwords(admin_specs, target.host)  # all checked before we connect
    args = [arg for name in names for arg in ("--admin", name)] + (["--user-env", user_env] if user_env else [])
    with connected(host) as (target, sudo), tempfile.TemporaryDirectory(prefix="hubstead-wheel-") as workdir:
        click.echo(f"installing Hubstead on {target} over SSH", err=True)
        return remote.bootstrap(target, sudo, args, passwords, Path(workdir))


def upgrade(host: Host) -> int:
    """Re-run the installer there with this Hubstead: the same upgrade, with its way back."""
    with connected(host) as (target, sudo), tempfile.TemporaryDirectory(prefix="hubstead-wheel-") as workdir:
        click.echo(f"upgrading Hubstead on {target} over SSH to this one", err=True)
        return remote.bootstrap(target, sudo, [], {}, Path(workdir))


def hubstead_there(host: Host, args: list[str]) -> int:
    """``hubstead ARGS`` as root on the host, its output ours."""
    with connected(host) as (target, sudo):
        return remote.hubstead(target, sudo, args)


def backup(host: Host, file: Path, homes: bool) -> dict:
    """The host's backup, to ``file`` here; its manifest (the command exits on failure)."""
    file = remote.check_backup_file(file)
    with connected(host) as (target, sudo):
        returncode, manifest = remote.fetch_backup(target, sudo, file, homes)
    if manifest is None:
        sys.exit(returncode)  # `hubstead backup` there has said why
    return manifest
