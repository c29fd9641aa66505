"""Each user's server: a transient systemd unit ``jupyter-<name>`` running as the
user's own Unix account, from the shared user environment."""

import asyncio
import subprocess

from systemdspawner import SystemdSpawner
from traitlets import List, Unicode, default

from . import paths, unixusers, usernames

SUDOERS_GROUP = "hubstead-sudoers"
# Cloud metadata services hand out instance credentials: never reachable from a user's server.
METADATA_ADDRESSES = "169.254.169.254 fd00:ec2::254"


class HubsteadSpawner(SystemdSpawner):
    sudoers = List(
        Unicode(), config=True, help="Hub users whose servers may use sudo (users.sudoers)."
    )

    # {UNIXNAME} is the (possibly hashed) Unix account, see hubstead.usernames.
    username_template = Unicode("{UNIXNAME}", config=True)
    unit_name_template = Unicode("{UNIXNAME}", config=True)

    @default("isolate_tmp")
    def _isolate_tmp_default(self):
        return True

    @default("extra_paths")
    def _extra_paths_default(self):
        # systemdspawner's fallback PATH lacks /usr/local/bin and the sbin dirs.
        return [str(paths.USER_ENV / "bin"), "/usr/local/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"]

    @default("default_shell")
    def _default_shell_default(self):
        return "/bin/bash"

    @default("unit_extra_properties")
    def _unit_extra_properties_default(self):
        return {"IPAddressDeny": METADATA_ADDRESSES}

    def _expand_user_vars(self, string):
        return string.format(
            USERNAME=self.user.name,
            USERID=self.user.id,
            UNIXNAME=usernames.unix_name(self.user.name),
        )

    async def start(self):
        # Fallback for users added before Hubstead managed the machine: the account
        # normally exists since the user was added (see UnixAccountsMixin).
        unix_name = await asyncio.to_thread(unixusers.ensure, self.user.name)
        may_sudo = self.user.name in self.sudoers
        await asyncio.to_thread(_set_group_membership, unix_name, SUDOERS_GROUP, may_sudo)
        self.disable_user_sudo = not may_sudo
        return await super().start()


def _set_group_membership(unix_name: str, group: str, member: bool) -> None:
    action = "--add" if member else "--delete"
    result = subprocess.run(["gpasswd", action, unix_name, group], capture_output=True, text=True)
    # gpasswd --delete of a non-member exits 3; that is the state we want.
    if result.returncode not in (0, 3):
        raise RuntimeError(f"gpasswd {action} {unix_name} {group}: {result.stderr.strip()}")
