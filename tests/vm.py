#!/usr/bin/env python3
"""A real-kernel target: a QEMU virtual machine booting Debian's own kernel (systemd,
cgroup v2 with every controller, cgroup-BPF), for what the nspawn targets of
tests/testbed.py cannot enforce: memory and CPU limits, IPAddressDeny.

KVM guests do not run on these machines, so the VM runs under QEMU's software emulation
(TCG): about 8x slower than native. Installing Hubstead in there would take long, so the
disk is made from an nspawn target: Hubstead is installed in a Testbed as usual, Debian's
kernel, an initramfs and sshd are added, the target is powered off and its root file
system becomes an ext4 image (``mkfs.ext4 -d``, no loop device). The image is cached under
the testbed cache, keyed by the rootfs and by this checkout's bootstrap, installer, roles
and templates; each boot writes to a throw-away overlay (``snapshot=on``), so every VM
starts from the freshly installed state.

Library::

    with VM(vm_image(install)) as vm:          # install(tb): puts Hubstead on the Testbed
        vm.run("systemctl", "status")          # as root, over ssh
        requests.get(vm.base_url)              # the VM's port 80

Needs root (the nspawn build) and holds the host-network lock of tests/testbed.py while it
builds or runs: the VM uses both cores, so it never runs beside another test run's target.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import inspect
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from testbed import (
    CACHE_DIR,
    HostNetwork,
    Testbed,
    _capture,
    _checked,
    _log,
    _tail,
    remove_tree,
    rootfs_tarball,
)

CHECKOUT = Path(__file__).resolve().parents[1]
# What an install is made of: the image is rebuilt when any of it changes.
SOURCES = ("bin", "installer", "roles", "templates", "pyproject.toml", "tests/integration/conftest.py")
# Bump when _build_image changes, so that cached images are rebuilt.
IMAGE_FORMAT = 1
HOST_TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
              "mkfs.ext4": "e2fsprogs", "ssh": "openssh-client"}
GUEST_PACKAGES = ("linux-image-amd64", "initramfs-tools", "udev", "kmod", "openssh-server")
IMAGE_SIZE = "8G"  # sparse; the installed root holds about 2 GiB
MEMORY_MIB = 2048
CPUS = 2
# QEMU's user-mode network: the guest's DNS forwarder.
SLIRP_DNS = "10.0.2.3"
BOOT_TIMEOUT = 600  # TCG: the kernel, systemd and the hub start about 8x slower than native
STOP_TIMEOUT = 90


def ensure_host_tools() -> None:
    """Install QEMU, qemu-img, mkfs.ext4 and ssh when missing (CI starts on a fresh machine)."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    _log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def _source_key(install: Callable[[Testbed], None]) -> str:
    key = hashlib.sha256(f"{IMAGE_FORMAT}\n{rootfs_tarball().name}\n{','.join(GUEST_PACKAGES)}\n".encode())
    # install's own code and the settings it reads (its module's constants).
    key.update(inspect.getsource(install).encode())
    key.update(repr([(name, install.__globals__[name]) for name in install.__code__.co_names
                     if isinstance(install.__globals__.get(name), (str, int, float, tuple))]).encode())
    for top in SOURCES:
        base = CHECKOUT / top
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts:
                continue
            key.update(f"\n{f.relative_to(CHECKOUT)}\n".encode() + f.read_bytes())
    return key.hexdigest()[:16]


def vm_image(install: Callable[[Testbed], None]) -> Path:
    """The cached image directory (disk.img, vmlinuz, initrd.img, the root ssh key) of a
    machine where ``install(testbed)`` installed Hubstead; built on first use (the key
    includes install's code and its module's constants it reads)."""
    ensure_host_tools()
    image = CACHE_DIR / f"vm-{_source_key(install)}"
    if (image / "disk.img").is_file():
        return image
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".vm-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building the same image
        if not (image / "disk.img").is_file():
            HostNetwork.acquire("vm-image")
            try:
                _build_image(install, image)
            finally:
                HostNetwork.release()
    return image


