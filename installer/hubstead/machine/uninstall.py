"""`hubstead uninstall`: Hubstead off the machine.

What goes: the user servers, the hub, the proxy, certbot's timer, their units, the
environments, the config and state, the access rules (sudo, sshd, cron/at entries of
deleted accounts), the groups and the proxy's user, root's commands. What stays unless
``purge``: the students' accounts and homes, the course folder and the archives of
removed students' homes: the teacher's work, which nothing of Hubstead needs to run.
Each role removes what it made (its tasks/remove.yml); Python removes what Python made.
"""

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hubstead.config.model import Settings
from hubstead.core import paths, unixusers
from hubstead.machine import converge


@dataclass
class Summary:
    removed_accounts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what the admin finds afterwards, and where
    changed: int = 0


def kept_without_purge() -> list[str]:
    """What stays when the admin does not purge, in words with paths."""
    kept = []
    accounts = unixusers.hub_accounts()
    if accounts:
        kept.append(f"the accounts and homes of {len(accounts)} hub users ({', '.join(accounts)})")
    if paths.SHARED_DIR.exists():
        kept.append(f"the course folder {paths.SHARED_DIR}")
    if paths.ARCHIVE_DIR.exists() and any(paths.ARCHIVE_DIR.iterdir()):
        kept.append(f"the archives of removed students' homes in {paths.ARCHIVE_DIR}")
    return kept


def uninstall(effective: Settings, purge: bool, on_task=None) -> Summary:
    summary = Summary(kept=[] if purge else kept_without_purge())
    # Nothing runs on while its files go: no server outlives its hub, no hub writes to
    # a database being removed. (The roles then switch them off at boot.)
    subprocess.run(["systemctl", "stop", paths.USERS_SLICE, paths.HUB_UNIT, paths.PROXY_UNIT],
                   check=False, capture_output=True)
    if purge:
        for unix_name in unixusers.hub_accounts():
            unixusers.remove_account(unix_name, home_policy="delete", account_policy="delete")
            summary.removed_accounts.append(unix_name)
    _clear_state(keep_archive=not purge)
    variables = {**converge.role_variables(effective), "hubstead_base_purge": purge}
    with tempfile.TemporaryDirectory(prefix="hubstead-uninstall-") as runs:
        # The roles run from the hub's environment: it goes after them, below.
        summary.changed = converge.remove(variables, Path(runs), on_task).changed
    shutil.rmtree(paths.HUB_ENV, ignore_errors=True)
    for empty in (paths.PREFIX, paths.STATE_DIR):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    return summary


def _clear_state(keep_archive: bool) -> None:
    """The state Python wrote (secrets, passwords, database, certificates, records)."""
    if not paths.STATE_DIR.is_dir():
        return
    for entry in paths.STATE_DIR.iterdir():
        if keep_archive and entry == paths.ARCHIVE_DIR:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
