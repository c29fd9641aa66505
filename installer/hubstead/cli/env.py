"""`hubstead env`: named extra environments, each a kernel in every student's launcher."""

from pathlib import Path

import click

from hubstead import config
from hubstead.cli.util import Group, Progress, fail, root_only
from hubstead.core import paths
from hubstead.machine import environments


@click.group("env", cls=Group)
def env_group():
    """Extra environments (venvs in /opt/hubstead/envs), one kernel each for every student."""


def _progress() -> Progress:
    return Progress(environments.roles())


@env_group.command("create")
@click.argument("name")
@click.option("--python", "python", metavar="3.X", default=None,
              help="One of this machine's Python versions (default: the system's python3).")
@click.option("-r", "--requirements", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A requirements.txt: the environment's pip packages.")
@click.option("-f", "--file", "environment_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A conda environment.yml: its python=3.X and its pip: packages.")
@root_only
def create(name, python, requirements, environment_file):
    """Make environment NAME and register its kernel (recorded in config.yaml)."""
    if requirements and environment_file:
        fail("give -r or -f, not both")
    environments.validate_name(name)
    packages: list[str] = []
    if requirements:
        packages = environments.read_requirements(requirements)
    elif environment_file:
        from_file, packages = environments.read_environment_file(environment_file)
        python = python or from_file
    progress = _progress()
    try:
        result = environments.create(name, python, packages, on_task=progress)
    finally:
        progress.finish()
    click.echo(f"environment {name}: {paths.ENVS_DIR / name} ({result.changed} changes); students see the kernel "
               f"\"Python ({name})\" in a new launcher")


@env_group.command("list")
@root_only
def list_():
    """The extra environments, their Python and packages."""
    for name, extra in environments.listing(config.load()).items():
        built = (paths.ENVS_DIR / name / "bin" / "python").exists()
        python = f"python {extra.get('python') or '3 (system)'}"
        click.echo("\t".join([name, python, " ".join(extra.get("packages", [])),
                              "built" if built else "not built (run: hubstead config apply)"]))


@env_group.command("remove")
@click.argument("name")
@root_only
def remove(name):
    """Remove environment NAME and its kernel."""
    progress = _progress()
    try:
        environments.remove(name, on_task=progress)
    finally:
        progress.finish()
    click.echo(f"environment {name} removed")
