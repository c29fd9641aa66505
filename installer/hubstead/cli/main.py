"""The ``hubstead`` command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from hubstead import __version__, config
from hubstead.classroom import enrol
from hubstead.cli import ops, remote
from hubstead.cli.backup import backup_command, restore_command
from hubstead.cli.config import config_group
from hubstead.cli.env import env_group
from hubstead.cli.export import export_group
from hubstead.cli.packages import packages_group
from hubstead.cli.util import Group, Progress, fail, root_only
from hubstead.core import audit, paths, unixusers, usernames
from hubstead.core.passwords import PasswordStore, WeakPassword, check_strength, generate
from hubstead.hub.hubapi import HubAPI, HubAPIError

# bootstrap.py hands admin passwords over in this variable (JSON {name: password}),
# never on a command line where `ps` would show them.
ADMIN_PASSWORDS_ENV = "HUBSTEAD_ADMIN_PASSWORDS"


@click.group(cls=Group)
@click.version_option(__version__, prog_name="hubstead")
def main():
    """Run JupyterHub for a class or a lab on this machine."""


main.add_command(config_group, "config")
main.add_command(ops.status)
main.add_command(ops.logs)
main.add_command(ops.doctor)
main.add_command(ops.audit)
main.add_command(backup_command)
main.add_command(restore_command)
main.add_command(env_group)
main.add_command(export_group)
main.add_command(packages_group)
# `hubstead-config` is the same group, for people used to `tljh-config`.
config_main = config_group


@main.command()
@click.option("--admin", "admin_specs", multiple=True, metavar="NAME[:PASSWORD]",
              help="Hub admin (repeatable). Without a password one is generated and printed once.")
@click.option("--user-env", type=click.Choice(["conda", "venv"]), default=None,
              help="How to build the shared user environment (default: keep, or conda).")
@click.option("--wheelhouse", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Install the user environment's packages from this directory of wheels, never from the "
                   "package index (kept as the `wheelhouse` setting).")
@click.option("--previous-hub-env", type=click.Path(path_type=Path), default=None, hidden=True,
              help="The hub's environment before the installer upgraded it: where a failed upgrade goes back to.")
@remote.host_options
@root_only
def install(admin_specs, user_env, wheelhouse, previous_hub_env, host):
    """Install or upgrade Hubstead on this machine, or on another over SSH (safe to re-run)."""
    if host:
        if wheelhouse:
            fail("--wheelhouse works here only: a wheelhouse for another host is one on it (make it there)")
        sys.exit(remote.install(host, admin_specs, user_env))
    from hubstead.machine import upgrade
    from hubstead.machine.install import install as run_install
    from hubstead.machine.install import parse_admin

    handed_over = json.loads(os.environ.pop(ADMIN_PASSWORDS_ENV, "{}"))
    try:
        admins = [parse_admin(spec) for spec in admin_specs]
        for admin in admins:
            if admin.password is None and admin.name in handed_over:
                admin.password = handed_over[admin.name]
                check_strength(admin.password)
    except (usernames.InvalidUsername, WeakPassword) as e:
        fail(f"--admin: {e}")
    progress = Progress(log=paths.INSTALL_PROGRESS_LOG)
    try:
        summary = run_install(admins, user_env, on_task=progress, previous_hub_env=previous_hub_env,
                              wheelhouse=wheelhouse.resolve() if wheelhouse else None)
    except upgrade.UpgradeFailed as e:
        progress.finish()
        click.echo(f"hubstead: error: {e}", err=True)
        sys.exit(upgrade.ROLLED_BACK)
    finally:
        progress.finish()
    click.echo(f"Hubstead {__version__} is running ({summary['changed']} changes, "
               + ("upgraded, " if summary["upgraded"] else "") + f"{summary['seconds']:.0f} s).")
    for url in summary["urls"]:
        click.echo(f"  URL:   {url}")
    for name in summary["admins"]:
        password = summary["generated"].get(name)
        shown = f"password: {password}   (shown once: write it down)" if password else "password: as set"
        click.echo(f"  admin: {name}   {shown}")


@main.group()
def users():
    """Hub users and their Unix accounts."""


@users.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate", "generate_password", is_flag=True, help="Generate a password and print it once.")
@click.option("--admin", is_flag=True,
              help="Make the user a teacher (users.admin; not root): restarts the hub, servers keep running.")
@root_only
def users_add(name, password_stdin, generate_password, admin):
    """Add a hub user with a password; the Unix account is created at once. A generated
    password must be changed at the first login; one from standard input is kept."""
    if password_stdin and generate_password:
        fail("use --password-stdin or --generate, not both")
    name = usernames.validate(name)  # before reading a password for it
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif generate_password:
        password = generate()
    added, password_set = enrol.add(HubAPI(), PasswordStore(), name, password, final=password_stdin)
    if admin:
        _make_teacher(name)
    click.echo(f"{'added' if added else 'already there'}: {name} (Unix account {usernames.unix_name(name)})"
               + ("; a teacher" if admin else "")
               + ("; password unchanged (see hubstead users reset-password)"
                  if password is not None and not password_set else ""))
    if generate_password and password_set:
        click.echo(f"password: {password}")
        click.echo(f"{name} chooses a new one at the first login", err=True)


def _make_teacher(name: str) -> None:
    """Teachers hold the hub's teacher role, which it loads from users.admin at start."""
    from hubstead.machine import reload

    with config.edit() as user_config:
        listed = user_config.setdefault("users", {}).setdefault("admin", [])
        if name in listed:
            return
        listed.append(name)
    audit.record("config-changed", "users.admin")
    reload.hub(config.load())


