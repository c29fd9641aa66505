"""Each user's server: a transient systemd unit ``jupyter-<name>`` running as the
user's own Unix account, from the shared user environment."""

import asyncio
import contextlib
import grp
import math
import pwd
import re
import subprocess
from pathlib import Path

from systemdspawner import SystemdSpawner
from systemdspawner import systemd as systemd_run
from traitlets import Dict, Integer, List, Unicode, default

from hubstead.config.schema import memory_bytes
from hubstead.core import paths, systemd, unixusers, usernames
from hubstead.hub import admission, sockets

# A sysadmin's server asks for this scope instead of access:servers, and only its owner
# holds it (hub_config's sysadmin role): a teacher helping students in their servers never
# gets into a server that can sudo.
SYSADMIN_SERVER_SCOPE = "custom:hubstead:sysadmin-server"
# Cloud metadata services hand out instance credentials: never reachable from a user's
# server. The whole IPv4 link-local range (AWS, GCP, Azure, OpenStack, DigitalOcean... at
# 169.254.169.254, and other services there), AWS's IPv6 endpoint, Alibaba's and Oracle's.
METADATA_ADDRESSES = "169.254.0.0/16 fd00:ec2::254 100.100.100.200 192.0.0.192"


# How often a starting server's port is tried: a short interval, as the start holds one
# of the few admission slots until it answers.
READY_POLL_SECONDS = 0.2
UNIT_CHECK_EVERY = 10  # polls, i.e. every 2 s
PORT_ATTEMPTS = 3  # ports tried for one start before giving up
# Unit settings that keep the kernel's knobs, modules and logs out of a server's reach;
# they imply NoNewPrivileges, so users.sudoers' servers go without them.
KERNEL_PROTECTION = ("ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectHostname",
                     "RestrictRealtime", "LockPersonality")
# Machine-wide scratch directories every user may write (only /tmp and /var/tmp are made
# private by PrivateTmp): each server gets empty ones of its own instead, so nothing in
# them is a classmate's to read, nor a name a classmate made first. (`mode`: as the
# originals, sticky and world-writable: the server's own processes share them.)
PRIVATE_SCRATCH = ("/dev/shm", "/run/lock")
SCRATCH_OPTIONS = "mode=1777,nosuid,nodev"
# Open files of each of a server's processes (its hard limit too, so no process raises
# it): a student's process holding a socket on every port of the ephemeral range would
# stop every server start of the class (and every outgoing connection) on the machine.
OPEN_FILES_MAX = 4096
# How often a waiting student's progress page is refreshed even when the queue is still.
QUEUE_PROGRESS_SECONDS = 5

# A server's memory when limits.memory is not set: a share of the machine's (systemd
# takes a percentage of physical memory), so one student can't starve the class.
DEFAULT_MEMORY_MAX = "25%"
# What unit names, paths and arguments may say about their user.
USER_VARS = re.compile(r"\{(USERNAME|USERID|UNIXNAME)\}")

_spawn_queue: admission.SpawnQueue | None = None


def spawn_queue(limit: int) -> admission.SpawnQueue:
    """The hub process's one queue of server starts (limits.concurrent_spawns)."""
    global _spawn_queue
    if _spawn_queue is None:
        _spawn_queue = admission.SpawnQueue(limit or admission.default_limit())
    return _spawn_queue


