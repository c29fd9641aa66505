"""Each user's server: a transient systemd unit ``jupyter-<name>`` running as the
user's own Unix account, from the shared user environment."""

import asyncio
import functools
import subprocess

from systemdspawner import SystemdSpawner
from jupyterhub.traitlets import ByteSpecification
from traitlets import Dict, List, Unicode, default

from . import paths, unixusers, usernames

SUDOERS_GROUP = "hubstead-sudoers"
TEACHERS_GROUP = "hubstead-teachers"  # hub admins: they write the course folder
# Cloud metadata services hand out instance credentials: never reachable from a user's server.
METADATA_ADDRESSES = "169.254.169.254 fd00:ec2::254"


class HubsteadSpawner(SystemdSpawner):
    sudoers = List(
        Unicode(), config=True, help="Hub users whose servers may use sudo (users.sudoers)."
    )
    group_limits = Dict(
        config=True,
        help="{hub group: {memory, cpu}} (limits.groups): members get the most generous "
        "of their groups' limits instead of the global ones.",
    )
    extra_user_groups = Dict(
        config=True, help="{Unix group: [hub users]} (users.extra_user_groups), applied at spawn."
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The configured (global) limits; group limits override them per spawn.
        self._global_limits = (self.mem_limit, self.cpu_limit)

    def limits_for(self, groups: dict) -> tuple:
        """(memory bytes or None, cpus or None) for a member of ``groups`` ({name:
        properties}): limits.groups in config.yaml and the limits a teacher set on the
        group (its properties ``memory`` and ``cpu``)."""
        memory, cpu = self._global_limits
        to_bytes = functools.partial(ByteSpecification().validate, None)
        for name, properties in groups.items():
            for override in (self.group_limits.get(name, {}), properties or {}):
                if override.get("memory") is not None:
                    candidate = to_bytes(override["memory"])
                    memory = candidate if memory is None else max(memory, candidate)
                if override.get("cpu") is not None:
                    cpu = max(cpu or 0, float(override["cpu"]))
        return memory, cpu

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
        memberships = {SUDOERS_GROUP: may_sudo, TEACHERS_GROUP: self.user.admin}
        memberships.update({g: self.user.name in members for g, members in self.extra_user_groups.items()})
        for group, member in memberships.items():
            await asyncio.to_thread(_set_group_membership, unix_name, group, member)
        self.disable_user_sudo = not may_sudo
        # Files teachers make in the (setgid) course folder stay writable for the others.
        properties = {k: v for k, v in self.unit_extra_properties.items() if k != "UMask"}
        self.unit_extra_properties = {**properties, "UMask": "0002"} if self.user.admin else properties
        self.mem_limit, self.cpu_limit = self.limits_for({g.name: g.properties for g in self.user.groups})
        return await super().start()


def _set_group_membership(unix_name: str, group: str, member: bool) -> None:
    action = "--add" if member else "--delete"
    result = subprocess.run(["gpasswd", action, unix_name, group], capture_output=True, text=True)
    # gpasswd --delete of a non-member exits 3; that is the state we want.
    if result.returncode not in (0, 3):
        raise RuntimeError(f"gpasswd {action} {unix_name} {group}: {result.stderr.strip()}")
