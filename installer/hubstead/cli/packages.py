"""`hubstead packages`: packages for every student (pip or conda into the user
environment, apt onto the machine), recorded in config.yaml and re-applied on upgrade."""

import click

from hubstead import config
from hubstead.cli.util import Group, root_only
from hubstead.config import plugins
from hubstead.machine import packages


def changes_packages(command):
    """A command given ``kind`` (--pip, the default, --conda or --apt), ``actor`` (--by,
    hidden: the teacher the teacher's page acts for, checked more strictly and named in the
    audit trail) and NAMES."""
    command = root_only(command)
    command = click.argument("names", nargs=-1, required=True)(command)
    command = click.option("--by", "actor", default=None, hidden=True, metavar="HUB_USER",
                           help="The teacher this is for: index packages by name, as wheels only.")(command)
    command = click.option("--apt", "kind", flag_value="apt",
                           help="Debian packages on the machine (pandoc, graphviz, texlive-xetex).")(command)
    command = click.option("--conda", "kind", flag_value="conda",
                           help="conda-forge packages in the user environment (conda manager).")(command)
    return click.option("--pip", "kind", flag_value="pip", default=True,
                        help="pip packages in the user environment (the default).")(command)


@click.group("packages", cls=Group)
def packages_group():
    """Packages every student's kernel can use."""


@packages_group.command("add")
@changes_packages
def add(kind, actor, names):
    """Install NAMES for everyone (checked first: an unknown one changes nothing)."""
    added = packages.add(kind, list(names), on_task=lambda role, task: click.echo(f"  {role}: {task}"), actor=actor)
    if added:
        click.echo(f"added {', '.join(added)} ({packages.KEYS[kind]}); a new kernel imports them, "
                   "running ones after a restart")
    else:
        click.echo(f"nothing to add: {', '.join(names)} already in {packages.KEYS[kind]}")


@packages_group.command("remove")
@changes_packages
def remove(kind, actor, names):
    """Uninstall NAMES that Hubstead added."""
    for line in packages.remove(kind, list(names), actor):
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
