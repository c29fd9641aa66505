"""Is the hub answering, and at which address."""

import ssl
import subprocess
import time
import urllib.error
import urllib.request

from hubstead.config.model import Settings
from hubstead.core import paths
from hubstead.core.errors import HubsteadError


class HubDown(HubsteadError, RuntimeError):
    """The hub did not answer in time; the message says where to look."""


def hub_url(effective: Settings, host: str = "127.0.0.1") -> str:
    https = effective["https"]["mode"] != "off"
    scheme, port = ("https", effective["https"]["port"]) if https else ("http", effective["http"]["port"])
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    default_port = paths.HTTPS_PORT if https else paths.HTTP_PORT
    return f"{scheme}://{host}{'' if port == default_port else f':{port}'}{effective['base_url']}"


def public_hosts() -> list[str]:
    """This machine's addresses, as a teacher would type them in a browser."""
    out = subprocess.run(["hostname", "--all-ip-addresses"], capture_output=True, text=True).stdout
    return out.split() or ["127.0.0.1"]


def wait_for_hub(effective: Settings, timeout: float = 120) -> float:
    """Wait until the hub's API answers through the proxy; returns the seconds waited."""
    section = effective["https"] if effective["https"]["mode"] != "off" else effective["http"]
    url = hub_url(effective, section["address"] or "127.0.0.1") + "hub/api/"
    # Through the proxy as it is: a self-signed or not-yet-trusted certificate is fine here.
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5, context=unverified) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() - start > timeout:
            raise HubDown(
                f"the hub did not answer at {url} within {timeout:.0f} s; "
                "see `journalctl -u jupyterhub -u traefik`"
            )
        time.sleep(0.3)
