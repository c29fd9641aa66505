"""Unix accounts behind hub users: created when the hub user is added.

``ensure`` is idempotent and cheap when there is nothing to do: the hub calls it for
every user in its database at every start.
"""

import os
import pwd
import subprocess

from . import usernames

# Every hub user's account is in this group (created by the base role).
USERS_GROUP = "jupyterhub-users"
HOME_MODE = 0o700


class AccountError(RuntimeError):
    """The machine refused to create an account; the message has its reason."""


def exists(unix_name: str) -> bool:
    try:
        pwd.getpwnam(unix_name)
    except KeyError:
        return False
    return True


def ensure(hub_name: str) -> str:
    """Make sure hub user ``hub_name`` has its Unix account and a home others can't read.

    Validates the name before touching the machine; returns the Unix name.
    """
    hub_name = usernames.validate(hub_name)
    unix_name = usernames.unix_name(hub_name)
    if not exists(unix_name):
        result = subprocess.run(
            ["useradd", "--create-home", "--user-group", "--groups", USERS_GROUP,
             "--shell", "/bin/bash", "--comment", f"Hubstead user {hub_name}", unix_name],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise AccountError(f"could not create Unix user {unix_name}: {result.stderr.strip()}")
    home = pwd.getpwnam(unix_name).pw_dir
    if os.stat(home).st_mode & 0o777 != HOME_MODE:
        os.chmod(home, HOME_MODE)
    return unix_name
