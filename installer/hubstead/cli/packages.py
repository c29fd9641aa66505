"""`hubstead packages`: packages for every student (pip or conda into the user
environment, apt onto the machine), recorded in config.yaml and re-applied on upgrade."""

import click

from hubstead import config
from hubstead.cli.util import Group, root_only
from hubstead.config import plugins
from hubstead.machine import packages


def kind_option(command):
    for kind in reversed(packages.KINDS):
        command = click.option(f"--{kind}", "kind", flag_value=kind, default=kind == "pip",
                               help={"pip": "pip packages in the user environment (the default)",
                                     "conda": "conda-forge packages in the user environment (conda manager)",
                                     "apt": "Debian packages on the machine (pandoc, graphviz, texlive-xetex)"}[kind]
                               )(command)
    return command


@click.group("packages", cls=Group)
def packages_group():
    """Packages every student's kernel can use."""


@packages_group.command("add")
@kind_option
@click.argument("names", nargs=-1, required=True)
@root_only
def add(kind, names):
    """Install NAMES for everyone (checked first: an unknown one changes nothing)."""
    added = packages.add(kind, list(names), on_task=lambda role, task: click.echo(f"  {role}: {task}"))
    if added:
        click.echo(f"added {', '.join(added)} ({packages.KEYS[kind]}); a new kernel imports them, "
                   "running ones after a restart")
    else:
        click.echo(f"nothing to add: {', '.join(names)} already in {packages.KEYS[kind]}")


@packages_group.command("remove")
@kind_option
@click.argument("names", nargs=-1, required=True)
@root_only
def remove(kind, names):
    """Uninstall NAMES that Hubstead added."""
    for line in packages.remove(kind, list(names)):
        click.echo(line)


@packages_group.command("list")
@root_only
def list_():
    """What Hubstead installs for everyone, and the plugins that add to it."""
    effective = config.load()
    for kind, specs in packages.listed(effective).items():
        for spec, source in specs:
            click.echo(f"{kind}\t{spec}" + ("\t(plugin)" if source == "plugin" else ""))
    for plugin in plugins.loaded(effective):
        click.echo(f"plugin\t{plugin}")