class HubsteadSpawner(SystemdSpawner):
    concurrent_spawns = Integer(
        0, config=True,
        help="Servers starting at once (limits.concurrent_spawns); the others wait their turn "
        "in arrival order. 0: one per CPU core plus one.",
    )
    sudoers = List(
        Unicode(), config=True, help="Hub users whose servers may use sudo (users.sudoers)."
    )
    teachers = List(
        Unicode(), config=True, help="Hub users who teach (users.admin): they write the course folder."
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
        # OOMPolicy=continue: when a notebook outgrows the server's memory, the kernel
        # has to go (JupyterLab restarts it), not the whole server.
        # ProtectProc=invisible: the server sees only its own user's processes, never
        # another's command line (an installer's or a config command's arguments). The
        # kernel's knobs, modules, logs and cgroups stay out of reach even of a sudoer's
        # root. (No PrivateDevices: a course may use the machine's GPU.) System V IPC
        # and POSIX message queues, /dev/shm and /run/lock: the server's own.
        return {"IPAddressDeny": METADATA_ADDRESSES, "OOMPolicy": "continue", "ProtectProc": "invisible",
                "ProtectControlGroups": "yes", **dict.fromkeys(KERNEL_PROTECTION, "yes"),
                "PrivateIPC": "yes", "TemporaryFileSystem": " ".join(f"{d}:{SCRATCH_OPTIONS}" for d in PRIVATE_SCRATCH),
                "LimitNOFILE": str(OPEN_FILES_MAX)}

    @default("oauth_access_scopes")
    def _oauth_access_scopes_default(self):
        if self.user.name in self.sudoers:
            return [self._sysadmin_scope()]
        return super()._default_access_scopes()

    @default("oauth_client_allowed_scopes")
    def _oauth_client_allowed_scopes_default(self):
        # The server's login asks for it, so its owner's token carries it.
        return [self._sysadmin_scope()] if self.user.name in self.sudoers else []

    def _sysadmin_scope(self) -> str:
        return f"{SYSADMIN_SERVER_SCOPE}!user={self.user.name}"

    @default("slice")
    def _slice_default(self):
        return paths.USERS_SLICE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The configured (global) limits and unit properties; each start derives its own.
        self._global_limits = (self.mem_limit, self.cpu_limit)
        self._configured_properties = dict(self.unit_extra_properties)

    def limits_for(self, groups: dict) -> tuple:
        """(memory bytes or None, cpus or None) for a member of ``groups`` ({name:
        properties}): limits.groups in config.yaml and the limits a teacher set on the
        group (its properties ``memory`` and ``cpu``)."""
        memory, cpu = self._global_limits
        for name, properties in groups.items():
            for override in (self.group_limits.get(name, {}), properties or {}):
                group_memory, group_cpu = _group_limits(name, override, self.log)
                if group_memory is not None:
                    memory = group_memory if memory is None else max(memory, group_memory)
                if group_cpu is not None:
                    cpu = max(cpu or 0, group_cpu)
        return memory, cpu

    def _expand_user_vars(self, string):
        # Only these placeholders: arguments hold other braces (the JSON of
        # hub.csp_frame_ancestors), which str.format would take for fields.
        values = {"USERNAME": self.user.name, "USERID": self.user.id,
                  "UNIXNAME": usernames.unix_name(self.user.name)}
        return USER_VARS.sub(lambda m: str(values[m.group(1)]), string)

    def _memberships(self) -> dict[str, bool]:
        """{Unix group: whether this user belongs to it}, for the groups Hubstead manages."""
        memberships = {paths.SUDOERS_GROUP: self.user.name in self.sudoers,
                       paths.TEACHERS_GROUP: self.user.name in self.teachers}
        memberships.update({g: self.user.name in members for g, members in self.extra_user_groups.items()})
        return memberships

    def _revoked_groups(self) -> set[str]:
        """Groups the running server's processes hold although the user may no longer
        (taken out of users.sudoers, say): a process keeps its groups until it ends."""
        forbidden = {}
        for group, member in self._memberships().items():
            with contextlib.suppress(KeyError):  # a group that does not exist is held by nobody
                if not member:
                    forbidden[grp.getgrnam(group).gr_gid] = group
        held = set()
        for pid in systemd.unit_pids(f"{self.unit_name}.service", paths.USERS_SLICE):
            with contextlib.suppress(FileNotFoundError):
                status = Path(f"/proc/{pid}/status").read_text()
                held |= {int(g) for line in status.splitlines() if line.startswith("Groups:")
                         for g in line.split()[1:]}
        return {forbidden[gid] for gid in held & forbidden.keys()}

    async def poll(self):
        # The hub polls every running server at its start and every poll_interval: a
        # revoked group (sudo!) ends the server, whose next start comes without it.
        status = await super().poll()
        if status is None:
            revoked = await asyncio.to_thread(self._revoked_groups)
            if revoked:
                self.log.warning("Stopping %s: its processes still hold %s, no longer allowed",
                                 self._log_name, ", ".join(sorted(revoked)))
                await self.stop()
                return 1
        return status

    @property
    def _queue(self) -> admission.SpawnQueue:
        return spawn_queue(self.concurrent_spawns)

    @property
    def _queue_key(self):
        return (self.user.name, self.name)

    async def run_pre_spawn_hook(self):
        # Wait for a start slot here, before Spawner.start: JupyterHub's start_timeout
        # only counts from start(), so the time in the queue never times a student out.
        queue = self._queue
        if queue.ahead_of(self._queue_key) is None and queue.starting >= queue.limit:
            self.log.info("Server start of %s queued: %r", self._log_name, queue)
        await queue.wait_turn(self._queue_key)
        result = super().run_pre_spawn_hook()
        if asyncio.iscoroutine(result):
            await result

    def run_post_stop_hook(self):
        # A start that failed before start() ran frees its slot here.
        self._queue.release(self._queue_key)
        return super().run_post_stop_hook()

    async def progress(self):
        queue, key = self._queue, self._queue_key
        shown = None
        while (ahead := queue.ahead_of(key)) is not None:
            if ahead != shown:
                shown = ahead
                who = "student is" if ahead == 1 else "students are"
                message = (f"Waiting for a free start slot: {ahead} {who} ahead of you" if ahead
                           else "Waiting for a free start slot: you are next")
                yield {"progress": 5, "message": message}
            await queue.changed(QUEUE_PROGRESS_SECONDS)
        yield {"progress": 20, "message": "Starting your server"}

    async def start(self):
        try:
            for _ in range(PORT_ATTEMPTS):
                ip, port = await self._start_unit()
                if await self._wait_listening(ip, port):
                    return ip, port
                # Another process took the port between its choice and the server's bind
                # (a classmate's kernel picks ports the same way, or a squatter).
                self.log.warning("%s: port %s is held by another user's process; not routing this "
                                 "server there, trying another port", self._log_name, port)
                await self.stop()
            raise RuntimeError(f"{self._log_name}: {PORT_ATTEMPTS} ports in a row were held by other "
                               "users' processes")
        finally:
            self._queue.release(self._queue_key)

    async def _wait_listening(self, ip: str, port: int) -> bool:
        """True once the server listens on its port (the CPU-heavy part of a start, the
        imports, comes after systemd reports the unit active): the slot is held until
        then. False when another user's process holds the port: nothing is routed there."""
        uid = pwd.getpwnam(usernames.unix_name(self.user.name)).pw_uid
        attempt = 0
        while True:
            attempt += 1
            # A connect is cheap; the kernel's socket tables (all of the machine's sockets)
            # are read only once something accepts.
            if await _accepts(ip, port):
                owners = sockets.receiver_uids(ip, port)
                if owners - {uid}:
                    return False
                if uid in owners:
                    return True
            # Asking systemd costs a process: only now and then. (The unit's own state: the
            # revoked-groups check of our poll() has nothing to find in a server just started.)
            if attempt % UNIT_CHECK_EVERY == 0 and await super().poll() is not None:
                if sockets.receiver_uids(ip, port) - {uid}:
                    return False  # it exited because the port was taken (port_retries=0)
                raise RuntimeError(f"{self._log_name}: the server exited while starting "
                                   f"(journalctl -u {self.unit_name})")
            await asyncio.sleep(READY_POLL_SECONDS)

    def get_args(self):
        # On a taken port the server must fail, not quietly listen on the next one. Kernels
        # talk to the server over Unix sockets (zmq's ipc), not loopback TCP ports, which
        # any classmate could connect to (and subscribe to everything a kernel publishes).
        return [*super().get_args(), "--ServerApp.port_retries=0", "--KernelManager.transport=ipc"]

    def get_env(self):
        env = super().get_env()
        # Where the kernels' sockets (and connection files) go: the unit's runtime
        # directory, which systemd makes for its user alone (0700) and removes when the
        # server stops; its path is short enough for a socket's (108 bytes) where
        # ~/.local/share/jupyter/runtime is not, with a long user name.
        env["JUPYTER_RUNTIME_DIR"] = str(Path(systemd_run.RUN_ROOT) / self.unit_name)
        return env

    async def _start_unit(self):
        # Fallback for users added before Hubstead managed the machine: the account
        # normally exists since the user was added (see UnixAccountsMixin).
        unix_name = await asyncio.to_thread(unixusers.ensure, self.user.name)
        for group, member in self._memberships().items():
            await asyncio.to_thread(_set_group_membership, unix_name, group, member)
        self.disable_user_sudo = self.user.name not in self.sudoers
        properties = dict(self._configured_properties)
        if not self.disable_user_sudo:
            # systemd sets no_new_privs with these (for a non-root unit): sudo would refuse.
            properties = {k: v for k, v in properties.items() if k not in KERNEL_PROTECTION}
        # Files teachers make in the (setgid) course folder stay writable for the others.
        if self.user.name in self.teachers:
            properties["UMask"] = "0002"
        self.mem_limit, self.cpu_limit = self.limits_for({g.name: g.properties for g in self.user.groups})
        if self.mem_limit is None:
            # No limit set: still no single runaway notebook takes all of the users' memory.
            properties["MemoryMax"] = DEFAULT_MEMORY_MAX
        self.unit_extra_properties = properties
        started = await super().start()
        if started is None:
            raise RuntimeError(
                f"{self._log_name}: unit {self.unit_name} did not stay up (journalctl -u {self.unit_name})")
        return started


def _group_limits(group: str, limits: dict, log) -> tuple[int | None, float | None]:
    """A group's (memory bytes, cpus). Group properties set through the REST API skip
    the config's checks: a value that is not a limit is left out (and logged), so it
    never reaches a unit file nor stops the group's servers from starting."""
    memory = cpu = None
    try:
        memory = memory_bytes(limits.get("memory"))
    except ValueError:
        log.warning("Group %s: memory %r is not a size like 512M or 2G; ignored", group, limits.get("memory"))
    if limits.get("cpu") is not None:
        try:
            cpu = float(limits["cpu"])
        except (TypeError, ValueError):
            cpu = math.nan
        if not 0 < cpu < math.inf:
            log.warning("Group %s: cpu %r is not a number of CPUs > 0; ignored", group, limits["cpu"])
            cpu = None
    return memory, cpu


async def _accepts(ip: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(ip, port)
    except OSError:
        return False
    writer.close()
    return True


def _set_group_membership(unix_name: str, group: str, member: bool) -> None:
    action = "--add" if member else "--delete"
    result = subprocess.run(["gpasswd", action, unix_name, group], capture_output=True, text=True)
    # gpasswd --delete of a non-member exits 3; that is the state we want.
    if result.returncode not in (0, 3):
        raise RuntimeError(f"gpasswd {action} {unix_name} {group}: {result.stderr.strip()}")
