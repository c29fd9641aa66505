#!/usr/bin/env python3
"""Throw-away Debian 12 targets with a real systemd as PID 1, booted with systemd-nspawn.

Works on a host whose own PID 1 is not systemd (no machined, no system D-Bus, hybrid
cgroups), such as the CI VMs. Stdlib only; needs root.

Library::

    with Testbed(binds_ro={"/path/to/checkout": "/opt/src"}) as tb:
        tb.run("/opt/src/install.sh")              # as a transient unit inside
        tb.exec("cat", "/etc/os-release")           # via nsenter, clean environment

Developer CLI (the state lives in a pidfile under WORK/NAME)::

    python3 tests/testbed.py [--bind-ro HOST:INSIDE] up
    python3 tests/testbed.py exec bash
    python3 tests/testbed.py run systemctl status
    python3 tests/testbed.py down

The target shares the host's network: whatever listens inside listens on the host, so
only one target at a time can bind a given port.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

CACHE_DIR = Path(os.environ.get("HUBSTEAD_TESTBED_CACHE", "/var/cache/hubstead-testbed"))

SUITE = "bookworm"  # Debian 12; Testbed(suite="trixie") boots Debian 13
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "python3", "ca-certificates",
    "curl", "sudo", "iproute2", "procps", "less",
)
# Bump when _customize_rootfs changes, so that cached tarballs are rebuilt.
ROOTFS_FORMAT = 1
HOST_TOOLS = {"systemd-nspawn": "systemd-container", "mmdebstrap": "mmdebstrap", "zstd": "zstd"}
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")
TAR_OPTS = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls")
PATH_INSIDE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 120
STOP_TIMEOUT = 30
NSPAWN_REBOOT_RC = 133  # what systemd-nspawn exits with when the target asked for a reboot
# Held while a target is up: targets share the host's network (ports 80, 443, ...), so test
# runs of several checkouts on one machine take turns, a target at a time.
HOST_NETWORK_LOCK = CACHE_DIR / "host-network.lock"


def _log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ensure_host_tools() -> None:
    """Install systemd-nspawn, mmdebstrap and zstd when missing (CI starts on a fresh machine)."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    _log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )


def _host_mirrors() -> tuple[str, str]:
    """The (main, security) Debian mirrors the host's apt uses: the network may only reach those."""
    uris = []
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uris += [u for line in f.read_text().splitlines() if line.startswith("URIs:") for u in line.split()[1:]]
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if f.is_file():
            uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", f.read_text(), re.MULTILINE)

    def pick(suffix: str) -> str:
        return next((u for u in uris if u.rstrip("/").endswith(suffix)), f"http://deb.debian.org{suffix}")

    return pick("/debian"), pick("/debian-security")


def _host_cas() -> list[Path]:
    return sorted(p for p in HOST_CA_DIR.rglob("*.crt") if p.is_file()) if HOST_CA_DIR.is_dir() else []


def rootfs_tarball(suite: str = SUITE) -> Path:
    """The cached rootfs tarball of a minimal Debian target; built on first use."""
    ensure_host_tools()
    main, security = _host_mirrors()
    sources = [
        f"deb {main} {suite} main",
        f"deb {main} {suite}-updates main",
        f"deb {security} {suite}-security main",
    ]
    key = hashlib.sha256(f"{ROOTFS_FORMAT}\n{suite}\n{','.join(PACKAGES)}\n".encode())
    key.update("\n".join(sources).encode())
    for ca in _host_cas():
        key.update(f"\n{ca.relative_to(HOST_CA_DIR)}\n".encode() + ca.read_bytes())
    tarball = CACHE_DIR / f"{suite}-{key.hexdigest()[:16]}.tar.zst"
    if tarball.is_file():
        return tarball
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building the same tarball
        if not tarball.is_file():
            _build_rootfs(suite, sources, tarball)
    return tarball


