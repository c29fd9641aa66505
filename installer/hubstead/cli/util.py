"""What every command shares: errors, the root check, the progress display."""

import functools
import os
import sys
from pathlib import Path

import click

from hubstead.config.schema import ROLES
from hubstead.core.errors import HubsteadError


def fail(message: str):
    click.echo(f"hubstead: error: {message}", err=True)
    sys.exit(1)


class Group(click.Group):
    """A command group that prints an expected error (HubsteadError) as one line and
    exits 1; any other exception is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HubsteadError as e:
            fail(str(e))


def root_only(command):
    """Refuse to run ``command`` as anyone but root; with --host it runs as root there."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if os.geteuid() != 0 and not kwargs.get("host"):
            fail("this command must run as root; try: sudo hubstead ...")
        return command(*args, **kwargs)

    return wrapper


class Progress:
    """One line per task when piped; a bar over the roles on a terminal. With ``log``,
    each step is also appended there while the file exists (the installer's progress page)."""

    def __init__(self, roles=ROLES, log: Path | None = None):
        self.tty = sys.stdout.isatty()
        self.total = len(roles)
        self.seen_roles: list[str] = []
        self.log = log

    def __call__(self, role, task):
        if role and role not in self.seen_roles:
            self.seen_roles.append(role)
        step = f"[{len(self.seen_roles)}/{self.total}] {role or 'hubstead'}: {task}"
        if self.log is not None:
            try:
                with self.log.open("a") as log:  # never creates the page's directory
                    log.write(step + "\n")
            except FileNotFoundError:  # the page has ended
                self.log = None
        if self.tty:
            done = int(20 * len(self.seen_roles) / self.total)
            click.echo(f"\r\033[K[{'#' * done}{'.' * (20 - done)}] {step}"[:200], nl=False)
        else:
            click.echo(step)

    def finish(self):
        if self.tty:
            click.echo()
