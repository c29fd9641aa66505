import time
from pathlib import Path

import pytest
import requests
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession
from targethost import target_host
from testbed import SUITE, Testbed

CHECKOUT = Path(__file__).resolve().parents[2]


class InstalledHub:
    def __init__(self, tb: Testbed, install_output: str):
        self.tb = tb
        self.install_output = install_output

    def bootstrap(self, *extra: str):
        return self.tb.run(
            "python3", "/opt/src/bin/bootstrap.py", "--from", "/opt/src", "--user-env", "venv",
            "--admin", f"{ADMIN}:{ADMIN_PASSWORD}", *extra, timeout=1200,
        )

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


@pytest.fixture(scope="module")
def hub():
    """One installed target for a module's tests."""
    target = installed("hubstead-e2e")
    try:
        yield target
    finally:
        target.tb.down()


@pytest.fixture(scope="module")
def targets():
    """Fresh targets one after the other, as ``targets(name)``: they share this host's
    ports, so the one before is taken down first."""
    booted: list[InstalledHub] = []

    def boot(name: str) -> InstalledHub:
        while booted:
            booted.pop().tb.down()
        booted.append(installed(name))
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
