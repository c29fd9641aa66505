"""Day to day: `hubstead status`, `hubstead logs`, `hubstead doctor`, `hubstead audit`."""

import json
import os
import sys

import click

from hubstead import config
from hubstead.cli.util import root_only
from hubstead.core import audit as audit_trail
from hubstead.core import paths, unixusers, usernames
from hubstead.core.errors import HubsteadError
from hubstead.hub.hubapi import HubAPI, HubAPIError

# What `hubstead logs` shows besides a user's server: the journal's matches for each.
LOG_SOURCES = {
    "hub": ["-u", paths.HUB_UNIT],
    "proxy": ["-u", paths.PROXY_UNIT],
    "teacher": ["-t", paths.TEACHER_LOG],  # its lines inside the hub's unit
}
ALLOWED_LOGS = f"{', '.join(LOG_SOURCES)} or a hub user's name"


class UnknownLog(HubsteadError, ValueError):
    """`hubstead logs` was given a name that is neither a log nor a user."""


def journal_command(name: str, follow: bool, lines: int) -> list[str]:
    """The journalctl command line showing ``name``'s log."""
    if name in LOG_SOURCES:
        matches = LOG_SOURCES[name]
    else:
        try:
            hub_name = usernames.validate(name)
        except usernames.InvalidUsername:
            raise UnknownLog(f"no log {name!r}: use {ALLOWED_LOGS}") from None
        if not unixusers.exists(usernames.unix_name(hub_name)):
            raise UnknownLog(f"no user {hub_name!r} on this machine: use {ALLOWED_LOGS}")
        matches = ["-u", usernames.server_unit(hub_name)]
    return ["journalctl", *matches, "-n", str(lines), *(["-f"] if follow else [])]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Everything, as JSON (for scripts).")
@root_only
def status(as_json):
    """The hub, the proxy, the certificate, users online, servers running and their memory."""
    from hubstead.machine import status as machine_status

    try:
        hub_users = HubAPI().users()
    except HubAPIError:
        hub_users = None  # shown as such: status is for when things are wrong, too
    info = machine_status.gather(config.load(), hub_users)
    click.echo(json.dumps(info, indent=2) if as_json else machine_status.format_status(info))


@click.command()
@click.argument("name", default="hub", metavar="[hub|proxy|teacher|USER]")
@click.option("-f", "--follow", is_flag=True, help="Keep showing new lines as they come.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many of the last lines to show.")
def logs(name, follow, lines):
    """The journal of the hub, the proxy, the teacher's page, or a user's server."""
    command = journal_command(name, follow, lines)
    sys.stdout.flush()
    os.execvp(command[0], command)


@click.command()
@root_only
def doctor():
    """Check the machine's hub; each problem with its fix. Exits 1 when a check fails."""
    from hubstead.machine import doctor as machine_doctor

    results = machine_doctor.run(config.load())
    click.echo(machine_doctor.format_results(results))
    sys.exit(0 if machine_doctor.passed(results) else 1)


@click.command()
@click.option("--event", type=click.Choice(sorted(audit_trail.EVENTS)), help="Only this kind of action.")
@click.option("--user", "actor", metavar="NAME", help="Only actions by NAME (a teacher, a sudo user, root).")
@click.option("--target", metavar="NAME", help="Only actions on NAME (a hub user, a setting).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]),
              help="Only from this local time on (YYYY-MM-DD [HH:MM[:SS]]).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per action (for scripts).")
@root_only
def audit(event, actor, target, since, as_json):
    """Who did what to whom: the audit trail, oldest first. Only entries root's processes
    wrote (the hub, the teacher's page, hubstead commands): a user's forged ones are not shown."""
    for entry in audit_trail.trail(event, actor, target, since.astimezone() if since else None):
        shown = audit_trail.summary(entry)
        if as_json:
            click.echo(json.dumps(shown))
            continue
        values = list(shown.values())
        extra = " ".join(f"{k}={v}" for k, v in list(shown.items())[len(audit_trail.SHOWN) + 1:])
        click.echo("  ".join(values[:len(audit_trail.SHOWN) + 1] + ([extra] if extra else [])))