@users.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--group", default=None, help="Hub group for rows that name none.")
@root_only
def users_import(csv_file, group):
    """Add the users of a CSV (username[,password][,group]); prints the initial
    passwords once, as CSV on standard output; the report goes to standard error."""
    from hubstead.classroom import roster

    outcomes, issued = enrol.enrol(HubAPI(), PasswordStore(), roster.parse(csv_file.read()), group)
    for o in outcomes:
        click.echo(f"line {o.line}: {o.name}: {o.result}: {o.detail}", err=True)
    if issued:
        click.echo(roster.passwords_csv(issued), nl=False)


@users.command("reset-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--keep", "keep", is_flag=True, help="Don't make the user choose a new one at the next login.")
@root_only
def users_reset_password(name, password_stdin, keep):
    """Give NAME a new password (generated and printed once, unless --password-stdin)."""
    name = usernames.validate(name)
    api = HubAPI()
    if name not in {u["name"] for u in api.users()}:
        fail(f"no hub user {name!r}")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate()
    enrol.reset_password(api, PasswordStore(), name, password, must_change=not keep)
    if not password_stdin:
        click.echo(f"password: {password}")
    click.echo(f"{name} {'keeps it' if keep else 'chooses a new one at the next login'}", err=True)


@users.command("unlock")
@click.argument("name")
@root_only
def users_unlock(name):
    """Let NAME log in again after too many wrong passwords."""
    if not enrol.unlock(PasswordStore(), usernames.normalize(name)):
        fail(f"{name!r} has no Hubstead password")
    click.echo(f"unlocked: {name}")


@users.command("remove")
@click.argument("name")
@root_only
def users_remove(name):
    """Remove NAME from the hub: the server stops and users.removal is applied."""
    name = usernames.validate(name)
    try:
        enrol.remove(HubAPI(), name)
    except HubAPIError as e:
        if e.status != 404:
            raise
        fail(f"no hub user {name!r}")
    click.echo(f"removed: {name} (Unix account {usernames.unix_name(name)}: "
               f"{'locked' if unixusers.exists(usernames.unix_name(name)) else 'deleted'})")


def _server_state(server: dict | None) -> str:
    if not server or server.get("stopped"):
        return "stopped"
    if server.get("ready"):
        return "ready"
    return server.get("pending") or "starting"


