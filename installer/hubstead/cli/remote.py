"""``--host USER@HOST``: install, upgrade, apply and back up another machine over SSH
(hubstead.machine.remote), from a laptop that need not be root, nor run Debian."""

import functools
import sys
import tempfile
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
)


def host_options(command):
    """--host, --port and --identity on ``command``; the last two mean nothing without --host."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if not kwargs["host"] and (kwargs["port"] != 22 or kwargs["identity"] is not None):
            raise remote.RemoteError("--port and --identity go with --host USER@HOST")
        return command(*args, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def connect(host: str, port: int, identity: Path | None) -> tuple[remote.Target, str]:
    """The target, checked by one short SSH login; and how to become root there."""
    target = remote.parse_target(host, port, identity)
    return target, remote.probe(target)


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


def install(host: str, port: int, identity: Path | None, admin_specs: tuple[str, ...], user_env: str | None) -> int:
    """bootstrap.py with these arguments on the host: a new install, or a re-run."""
    target = remote.parse_target(host, port, identity)
    names, passwords = _passwords(admin_specs, target.host)  # all checked before we connect
    sudo = remote.probe(target)
    args = [arg for name in names for arg in ("--admin", name)] + (["--user-env", user_env] if user_env else [])
    click.echo(f"installing Hubstead on {target} over SSH", err=True)
    with tempfile.TemporaryDirectory(prefix="hubstead-wheel-") as workdir:
        return remote.bootstrap(target, sudo, args, passwords, Path(workdir))


def upgrade(host: str, port: int, identity: Path | None) -> int:
    """Re-run the installer there with this Hubstead: the same upgrade, with its way back."""
    target, sudo = connect(host, port, identity)
    click.echo(f"upgrading Hubstead on {target} over SSH to this one", err=True)
    with tempfile.TemporaryDirectory(prefix="hubstead-wheel-") as workdir:
        return remote.bootstrap(target, sudo, [], {}, Path(workdir))


def hubstead_there(host: str, port: int, identity: Path | None, args: list[str]) -> int:
    """``hubstead ARGS`` as root on the host, its output ours."""
    target, sudo = connect(host, port, identity)
    return remote.hubstead(target, sudo, args)


def backup(host: str, port: int, identity: Path | None, file: Path, homes: bool) -> dict:
    """The host's backup, to ``file`` here; its manifest (the command exits on failure)."""
    returncode, manifest = remote.fetch_backup(remote.parse_target(host, port, identity), file, homes)
    if manifest is None:
        sys.exit(returncode)  # `hubstead backup` there has said why
    return manifest
