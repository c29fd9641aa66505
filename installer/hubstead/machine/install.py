"""`hubstead install`: the installer's step list, from config.yaml to a hub that answers.

Everything is validated before the machine is touched; re-running is safe and is
how Hubstead upgrades (a converge with nothing to do changes nothing).
"""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hubstead import config
from hubstead.config.model import Settings
from hubstead.core import credentials, paths, usernames
from hubstead.core.passwords import PasswordStore, check_strength, generate
from hubstead.core.systemd import journal_logger
from hubstead.machine import converge, provision, upgrade
from hubstead.machine.health import hub_url, public_hosts

log = journal_logger("hubstead-install")


@dataclass
class Admin:
    name: str
    password: str | None = None


def parse_admin(spec: str) -> Admin:
    """``NAME[:PASSWORD]`` -> Admin, validated (raises ValueError with what is allowed)."""
    name, sep, password = spec.partition(":")
    admin = Admin(usernames.validate(name), password if sep else None)
    if admin.password is not None:
        check_strength(admin.password)
    return admin


def prepare(admins: list[Admin], user_env: str | None,
            wheelhouse: Path | None = None) -> tuple[Settings, dict[str, str]]:
    """Write config.yaml, secrets and admin passwords. Returns (effective config,
    generated passwords to show once)."""
    paths.CONFIG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with config.edit() as user_config:
        users = user_config.setdefault("users", {})
        listed = users.setdefault("admin", [])
        listed.extend(a.name for a in admins if a.name not in listed)
        if user_env:
            user_config.setdefault("user_environment", {})["manager"] = user_env
        if wheelhouse:  # kept: upgrades and `config apply` install from it too
            user_config["wheelhouse"] = str(wheelhouse)
    effective = config.load()
    credentials.ensure()

    # The enrolment policy (enrol.py): the admin's own typed password is kept, a
    # generated one is changed at the first login.
    store, generated = PasswordStore(), {}
    for admin in admins:
        if admin.password is not None:
            if not store.verify(admin.name, admin.password):
                store.set(admin.name, admin.password)
        elif not store.has(admin.name):
            generated[admin.name] = generate()
            store.set(admin.name, generated[admin.name], must_change=True)
    return effective, generated


def install(admins: list[Admin], user_env: str | None, on_task=None, previous_hub_env: Path | None = None,
            wheelhouse: Path | None = None) -> dict:
    """Converge the machine. Run by the installer on a machine set up before (it passes
    ``previous_hub_env``, the hub's environment as it was before it put this Hubstead in),
    it is an upgrade with a way back (hubstead.machine.upgrade). Returns a summary for
    the CLI to print."""
    started = time.monotonic()
    effective, generated = prepare(admins, user_env, wheelhouse)
    log.info("converging roles %s", ", ".join(converge.ROLES))
    # A hub that has run (it has a database) is upgraded with a way back; a machine whose
    # first install never finished is simply converged.
    if previous_hub_env is not None and paths.HUB_DB.exists():
        outcome = upgrade.run(effective, previous_hub_env, on_task=on_task)
        changed, upgraded = outcome.changed, outcome.upgraded
    else:
        if previous_hub_env is not None:
            shutil.rmtree(previous_hub_env, ignore_errors=True)  # nothing to go back to
        changed, upgraded = provision.run(effective, on_task=on_task)[0].changed, False
    log.info("converge done: %d changed", changed)
    return {
        "upgraded": upgraded,
        "urls": [hub_url(effective, host) for host in public_hosts()],
        "admins": effective["users"]["admin"],
        "generated": generated,
        "changed": changed,
        "seconds": time.monotonic() - started,
    }
