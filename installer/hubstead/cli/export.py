"""`hubstead export z2jh`: this hub as Zero to JupyterHub values, for a class that outgrew
one machine."""

from pathlib import Path

import click

from hubstead import config
from hubstead.cli.util import root_only
from hubstead.core import paths


@click.group("export")
def export_group():
    """Write this hub's settings for another way of running JupyterHub."""


@export_group.command("z2jh")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("values.yaml"), show_default=True,
              help="The values file; the image recipe goes in a directory beside it.")
@click.option("--force", is_flag=True, help="Replace files that are there.")
@click.option("--with-secrets", is_flag=True,
              help="Put the secrets in clear (file mode 0600) instead of placeholders.")
@root_only
def z2jh_command(output, force, with_secrets):
    """Helm values for the jupyterhub chart (Zero to JupyterHub) reproducing this hub,
    checked against the chart's schema; says how each setting carried over and what to do."""
    # Here, not at the top: it loads JupyterHub and the chart's schema, which no other
    # command needs (and a hub that cannot start must not take the CLI down with it).
    from hubstead.export import z2jh

    effective = config.load()
    result = z2jh.export(effective, z2jh.read_snippets(), with_secrets=with_secrets, values_name=output.name)
    written = z2jh.write(result, output, paths.CONFIG_FILE, force=force, with_secrets=with_secrets)
    click.echo("wrote " + ", ".join(map(str, written)) + " (checked against the chart's schema)")
    click.echo("\nEach setting:")
    width = max(len(row.key) for row in result.rows)
    for row in result.rows:
        click.echo(f"  {row.status:<11}  {row.key:<{width}}  {row.where}")
    click.echo("\nTo move:")
    for number, step in enumerate(result.steps, 1):
        click.echo(f"  {number}. {step}")
