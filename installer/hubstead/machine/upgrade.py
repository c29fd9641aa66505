"""`hubstead upgrade`: the newest versions the pins allow, with a way back.

The installer (bin/bootstrap.py) copies the hub's environment aside before it installs
the new Hubstead into it, and runs this from the new one. Here: a backup (`hubstead
restore` takes it, the last few are kept), a copy of the config, the
state (the hub's database through SQLite's backup) and the user environment; then the
roles, with the user environment upgraded and the hub restarted on the new software (it
migrates its database as it starts); then the wait until the hub answers through the
proxy. When any of it fails, everything goes back — both environments, config, state,
database — and the previous Hubstead converges the machine as it was. User servers keep
running through both.
"""

import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hubstead import __version__
from hubstead.config.model import Settings
from hubstead.core import paths, state
from hubstead.core.errors import HubsteadError
from hubstead.machine import backup, converge, provision

log = logging.getLogger("hubstead-upgrade")

# Exit code of `hubstead upgrade` when it failed and put everything back: the installer
# then has nothing left to undo.
ROLLED_BACK = 3
KEEP_BACKUPS = 3  # of the automatic ones made before upgrades
# The state an upgrade may change, which a failed one must give back as it was (the
# hub's database is copied apart: it is being written to).
STATE = (paths.PASSWORD_STORE, paths.COOKIE_SECRET, paths.TRAEFIK_API_SECRET, paths.CLI_API_TOKEN,
         paths.APPLIED_CONFIG, paths.HUB_CONFIG_DIGEST, paths.TLS_DIR, paths.LETSENCRYPT_DIR)


class UpgradeFailed(HubsteadError, RuntimeError):
    """The upgrade failed and was rolled back; the message says why."""


@dataclass
class Outcome:
    changed: int  # tasks the roles changed
    upgraded: bool  # False: nothing newer, the machine was only converged
    waited: float  # seconds until the hub answered


def user_env_is_current(effective: Settings) -> bool:
    """Nothing newer for the user environment within its pins (venv manager only: a
    conda environment is always upgraded)."""
    env = effective["user_environment"]
    if env["manager"] != "venv" or not (paths.USER_ENV / "bin" / "python").exists():
        return False
    result = subprocess.run(
        [str(paths.HUB_ENV / "bin" / "uv"), "pip", "install", "--dry-run", "--upgrade",
         "--overrides", str(paths.ROLES_DIR / "user_env" / "files" / "uv-overrides.txt"),
         "-p", str(paths.USER_ENV / "bin" / "python"), *converge.index_options(effective),
         *converge.user_env_base_packages(), *env["pip_packages"]],
        capture_output=True, text=True, check=False)
    return result.returncode == 0 and "Would make no changes" in result.stderr


def run(effective: Settings, previous_hub_env: Path | None, on_task=None) -> Outcome:
    hub_unchanged = previous_hub_env is None or _software_of(previous_hub_env) == state.hub_software()
    if hub_unchanged and user_env_is_current(effective):
        if previous_hub_env is not None:
            shutil.rmtree(previous_hub_env)
        result, waited = provision.run(effective, on_task=on_task)
        return Outcome(result.changed, False, waited)
    paths.UPGRADE_BACKUPS.mkdir(mode=0o700, exist_ok=True)
    backup.backup(paths.UPGRADE_BACKUPS / f"before-{__version__}-{time.strftime('%Y%m%d-%H%M%S')}.hsb", homes=False)
    for old in sorted(paths.UPGRADE_BACKUPS.glob("before-*.hsb"))[:-KEEP_BACKUPS]:
        old.unlink()
    _copy_aside()
    try:
        result, waited = provision.run(effective, on_task=on_task, upgrade=True)
    except Exception as e:
        log.exception("upgrade to Hubstead %s failed; rolling back", __version__)
        _roll_back(previous_hub_env)
        raise UpgradeFailed(f"the upgrade failed and was rolled back, the hub runs as before: {e}") from None
    _forget_copies(previous_hub_env)
    return Outcome(result.changed, True, waited)