@users.command("list")
@root_only
def users_list():
    """Show hub users, their Unix accounts and servers."""
    hub_users = HubAPI().users()
    with_password = set(PasswordStore().names())
    users_config = config.load()["users"]
    rows = [("NAME", "ROLE", "UNIX ACCOUNT", "PASSWORD", "SERVER")]
    for user in sorted(hub_users, key=lambda u: u["name"]):
        unix_name = usernames.unix_name(user["name"])
        server = user.get("servers", {}).get("")
        rows.append((
            user["name"],
            "sysadmin" if user["name"] in users_config["sudoers"] else
            ("teacher" if user["name"] in users_config["admin"] else "student"),
            unix_name if unixusers.exists(unix_name) else "missing",
            "set" if user["name"] in with_password else "none",
            _server_state(server),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@main.group()
def cert():
    """HTTPS certificates (https.mode: off, selfsigned, manual, letsencrypt)."""


@cert.command("status")
@root_only
def cert_status():
    """The mode, the served certificate (subject, issuer, names, expiry) and its renewal."""
    from hubstead import config
    from hubstead.machine.tls import status

    info = status.status(config.load())
    for key, value in info.items():
        click.echo(f"{key + ':':10} {value}")


@cert.command("renew")
@click.option("--force", is_flag=True, help="Renew now even if the certificate is not due.")
@root_only
def cert_renew(force):
    """Renew the Let's Encrypt certificate (the timer does this on its own)."""
    from hubstead.machine.tls import letsencrypt

    click.echo(letsencrypt.renew(force=force).strip() or "renewal done")


@cert.command("deploy", hidden=True)
@root_only
def cert_deploy():
    """certbot's deploy hook: serve the new certificate (no restart)."""
    from hubstead.machine.tls import letsencrypt

    letsencrypt.deploy(letsencrypt.renewed_lineage_from_env())


@main.command()
@click.option("--from", "spec", default=None, metavar="SPEC",
              help="Where the new Hubstead comes from: a checkout, a wheel or a requirement "
                   "(default: the package index).")
@click.option("--wheelhouse", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A new directory of wheels to upgrade from (default: the `wheelhouse` setting, if any).")
@remote.host_options
@root_only
def upgrade(spec, wheelhouse, host):
    """Upgrade Hubstead and both environments to the newest versions their pins allow,
    with a way back if the new version does not come up (what re-running the installer does).
    With --host, that machine's Hubstead becomes this one."""
    if host:
        if spec or wheelhouse:
            fail("--from and --wheelhouse work here only: with --host the host gets the Hubstead you run")
        sys.exit(remote.upgrade(host))
    wheelhouse = wheelhouse or config.load()["wheelhouse"]
    # The installer itself: it sets the hub's environment aside before putting the new
    # Hubstead in, and puts it back if the new one cannot even start.
    argv = ["/usr/bin/python3", str(paths.BOOTSTRAP), *(["--from", spec] if spec else []),
            *(["--wheelhouse", str(wheelhouse)] if wheelhouse else [])]
    os.execv(argv[0], argv)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("packages", nargs=-1)
def wheelhouse(directory, packages):
    """Put the wheels of the user environment's packages (and PACKAGES) into DIRECTORY, for
    a machine without the package index (`bootstrap.py --make-wheelhouse` runs this)."""
    from hubstead.machine import converge

    requirements = [*converge.user_env_base_packages(), *config.load()["user_environment"]["pip_packages"],
                    *packages, "pip", "setuptools", "wheel"]  # the last three: what `uv venv --seed` puts in
    directory.mkdir(parents=True, exist_ok=True)
    # Wheels only, as the user environment takes them: root builds nothing a teacher named.
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                             "--use-pep517", converge.BINARY_ONLY["pip"], "-w", str(directory), *requirements],
                            check=False)
    if result.returncode != 0:
        fail(f"pip could not collect the wheels for {directory} (its error is above)")
    click.echo(f"{len(list(directory.glob('*.whl')))} wheels in {directory}")


@main.command()
@root_only
def rollback():
    """Put back the Hubstead from before an upgrade that did not finish (a reboot or a
    power cut in the middle); the machine does it by itself at boot."""
    from hubstead.machine import upgrade

    if upgrade.roll_back_interrupted():
        click.echo("The upgrade had not finished: the previous Hubstead, its settings and state are back.")
    else:
        click.echo("No unfinished upgrade: nothing to roll back.")


@main.command()
@click.option("--purge", is_flag=True,
              help="Also remove the students' accounts and homes, the course folder and the archives.")
@click.option("--yes", is_flag=True, help="Don't ask before removing.")
@root_only
def uninstall(purge, yes):
    """Remove Hubstead from this machine; students' accounts and homes stay unless --purge."""
    from hubstead.machine import uninstall as removal

    effective = config.load()  # before anything goes: a broken config stops here
    kept = removal.kept_without_purge()
    click.echo("Removes Hubstead: the hub, the proxy, the user servers, their units, both environments, "
               "the settings and state, Hubstead's groups, sudo and sshd rules.")
    for item in kept:
        click.echo(f"  {'removed too (--purge)' if purge else 'kept'}: {item}")
    if not yes:
        click.confirm("Remove Hubstead now?", abort=True)
    progress = Progress()
    summary = removal.uninstall(effective, purge, on_task=progress)
    progress.finish()
    click.echo(f"Hubstead is removed ({summary.changed} changes"
               + (f", the accounts of {len(summary.removed_accounts)} hub users deleted" if purge else "") + ").")
    if summary.kept:
        click.echo("Kept: " + "; ".join(summary.kept) + ". `hubstead uninstall --purge` would have removed them; "
                   "a new install finds the accounts and homes again.")


if __name__ == "__main__":  # the boot-time rollback runs it from the previous environment's python
    main()
