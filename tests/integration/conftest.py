import contextlib
import fcntl
import hashlib
import re
import time
from pathlib import Path

import pytest
import requests
from browser import ARTIFACTS
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession
from targethost import target_host
from testbed import CACHE_DIR, SUITE, Testbed, remove_tree, rootfs_tarball

from hubstead.core import paths, usernames

CHECKOUT = Path(__file__).resolve().parents[2]
# What an installed machine is made of: a change to any of it makes a new installed image.
INSTALL_SOURCES = ("bin/bootstrap.py", "pyproject.toml", "installer", "roles", "templates")
INSTALL_ARGS = ("--from", "/opt/src", "--user-env", "venv", "--admin", f"{ADMIN}:{ADMIN_PASSWORD}")
IMAGE_KEEP_DAYS = 3  # images of other checkouts (branches, helpers' work trees) live this long


class InstalledHub:
    def __init__(self, tb: Testbed, install_output: str):
        self.tb = tb
        self.install_output = install_output

    def bootstrap(self, *extra: str):
        return self.tb.run("python3", "/opt/src/bin/bootstrap.py", *INSTALL_ARGS, *extra, timeout=1200)

    def home(self, unix_name: str) -> str:
        """A Unix account's home on the target."""
        return self.tb.run("getent", "passwd", unix_name).stdout.split(":")[5]

    def wait_http(self, url: str, timeout: float = 60, status: int | None = None) -> requests.Response:
        """The first answer below 500 (or with ``status``): traefik answers 404 before it
        has read its routes, and 502 until the hub behind a route listens."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = requests.get(url, timeout=5)
                if r.status_code == status if status else r.status_code < 500:
                    return r
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            time.sleep(0.3)


def installed(name: str, suite: str = SUITE) -> InstalledHub:
    """A freshly booted target with Hubstead installed by bootstrap.py from this checkout;
    the caller takes it down."""
    tb = Testbed(name=name, binds_ro={str(CHECKOUT): "/opt/src"}, suite=suite)
    tb.up()
    try:
        target = InstalledHub(tb, "")
        target.install_output = target.bootstrap().stdout
    except BaseException:
        tb.down()
        raise
    return target


def _image_key(suite: str) -> str:
    key = hashlib.sha256(f"{rootfs_tarball(suite).name}\n{INSTALL_ARGS}\n".encode())
    for source in INSTALL_SOURCES:
        top = CHECKOUT / source
        for f in sorted([top] if top.is_file() else top.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                key.update(f"\n{f.relative_to(CHECKOUT)}\n".encode() + f.read_bytes())
    return key.hexdigest()[:16]


def installed_image(suite: str = SUITE) -> tuple[Path, str]:
    """The root file system of a target that bootstrap.py installed from this checkout and
    then powered off, with the install's output: made once per change of the installer
    (the first call installs for real, later ones, in this run or the next, find it)."""
    image = CACHE_DIR / f"installed-{suite}-{_image_key(suite)}"
    with open(CACHE_DIR / ".image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be making the same image
        if not (image / "root").is_dir():
            for old in CACHE_DIR.glob(f"installed-{suite}-*"):
                if old != image and time.time() - old.stat().st_mtime > IMAGE_KEEP_DAYS * 86400:
                    remove_tree(old)
            target = installed("hubstead-image", suite)
            image.mkdir(exist_ok=True)
            (image / "install-output.txt").write_text(target.install_output)
            target.tb.save_image(image / "root")
        image.touch()  # in use: not pruned
    return image / "root", (image / "install-output.txt").read_text()


def copy_of_installed(name: str, suite: str = SUITE) -> InstalledHub:
    """A target booted from the installed image: a freshly installed hub in seconds."""
    root, install_output = installed_image(suite)
    tb = Testbed(name=name, binds_ro={str(CHECKOUT): "/opt/src"}, suite=suite, image=root)
    tb.up()
    return InstalledHub(tb, install_output)


@contextlib.contextmanager
def module_target(target: InstalledHub):
    try:
        yield target
    finally:
        target.tb.down()


@pytest.fixture(scope="module")
def hub():
    """A freshly installed hub for a module's tests (a copy of the installed image).
    Modules that test the install itself override it with ``installed()``."""
    with module_target(copy_of_installed("hubstead-e2e")) as target:
        yield target


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test keeps the journals of the targets that are up, and says where."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not Testbed.live:
        return
    folder = ARTIFACTS / "journals" / re.sub(r"[^\w.-]+", "_", item.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    for tb in list(Testbed.live):
        with contextlib.suppress(Exception):  # a target that is half down tells what it can
            save_journals(tb, folder / tb.name)
    report.sections.append(("target journals", f"saved in {folder}"))


def save_journals(tb: Testbed, folder: Path) -> None:
    """The whole boot's journal, and the hub's, the proxy's and every user server's apart."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = tb.exec("systemctl", "list-units", "--all", "--plain", "--no-legend", f"{usernames.UNIX_PREFIX}*",
                     check=False).stdout
    units = [paths.HUB_UNIT, paths.PROXY_UNIT, *(line.split()[0] for line in listed.splitlines() if line.strip())]
    for unit in ["", *units]:
        which = ["-u", unit] if unit else []
        out = tb.exec("journalctl", "-b", "--no-pager", "-o", "short-precise", *which, check=False, timeout=60)
        (folder / f"{unit or 'journal'}.txt").write_text(out.stdout + out.stderr)


@pytest.fixture(scope="module")
def targets():
    """Fresh targets one after the other, as ``targets(name)``: they share this host's
    ports, so the one before is taken down first."""
    booted: list[InstalledHub] = []

    def boot(name: str, copy: bool = False) -> InstalledHub:
        """``copy``: a copy of the installed image, not an install of its own (every copy has
        the image's secrets: a machine that must differ from another is installed)."""
        while booted:
            booted.pop().tb.down()
        booted.append(copy_of_installed(name) if copy else installed(name))
        return booted[-1]

    try:
        yield boot
    finally:
        while booted:
            booted.pop().tb.down()


@pytest.fixture(scope="module")
def host(hub):
    """testinfra's view of the hub's target (host.file(), host.user(), host.service(), ...)."""
    return target_host(hub.tb)


@pytest.fixture(scope="module")
def teacher(hub):
    """The admin's (a teacher's) logged-in session on the hub."""
    session = HubSession()
    assert session.login(ADMIN, ADMIN_PASSWORD).status_code == 302
    return session