def _build_image(install: Callable[[Testbed], None], image: Path) -> None:
    t0 = time.monotonic()
    part = image.with_name(image.name + ".part")
    remove_tree(part)
    part.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hubstead-vm", "-f", str(part / "id_ed25519")],
                   check=True)
    tb = Testbed(name="hubstead-vm-build", binds_ro={str(CHECKOUT): "/opt/src"})
    tb.up()
    try:
        install(tb)
        _log(f"vm image: Hubstead installed at {time.monotonic() - t0:.0f} s; adding {' '.join(GUEST_PACKAGES)}")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        tb.run("apt-get", "update", "-q", env=env, timeout=600)
        tb.run("apt-get", "install", "-y", "-q", "--no-install-recommends", *GUEST_PACKAGES, env=env, timeout=900)
        root = tb.root()
        # The root disk's drivers: in the initramfs or built into the kernel.
        modules = tb.exec("sh", "-c", "lsinitramfs /boot/initrd.img-*; cat /lib/modules/*/modules.builtin").stdout
        for module in ("virtio_pci", "virtio_blk"):
            if f"/{module}.ko" not in modules:
                raise RuntimeError(f"the initramfs lacks {module}")
        (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 0\n")
        (root / "etc/systemd/network/20-vm.network").write_text("[Match]\nName=en*\n\n[Network]\nDHCP=yes\n")
        tb.exec("systemctl", "enable", "systemd-networkd", "ssh")
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(part / "id_ed25519.pub", ssh_dir / "authorized_keys")
        (ssh_dir / "authorized_keys").chmod(0o600)
        tb.poweroff()
        # nspawn copied the host's resolver in; the guest asks QEMU's.
        resolv = root / "etc/resolv.conf"
        resolv.unlink(missing_ok=True)
        resolv.write_text(f"nameserver {SLIRP_DNS}\n")
        for name in ("vmlinuz", "initrd.img"):
            shutil.copyfile(next(root.glob(f"boot/{name}-*")), part / name)
        disk = part / "disk.img"
        subprocess.run(["truncate", "-s", IMAGE_SIZE, str(disk)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "hubstead-vm", "-d", str(root), str(disk)], check=True)
    finally:
        tb.down()
    part.rename(image)
    used = int(subprocess.run(["du", "-sm", str(image)], check=True, capture_output=True, text=True).stdout.split()[0])
    _log(f"built {image} ({used} MiB) in {time.monotonic() - t0:.0f} s")


def _die_with_parent() -> None:
    """In QEMU's child before exec: a test run that is killed takes its VM along (it would
    otherwise run on, on both cores, after the host-network lock is gone)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VM:
    """One boot of the cached image, from its pristine state; root inside over ssh."""

    def __init__(self, image: Path, name: str = "hubstead-vm", memory_mib: int = MEMORY_MIB, cpus: int = CPUS,
                 work: Path = Path("/tmp/hubstead-testbed")):
        self.image = image
        self.name = name
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.dir = Path(work) / name
        self.console = self.dir / "console.log"
        self.ssh_port = self.http_port = 0
        self._proc: subprocess.Popen | None = None
        self._holds_network = False
        self.boot_seconds = 0.0

    @property
    def base_url(self) -> str:
        """The VM's port 80 (the hub's proxy), forwarded to the host's loopback."""
        return f"http://127.0.0.1:{self.http_port}"

    def __enter__(self) -> VM:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        HostNetwork.acquire(self.name)
        self._holds_network = True
        try:
            remove_tree(self.dir)
            self.dir.mkdir(parents=True)
            self.ssh_port, self.http_port = _free_port(), _free_port()
            self._boot()
        except BaseException:
            self.down()
            raise

    def _boot(self) -> None:
        t0 = time.monotonic()
        argv = [
            "qemu-system-x86_64", "-name", self.name, "-accel", "tcg,thread=multi", "-cpu", "max",
            "-m", str(self.memory_mib), "-smp", str(self.cpus),
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.console}", "-no-reboot",
            "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 panic=-1",
            # snapshot=on: the guest's writes go to a temporary overlay, the image stays pristine.
            "-drive", f"file={self.image / 'disk.img'},format=raw,if=virtio,snapshot=on",
            "-netdev", (f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                        f"hostfwd=tcp:127.0.0.1:{self.http_port}-:80"),
            "-device", "virtio-net-pci,netdev=n0,romfile=",
        ]
        with open(self.dir / "qemu.log", "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, env=dict(os.environ, TMPDIR=str(self.dir)),
                                          preexec_fn=_die_with_parent)
        deadline = t0 + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name}: QEMU exited with {self._proc.returncode}:\n"
                                   f"{(self.dir / 'qemu.log').read_text(errors='replace')}\n{self._console_tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = self.run("systemctl", "is-system-running", "--wait", check=False,
                                  timeout=max(1.0, deadline - time.monotonic()))
                state = result.stdout.strip()
                if state in ("running", "degraded"):
                    self.boot_seconds = time.monotonic() - t0
                    _log(f"{self.name}: {state} {self.boot_seconds:.1f} s after start")
                    if state == "degraded":
                        _log(self.run("systemctl", "--failed", "--no-pager", check=False).stdout)
                    return
            time.sleep(1)  # sshd not up yet
        raise RuntimeError(f"{self.name}: not booted within {BOOT_TIMEOUT} s (state {state!r}):\n"
                           f"{self._console_tail()}")

    def _console_tail(self) -> str:
        return _tail(self.console.read_text(errors="replace")) if self.console.exists() else "(no console)"

    def run(self, *cmd: str, input: str | bytes | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run cmd inside as root (a login shell's environment), over ssh."""
        argv = ["ssh", "-q", "-i", str(self.image / "id_ed25519"), "-p", str(self.ssh_port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "root@127.0.0.1", "--", shlex.join(cmd)]
        return _checked(_capture(argv, cmd, input, timeout), check)

    def down(self) -> None:
        t0 = time.monotonic()
        try:
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(Exception):
                    self.run("systemctl", "poweroff", check=False, timeout=30)
                try:
                    self._proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    _log(f"{self.name}: no orderly poweroff within {STOP_TIMEOUT} s; killing QEMU")
                    self._proc.kill()
                    self._proc.wait()
                _log(f"{self.name}: stopped in {time.monotonic() - t0:.1f} s")
            self._proc = None
            if self.console.exists():
                shutil.copyfile(self.console, self.dir.parent / f"{self.name}.console.log")
            remove_tree(self.dir)
        finally:
            if self._holds_network:
                HostNetwork.release()
                self._holds_network = False
