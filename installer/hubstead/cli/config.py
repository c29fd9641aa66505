"""`hubstead config` (also `hubstead-config`): show, change and apply settings.

Every change is validated as a whole config before config.yaml is written (atomically,
under a lock); nothing on the machine changes until `reload` or `apply`.
"""

import sys
from collections.abc import Mapping
from typing import Any

import click
import yaml

from hubstead import config
from hubstead.cli import remote
from hubstead.cli.util import Group, Progress, fail, root_only
from hubstead.config import keys, schema
from hubstead.config.model import Settings
from hubstead.core import audit, state
from hubstead.machine import converge, provision, reload
from hubstead.machine.converge import ConvergeError


def _dump(value) -> str:
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).rstrip()
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").rstrip()


def _parse(key: str, text: str, user_config: dict):
    """A command-line value typed for its key (authenticator traits by their own type)."""
    if schema.lookup(key) is schema.AUTH_TRAIT:
        from hubstead.config.authenticators import parse_trait_value

        return parse_trait_value(key, text, config.merge(config.DEFAULTS, user_config)["auth"]["type"])
    return keys.parse_value(text)


def _next_step(changed: list[str]) -> str:
    roles = schema.roles_for(changed)
    if roles != ["hub"]:
        return ("to apply it: sudo hubstead config apply "
                f"(re-runs: {', '.join(r for r in roles if r != 'hub')}, then restarts the hub)")
    return "to apply it: sudo hubstead config reload hub (running user servers keep running)"


def _value(tree: Mapping[str, Any], key: str):
    """The (redacted) value of ``key`` in ``tree``, None where it is not set."""
    try:
        return keys.get(keys.redact(tree), key)
    except keys.MissingKey:
        return None


def _change(operation, dry_run: bool):
    """Apply ``operation(user_config) -> new user_config``; validated, locked, atomic."""
    if dry_run:
        user_config = config.load_user_config()
        before, after = config.merge(config.DEFAULTS, user_config), config.validate(operation(user_config))
    else:
        with config.edit() as user_config:
            before = config.merge(config.DEFAULTS, user_config)
            updated = operation(user_config)
            after = config.validate(updated)
            user_config.clear()
            user_config.update(updated)
    changed = converge.changed_keys(before, after)
    if dry_run:
        click.echo("dry run: nothing was written")
    if not changed:
        click.echo("nothing changed" if not dry_run else "nothing would change")
        return
    for key in changed:
        click.echo(f"{key}: {_dump(_value(before, key))} → {_dump(_value(after, key))}")
    if dry_run:
        _show_machine_changes(after, changed)
    else:
        # Key names only: a secret's value never reaches the journal.
        audit.record("config-changed", ", ".join(changed))
        click.echo(_next_step(changed))


def _show_machine_changes(after: Settings, changed: list[str]) -> None:
    roles = [r for r in schema.roles_for(changed) if r != "hub"]
    if roles:
        try:
            result = converge.run(converge.role_variables(after), roles=roles, check=True)
        except ConvergeError as e:
            fail(f"checking what would change: {e}")
        click.echo(f"`hubstead config apply` would change {result.changed} thing(s) on the machine:")
        for task in result.changed_tasks:
            click.echo(f"  {task}")
        for diff in result.diffs:
            click.echo(diff.rstrip())
    click.echo("then the hub would restart (running user servers keep running)")


@click.group("config", cls=Group)
def config_group():
    """Show and change Hubstead's settings (/etc/hubstead/config.yaml)."""


@config_group.command("show")
@click.argument("key", required=False)
@click.option("--diff", "only_changed", is_flag=True, help="Only what differs from the defaults.")
@root_only
def show(key, only_changed):
    """The effective settings (defaults merged; secrets redacted)."""
    effective = config.validate(config.load_user_config())
    if only_changed:
        defaults = config.flat(config.DEFAULTS)
        tree = {}
        for k, v in config.flat(effective).items():
            if defaults.get(k, object()) != v:
                tree = keys.set_(tree, k, v)
    else:
        tree = effective
    tree = keys.redact(tree)
    if key:
        try:
            tree = keys.get(tree, key)
        except keys.MissingKey:
            schema.setting(key)  # ConfigError for an unknown key; a known one is just not set
            tree = None
    click.echo(_dump(tree) if tree != {} else "{}")


dry_run_option = click.option("--dry-run", is_flag=True,
                              help="Show what would change (config and machine); write nothing.")


@config_group.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--value-stdin", is_flag=True,
              help="Read VALUE from standard input (for secrets: nothing on the command line).")
@dry_run_option
@root_only
def set_(key, value, value_stdin, dry_run):
    """Set KEY to VALUE (2, 1.5, true, null, 2G, [a, b] are typed)."""
    if (value is None) == (not value_stdin):
        fail(f"{key}: give a VALUE or --value-stdin (one of them)")
    if value_stdin:
        value = sys.stdin.readline().rstrip("\n")
    elif keys.is_secret(key):
        # The command line is in every process list (and in sudo's log) while this runs.
        click.echo(f"hubstead: warning: {key} is a secret, and command lines are visible to other "
                   f"users of this machine; next time: sudo hubstead config set {key} --value-stdin", err=True)
    _change(lambda c: keys.set_(c, key, _parse(key, value, c)), dry_run)


@config_group.command("unset")
@click.argument("key")
@dry_run_option
@root_only
def unset(key, dry_run):
    """Return KEY to its default."""
    _change(lambda c: keys.unset(c, key), dry_run)


@config_group.command("add-item")
@click.argument("key")
@click.argument("value")
@dry_run_option
@root_only
def add_item(key, value, dry_run):
    """Append VALUE to the list KEY."""
    _change(lambda c: keys.add_item(c, key, keys.parse_value(value)), dry_run)


@config_group.command("remove-item")
@click.argument("key")
@click.argument("value")
@dry_run_option
@root_only
def remove_item(key, value, dry_run):
    """Remove VALUE from the list KEY."""
    _change(lambda c: keys.remove_item(c, key, keys.parse_value(value)), dry_run)


@config_group.command("reload")
@click.argument("what", type=click.Choice(["hub", "proxy", "all"]), default="hub")
@root_only
def reload_(what):
    """Restart the hub and/or the proxy with the current settings (user servers keep running)."""
    effective = config.load()
    if what in ("proxy", "all"):
        click.echo(f"proxy reloaded in {reload.proxy(effective):.1f} s (routes kept)")
    if what in ("hub", "all"):
        click.echo(f"hub reloaded in {reload.hub(effective):.1f} s (user servers kept running)")


@config_group.command("apply")
@click.option("--all-roles", is_flag=True, help="Re-run every role, not only those the changes need.")
@remote.host_options
@root_only
def apply(all_roles, host):
    """Change the machine to match the settings (ports, user environment, TLS)."""
    if host:
        args = ["config", "apply", *(["--all-roles"] if all_roles else [])]
        sys.exit(remote.hubstead_there(host, args))
    effective = config.load()
    applied = state.load_applied()
    roles = list(schema.ROLES) if all_roles or applied is None else \
        schema.roles_for(converge.changed_keys(applied, effective))
    progress = Progress(roles)
    try:
        result, waited = provision.run(effective, roles, on_task=progress)
    finally:
        progress.finish()
    click.echo(f"applied: {result.changed} change(s) by roles {', '.join(roles)}; "
               f"the hub answered {waited:.1f} s later")