def _software_of(hub_env: Path) -> dict | None:
    """hub_software() as the environment at ``hub_env`` would report it."""
    code = "import json; from hubstead.core import state; print(json.dumps(state.hub_software()))"
    result = subprocess.run([str(hub_env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            check=False)
    # An environment that can't say (an older Hubstead without it) differs.
    return json.loads(result.stdout) if result.returncode == 0 else None


def _copy_aside() -> None:
    """The config, the state and the user environment, as they are now. Each copy is
    made under a temporary name and renamed when complete: a rollback (even one a boot
    finishes) takes only whole copies."""
    _forget_copies(None)
    if paths.USER_ENV.exists():
        # Beside the environment (one file system): it goes back by a rename.
        partial = _partial(paths.PREVIOUS_USER_ENV)
        subprocess.run(["cp", "-a", "--reflink=auto", str(paths.USER_ENV), str(partial)], check=True)
        partial.rename(paths.PREVIOUS_USER_ENV)
    partial = _partial(paths.PREVIOUS_STATE_DIR)
    partial.mkdir(mode=0o700, parents=True)
    shutil.copytree(paths.CONFIG_DIR, partial / "config", symlinks=True)
    for source in STATE:
        if source.is_dir():
            shutil.copytree(source, partial / source.name, symlinks=True)
        elif source.exists():
            shutil.copy2(source, partial / source.name)
    backup.copy_db(paths.HUB_DB, partial / paths.HUB_DB.name)  # the hub is writing to it
    partial.rename(paths.PREVIOUS_STATE_DIR)


def roll_back_interrupted() -> bool:
    """Finish what an upgrade cut short (a reboot, a power cut, a killed installer) left:
    while the previous hub environment is there, the upgrade had not finished, so the
    previous Hubstead goes back with its config, state and user environment. Run at boot
    by ROLLBACK_UNIT from that previous environment. False: there was nothing to do."""
    if not paths.PREVIOUS_HUB_ENV.exists():
        return False
    log.warning("an upgrade did not finish: putting the previous Hubstead back")
    _roll_back(paths.PREVIOUS_HUB_ENV)
    return True


def _roll_back(previous_hub_env: Path | None) -> None:
    """Each copy that exists goes back: one that is missing was either never made (the
    original was not changed yet) or already put back by a rollback cut short."""
    subprocess.run(["systemctl", "stop", paths.HUB_UNIT], check=False)
    if paths.PREVIOUS_USER_ENV.exists():
        _replace(paths.USER_ENV, paths.PREVIOUS_USER_ENV)
    if paths.PREVIOUS_STATE_DIR.exists():
        if (paths.PREVIOUS_STATE_DIR / "config").exists():
            _replace(paths.CONFIG_DIR, paths.PREVIOUS_STATE_DIR / "config")
        backup.discard_write_ahead_log()  # the new hub's
        for original in (*STATE, paths.HUB_DB):
            copy = paths.PREVIOUS_STATE_DIR / original.name
            if copy.exists():
                _replace(original, copy)
        shutil.rmtree(paths.PREVIOUS_STATE_DIR)
    if previous_hub_env is not None:
        # Last: while it is there, a boot knows the rollback has not finished.
        _replace(paths.HUB_ENV, previous_hub_env)
    # The previous Hubstead renders its own units and files again and starts the hub.
    subprocess.run([str(paths.HUB_ENV / "bin" / "hubstead"), "install"], check=False)


def _replace(target: Path, copy: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    copy.rename(target)


def _partial(copy: Path) -> Path:
    return copy.with_name(copy.name + paths.PARTIAL_SUFFIX)


def _forget_copies(previous_hub_env: Path | None) -> None:
    # The hub environment's copy first: once it is gone, a boot no longer rolls back, and
    # the other copies are only leftovers (the next upgrade clears them).
    for copy in (previous_hub_env, paths.PREVIOUS_STATE_DIR, paths.PREVIOUS_USER_ENV):
        if copy is None:
            continue
        for path in (copy, _partial(copy)):
            if path.exists():
                shutil.rmtree(path)
