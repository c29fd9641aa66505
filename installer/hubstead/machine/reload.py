"""Restart the hub or the proxy so they run with the current settings, and wait until
they answer again. User servers are separate units and keep running through both."""

import subprocess
import time

from hubstead.config import schema
from hubstead.config.model import Settings
from hubstead.core import paths, state
from hubstead.core.errors import HubsteadError
from hubstead.machine import converge
from hubstead.machine.health import wait_for_hub


class PendingApply(HubsteadError, RuntimeError):
    """Settings changed that a restart can't apply (they change the machine)."""


def check_nothing_to_apply(effective: Settings) -> None:
    applied = state.load_applied()
    if applied is None:
        return
    pending = schema.machine_keys(converge.changed_keys(applied, effective))
    if pending:
        raise PendingApply(f"{', '.join(pending)} changed since the machine was last set up: "
                           "run `sudo hubstead config apply` (a reload can't apply it)")


def hub(effective: Settings) -> float:
    """Restart the hub; returns the seconds until its API answered through the proxy."""
    check_nothing_to_apply(effective)
    start = time.monotonic()
    subprocess.run(["systemctl", "restart", paths.HUB_UNIT], check=True)
    wait_for_hub(effective)
    state.write_hub_digest(effective)
    return time.monotonic() - start


def proxy(effective: Settings) -> float:
    """Re-render traefik's static config and restart it; routes come back from the rules
    directory. Returns the seconds until the hub answered through it again."""
    check_nothing_to_apply(effective)
    start = time.monotonic()
    result = converge.run(converge.role_variables(effective), roles=("proxy",))
    if result.changed == 0:  # otherwise the role's handler already restarted traefik
        subprocess.run(["systemctl", "restart", paths.PROXY_UNIT], check=True)
    wait_for_hub(effective)
    return time.monotonic() - start