def _build_rootfs(suite: str, sources: list[str], tarball: Path) -> None:
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="build.", dir=CACHE_DIR))
    root = tmp / "root"
    try:
        for attempt in (1, 2, 3):  # the mirror is remote: retry transient failures
            remove_tree(root)
            _log(f"mmdebstrap {suite} minbase + {','.join(PACKAGES)} (attempt {attempt})")
            cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                   suite, str(root), *sources]
            if subprocess.run(cmd).returncode == 0:
                break
            if attempt == 3:
                raise RuntimeError(f"mmdebstrap failed 3 times: {shlex.join(cmd)}")
            time.sleep(5)
        _customize_rootfs(root)
        part = tarball.with_name(tarball.name + ".part")
        subprocess.run(["tar", *TAR_OPTS, "-I", "zstd -q -T0 -3", "-C", str(root), "-cf", str(part), "."],
                       check=True)
        part.rename(tarball)
    finally:
        remove_tree(tmp)
    _log(f"built {tarball} ({tarball.stat().st_size >> 20} MiB) in {time.monotonic() - t0:.1f} s")


def _customize_rootfs(root: Path) -> None:
    """Turn the bare bootstrap into what a fresh VM of ours looks like."""
    cas = _host_cas()
    if cas:
        # The registries sit behind a TLS-intercepting proxy whose CAs only the host trusts.
        for ca in cas:
            dest = root / "usr/local/share/ca-certificates" / ca.relative_to(HOST_CA_DIR)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ca, dest)
        subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True, stdout=subprocess.DEVNULL)
        # certifi-based clients (requests, httpx, old pip) ignore the system store: point them at
        # it, for services (the manager's DefaultEnvironment) and for logins (pam_env, exec()).
        settings = [f"{var}={CA_BUNDLE}" for var in CA_ENV_VARS]
        conf = root / "etc/systemd/system.conf.d/90-testbed-ca.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"[Manager]\nDefaultEnvironment={' '.join(settings)}\n")
        with open(root / "etc/environment", "a") as env:
            env.writelines(f"{s}\n" for s in settings)
    # mmdebstrap copies in the build host's hostname; up() writes the target's own.
    (root / "etc/hostname").unlink(missing_ok=True)
    # Empty machine-id: systemd makes a new one on every boot, like a freshly provisioned VM.
    (root / "etc/machine-id").write_text("")
    # /var/cache/apt/archives is a cache shared by all targets; `apt` (unlike apt-get) deletes
    # the .debs it downloaded unless told otherwise.
    (root / "etc/apt/apt.conf.d/99testbed-keep-debs").write_text(
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
    dump = subprocess.run(["chroot", str(root), "apt-config", "dump"],
                          check=True, capture_output=True, text=True).stdout
    deleting = [line for line in dump.splitlines()
                if ("Keep-Downloaded-Packages" in line and '"true"' not in line)
                or ("Post-Invoke" in line and "/var/cache/apt/archives" in line)]
    if deleting:
        raise RuntimeError("apt in the rootfs would delete cached .debs:\n" + "\n".join(deleting))


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class HostNetwork:
    """The host network as a resource: one process at a time holds it (reentrant within it)."""

    _fd: int | None = None
    _holders = 0

    @classmethod
    def acquire(cls, who: str) -> None:
        if cls._holders == 0:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            fd = os.open(HOST_NETWORK_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _log(f"{who}: waiting for another test run's target to go down ({HOST_NETWORK_LOCK})")
                # The wait is another run's time, not this test's: a SIGALRM time limit
                # (pytest-timeout's) stands still meanwhile.
                paused = signal.setitimer(signal.ITIMER_REAL, 0) if _main_thread() else (0.0, 0.0)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                finally:
                    if paused[0] > 0:
                        signal.setitimer(signal.ITIMER_REAL, *paused)
            cls._fd = fd
        cls._holders += 1

    @classmethod
    def release(cls) -> None:
        if cls._holders == 0:
            return
        cls._holders -= 1
        if cls._holders == 0 and cls._fd is not None:
            os.close(cls._fd)  # closing drops the flock
            cls._fd = None


def remove_tree(path: Path) -> None:
    """rm -rf that refuses to run while anything is mounted below path (it could be a bind of a checkout)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    busy = [m for m in mounts if (m + "/").startswith(prefix)]
    if busy:
        raise RuntimeError(f"refusing to delete {path}: {busy[0]} is mounted below it")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def _parse_binds(binds: dict[str, str] | None) -> dict[str, str]:
    parsed = {os.path.abspath(host): inside for host, inside in (binds or {}).items()}
    for spec in parsed.items():
        if any(":" in p for p in spec):
            raise ValueError(f"bind paths may not contain ':' (systemd-nspawn's separator): {spec}")
    return parsed


def _capture(argv: list[str], args: tuple[str, ...], input: str | bytes | None, timeout: float,
             ) -> subprocess.CompletedProcess:
    """Run argv in its own process group, so that a timeout kills nsenter *and* its child inside."""
    data = input.encode() if isinstance(input, str) else input
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise
    return subprocess.CompletedProcess(list(args), proc.returncode,
                                       out.decode(errors="replace"), err.decode(errors="replace"))


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL nsenter and everything it started, leaving no zombie inside the target."""
    # The command first, so that nsenter reaps it: an orphan of nsenter would go to the host's
    # PID 1, which is slow to reap, and its zombie stalls the target's shutdown for 10 s.
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            os.kill(int(child), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    # No communicate(): a unit started with --pipe holds our pipes open until it ends.
    proc.wait()


def _unit_name() -> str:
    return f"testbed-run-{uuid.uuid4().hex[:12]}"


def _checked(result: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check and result.returncode != 0:
        raise AssertionError(
            f"{shlex.join(result.args)} failed with rc {result.returncode}\n"
            f"--- stdout (tail) ---\n{_tail(result.stdout)}\n--- stderr (tail) ---\n{_tail(result.stderr)}")
    return result


class Testbed:
    """One throw-away target, booted from a fresh copy of the cached rootfs."""

    __test__ = False  # not a pytest test class, despite the name
    live: list[Testbed] = []  # the targets this process has up, for a failed test to save their journals

    def __init__(self, name: str = "hubstead-tb", binds_ro: dict[str, str] | None = None,
                 binds_rw: dict[str, str] | None = None, work: Path = Path("/tmp/hubstead-testbed"),
                 suite: str = SUITE, image: Path | None = None):
        self.name = name
        self.suite = suite
        # A root file system saved by save_image(): booted as an overlay on it, so that a copy of
        # an installed machine costs no unpacking and the image itself is never written.
        self.image = image
        self.work = Path(work)
        self.dir = self.work / name
        self.binds_ro = _parse_binds(binds_ro)
        # Package caches shared by all targets, so that every fresh target doesn't re-download.
        self.binds_rw = _parse_binds({
            str(CACHE_DIR / "uv"): "/root/.cache/uv",
            str(CACHE_DIR / "apt-archives"): "/var/cache/apt/archives",
            **(binds_rw or {}),
        })
        cgroup = Path("/sys/fs/cgroup")
        if (cgroup / "cgroup.controllers").exists():  # pure cgroup2 host (untested so far)
            self._cgroups = [cgroup / f"testbed-{name}"]
        else:  # hybrid host like the CI VMs: the name=systemd v1 hierarchy plus cgroup2 at unified/
            self._cgroups = [cgroup / "systemd" / f"testbed-{name}", cgroup / "unified" / f"testbed-{name}"]
        self._cgroup2 = self._cgroups[-1]
        self._pidfile = self.dir / "nspawn.pid"
        self._console = self.dir / "console.log"
        self._proc: subprocess.Popen | None = None
        self.network = True  # False: only a loopback of its own (reboot(network=False))
        self._holds_network = False

    def root(self) -> Path:
        return self.dir / "root"

    def __enter__(self) -> Testbed:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        # First: a target of this name that is up may be another run's, not a leftover.
        HostNetwork.acquire(self.name)
        self._holds_network = True
        try:
            if self._nspawn_pid() is not None:
                raise RuntimeError(f"testbed {self.name} is already up; call down() first")
            self._down(keep_network=True)  # leftovers of a crashed earlier run: processes, cgroups, the old copy
            self._unpack()
            self._boot(BOOT_TIMEOUT)
            Testbed.live.append(self)
        except BaseException:
            self.down()  # __exit__ does not run when __enter__ fails
            raise

    def _unpack(self) -> None:
        t0 = time.monotonic()
        root = self.root()
        root.mkdir(parents=True)
        if self.image is not None:
            for layer in ("upper", "overlay-work"):
                (self.dir / layer).mkdir()
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            # redirect_dir: a directory of the image can be renamed, as on a disk
                            # (without it rename() answers EXDEV, which no real machine's ext4 does).
                            f"lowerdir={self.image},upperdir={self.dir / 'upper'},workdir={self.dir / 'overlay-work'},"
                            "redirect_dir=on",
                            str(root)], check=True)
        else:
            tarball = rootfs_tarball(self.suite)
            subprocess.run(["tar", *TAR_OPTS, "-I", "zstd", "-C", str(root), "-xf", str(tarball)], check=True)
        (root / "etc/hostname").write_text(f"{self.name}\n")
        (root / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        (CACHE_DIR / "uv").mkdir(parents=True, exist_ok=True)
        (CACHE_DIR / "apt-archives/partial").mkdir(parents=True, exist_ok=True)
        _log(f"{self.name}: {'overlaid on its image' if self.image else 'unpacked'} in {time.monotonic() - t0:.1f} s")

    def save_image(self, dest: Path, timeout: float = 120) -> None:
        """Power the target off (an orderly shutdown, so every file is whole) and keep its root
        file system at ``dest``, for Testbed(image=dest) to boot copies of; the target is down."""
        if self.image is not None:
            raise RuntimeError(f"{self.name} runs on an image: save the target that was installed")
        t0 = time.monotonic()
        self.poweroff(timeout)
        # The copies get their own names and hosts files at boot.
        for per_target in ("etc/hostname", "etc/hosts"):
            (self.root() / per_target).unlink(missing_ok=True)
        self.root().rename(dest)
        self.down()
        _log(f"{self.name}: saved as the image {dest} in {time.monotonic() - t0:.1f} s")

    def poweroff(self, timeout: float = 120) -> None:
        """An orderly poweroff that keeps the root file system (down() deletes it), to be
        turned into another kind of target's disk (tests/vm.py)."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"testbed {self.name} was not booted by this process")
        self.exec("systemctl", "poweroff")
        try:
            rc = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} did not power off within {timeout} s:\n"
                               f"{_tail(self._console.read_text(errors='replace'))}") from None
        if rc != 0:
            raise RuntimeError(f"systemd-nspawn exited with {rc} on poweroff:\n"
                               f"{_tail(self._console.read_text(errors='replace'))}")
        self._clean_runtime()

    def reboot(self, timeout: float = 120, network: bool | None = None) -> None:
        """A real reboot: systemd inside shuts down, nspawn exits, and the same root boots
        again. ``network=False``: it comes back with a loopback of its own and no other
        interface, as a machine without internet (the host can no longer reach it either)."""
        if network is not None:
            self.network = network
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"testbed {self.name} was not booted by this process")
        t0 = time.monotonic()
        self.exec("systemctl", "reboot")
        try:
            rc = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} did not shut down within {timeout} s:\n"
                               f"{_tail(self._console.read_text(errors='replace'))}") from None
        if rc != NSPAWN_REBOOT_RC:
            raise RuntimeError(f"systemd-nspawn exited with {rc}, not {NSPAWN_REBOOT_RC} (reboot):\n"
                               f"{_tail(self._console.read_text(errors='replace'))}")
        self._clean_runtime()
        self._boot(max(1.0, timeout - (time.monotonic() - t0)))
        _log(f"{self.name}: rebooted in {time.monotonic() - t0:.1f} s")

    def down(self) -> None:
        HostNetwork.acquire(self.name)  # never clean up a target of this name that another run has up
        try:
            self._down()
        finally:
            HostNetwork.release()

    def _down(self, keep_network: bool = False) -> None:
        if self in Testbed.live:
            Testbed.live.remove(self)
        t0 = time.monotonic()
        pid = self._nspawn_pid()
        if pid is not None:
            # nspawn turns SIGTERM into SIGRTMIN+3 for the target's systemd: an orderly poweroff.
            os.kill(pid, signal.SIGTERM)
            if not self._wait_stopped(STOP_TIMEOUT):
                _log(f"{self.name}: no orderly stop within {STOP_TIMEOUT} s; killing its cgroup")
        # Never SIGKILL nspawn alone: the target's systemd would be re-parented to the host's
        # PID 1 and live on. cgroup.kill takes nspawn and the whole target at once; it also
        # catches what a crashed earlier run left behind.
        if self._cgroup_busy():
            _log(f"{self.name}: killing all processes in {self._cgroup2}")
            (self._cgroup2 / "cgroup.kill").write_text("1")
            if not self._wait_stopped(10):
                raise RuntimeError(f"processes of {self.name} survived cgroup.kill")
        self._clean_runtime()
        if self._console.exists():
            shutil.copyfile(self._console, self.work / f"{self.name}.console.log")
        if os.path.ismount(self.root()):  # the overlay of a copy booted from an image
            subprocess.run(["umount", str(self.root())], check=True)
        remove_tree(self.dir)
        self._proc = None
        if self._holds_network and not keep_network:
            HostNetwork.release()
            self._holds_network = False
        if pid is not None:
            _log(f"{self.name}: stopped in {time.monotonic() - t0:.1f} s")

    def run(self, *cmd: str, input: str | bytes | None = None, check: bool = True, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run cmd inside as a transient unit of the target's systemd, like a root shell's child.

        Unlike exec(), the command lives in the target's own cgroup tree and gets the manager's
        environment (logind, for one, rejects callers from outside the tree on newer systemd).
        """
        unit = _unit_name()
        try:
            result = _capture(self._exec_argv(self._systemd_run(cmd, unit, env)), cmd, input, timeout)
        except subprocess.TimeoutExpired:
            # Killing the systemd-run client leaves the unit running.
            self.exec("systemctl", "kill", "--signal=SIGKILL", f"{unit}.service", check=False, timeout=60)
            raise
        return _checked(result, check)

    def exec(self, *cmd: str, input: str | bytes | None = None, check: bool = True,
             timeout: float = 600) -> subprocess.CompletedProcess:
        """Run cmd inside all of the target's namespaces, as root, with a clean environment
        (PATH, HOME, LANG and the target's /etc/environment; nothing from the host)."""
        return _checked(_capture(self._exec_argv(cmd), cmd, input, timeout), check)

    @staticmethod
    def _systemd_run(cmd, unit: str, env: dict[str, str] | None) -> list[str]:
        setenv = [arg for k, v in (env or {}).items() for arg in ("-E", f"{k}={v}")]
        # User=root: HOME, USER, LOGNAME and SHELL are set as in a root login or under sudo.
        # A fixed description: the default one is the command line, which would put the
        # arguments (an admin password, say) into the journal the tests search for secrets.
        return ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
                "--property=User=root", f"--unit={unit}", f"--description=testbed command {unit}",
                *setenv, *cmd]

    def _exec_argv(self, cmd, extra_env: tuple[str, ...] = ()) -> list[str]:
        leader = self._leader()
        if leader is None:
            raise RuntimeError(f"testbed {self.name} is not up")
        env = [f"PATH={PATH_INSIDE}", "HOME=/root", "LANG=C.UTF-8", *self._target_environment(), *extra_env]
        # --all also takes the target's root and cwd (util-linux 2.38's --root --wd=/ breaks
        # getcwd() inside); env -i keeps the host's environment (PIP_*, ...) out.
        return ["nsenter", f"--target={leader}", "--all", "env", "-i", *env, *cmd]

    def _target_environment(self) -> list[str]:
        """The target's /etc/environment, which a login would get from pam_env."""
        try:
            lines = (self.root() / "etc/environment").read_text().splitlines()
        except FileNotFoundError:
            return []
        matches = (re.fullmatch(r"""([A-Za-z_]\w*)=(["']?)(.*)\2""", line.strip()) for line in lines)
        return [f"{m[1]}={m[3]}" for m in matches if m]

    def _boot(self, timeout: float) -> None:
        """Start nspawn on the existing root dir and wait until the target has booted."""
        t0 = time.monotonic()
        for cgroup in self._cgroups:
            cgroup.mkdir(exist_ok=True)
        argv = [
            "systemd-nspawn", "--quiet", "--boot", f"--directory={self.root()}", f"--machine={self.name}",
            # No systemd/machined on the host: nothing to register with or to make a scope unit.
            "--register=no", "--keep-unit",
            "--resolv-conf=copy-host", "--timezone=off", "--console=read-only",
            *([] if self.network else ["--private-network"]),
            *(f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro.items()),
            *(f"--bind={host}:{inside}" for host, inside in self.binds_rw.items()),
        ]
        # Pure cgroup2 inside, like a real bookworm VM; the host's hybrid mode makes a
        # lingering user@.service stall poweroff for 90 s.
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        with open(self._console, "ab") as console:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True, preexec_fn=self._enter_cgroups)
        self._pidfile.write_text(f"{self._proc.pid}\n")

        deadline = t0 + timeout
        state = err = ""
        while time.monotonic() < deadline and self._nspawn_pid() is not None:
            if self._leader() is not None:
                try:
                    result = self.exec("systemctl", "is-system-running", "--wait",
                                       check=False, timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    break
                except RuntimeError:  # nspawn died meanwhile: reported below
                    continue
                state, err = result.stdout.strip(), result.stderr.strip()
                if state in ("running", "degraded"):
                    _log(f"{self.name}: {state} {time.monotonic() - t0:.1f} s after start")
                    if state == "degraded":
                        _log(self.exec("systemctl", "--failed", "--no-pager", check=False).stdout)
                    return
            # Until PID 1 has set up its private socket, systemctl fails with
            # "Failed to connect to bus": retry.
            time.sleep(0.1)
        problem = (f"systemd-nspawn exited with {self._proc.returncode}" if self._proc.poll() is not None
                   else f"not booted within {timeout:.0f} s (state {state!r}, {err!r})")
        raise RuntimeError(f"{self.name}: {problem}; console:\n{_tail(self._console.read_text(errors='replace'))}")

    def _enter_cgroups(self) -> None:
        # Runs in the forked child before exec. With --keep-unit nspawn creates supervisor/ and
        # payload/ below its own cgroup: give it one per target, or targets collide in the root.
        for cgroup in self._cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def _nspawn_pid(self) -> int | None:
        """PID of this target's live systemd-nspawn, if any (the CLI's `up` ran in another process)."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int(self._pidfile.read_text())
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            return None
        comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        return pid if comm == "systemd-nspawn" and state != "Z" else None

    def _leader(self) -> int | None:
        """The target's init as seen from the host: the child of nspawn in a new PID namespace."""
        nspawn = self._nspawn_pid()
        if nspawn is None:
            return None
        try:
            own_ns = os.readlink(f"/proc/{nspawn}/ns/pid")
            children = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()
        except OSError:
            return None
        for child in children:
            try:
                if os.readlink(f"/proc/{child}/ns/pid") != own_ns:
                    return int(child)
            except OSError:
                continue
        return None

    def _cgroup_busy(self) -> bool:
        for dirpath, _, _ in os.walk(self._cgroup2):
            try:
                if Path(dirpath, "cgroup.procs").read_text().strip():
                    return True
            except OSError:
                continue
        return False

    def _wait_stopped(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._nspawn_pid() is not None or self._cgroup_busy():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _clean_runtime(self) -> None:
        """Remove what a stopped nspawn leaves behind: its cgroups and its propagation directory."""
        deadline = time.monotonic() + 5
        for cgroup in self._cgroups:
            # Depth-first; a cgroup stays busy for a moment after its last process was reaped.
            while cgroup.exists():
                for dirpath, _, _ in os.walk(cgroup, topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
                if cgroup.exists():
                    if time.monotonic() > deadline:
                        _log(f"WARNING: could not remove {cgroup}")
                        break
                    time.sleep(0.1)
        # nspawn refuses to delete it itself because /run is not a tmpfs on this host.
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throw-away Debian target with systemd as PID 1.")
    parser.add_argument("--name", default="hubstead-tb")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hubstead-testbed"))
    parser.add_argument("--bind-ro", action="append", default=[], metavar="HOST:INSIDE")
    parser.add_argument("--bind", action="append", default=[], metavar="HOST:INSIDE")
    parser.add_argument("action", choices=["up", "down", "exec", "run"])
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    tb = Testbed(args.name, binds_ro=dict(b.split(":", 1) for b in args.bind_ro),
                 binds_rw=dict(b.split(":", 1) for b in args.bind), work=args.work)
    if args.action == "up":
        tb.up()
        print(tb.root())
        return 0
    if args.action == "down":
        tb.down()
        return 0
    if not args.cmd:
        parser.error(f"{args.action} needs a command")
    cmd = args.cmd if args.action == "exec" else Testbed._systemd_run(args.cmd, _unit_name(), None)
    # Inherit the terminal, so that `exec bash` is interactive.
    return subprocess.call(tb._exec_argv(cmd, (f"TERM={os.environ.get('TERM', 'dumb')}",)))


if __name__ == "__main__":
    sys.exit(main())
