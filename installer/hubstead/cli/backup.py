"""`hubstead backup` and `hubstead restore`: the class in one file, and onto another machine."""

from pathlib import Path

import click

from hubstead.cli import remote
from hubstead.cli.util import root_only
from hubstead.machine import backup as backups


def _holds(manifest: dict) -> str:
    return (f"{', '.join(manifest['includes'])}; made by Hubstead {manifest['hubstead']} "
            f"on {manifest['hostname']} at {manifest['created']}")


@click.command("backup")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--homes", is_flag=True, help="Also the users' homes and the course folder.")
@remote.host_options
@root_only
def backup_command(file, homes, host):
    """Write settings, secrets, the hub database, passwords and certificates (with --homes
    also the homes and the course folder) to FILE, readable by root only (with --host: that
    machine's, to FILE here, readable by you only)."""
    if host:
        manifest = remote.backup(host, file, homes)
    else:
        manifest = backups.backup(file, homes=homes)
    click.echo(f"wrote {file} ({Path(file).stat().st_size / 1e6:.1f} MB): {_holds(manifest)}")
    click.echo(f"  {len(manifest['users'])} hub users: "
               + (", ".join(user["name"] for user in manifest["users"]) or "none"))


@click.command("restore")
@click.argument("file", type=click.Path(path_type=Path))
@root_only
def restore_command(file):
    """Put back what `hubstead backup` wrote to FILE (checked whole first), make the Unix
    accounts, and bring this machine to the restored settings."""
    restored = backups.restore(file)
    click.echo(f"restored {file}: {_holds(restored)}")
    for user in restored["users"]:
        click.echo(f"  {user['name']}: Unix account {restored['new_unix'][user['unix_name']]}")
    for entry in restored["set_aside"]:
        click.echo(f"  {entry.path} ({entry.kind} here) set aside as {entry.now} "
                   "(the backup has another kind of entry there)")
    click.echo(f"the hub answered {restored['waited']:.1f} s later")
