"""Bring the machine to the settings: TLS material first, then the roles, then what
only makes sense once they ran. Used by `hubstead install` and `hubstead config apply`."""

from collections.abc import Mapping
from typing import Any

from hubstead.config.model import Settings
from hubstead.core import paths, state
from hubstead.machine import converge, packages, tls
from hubstead.machine.health import wait_for_hub


def _entrypoint(effective: Mapping[str, Any] | None) -> str:
    return "http" if not effective or effective["https"]["mode"] == "off" else "https"


def run(effective: Settings, roles=converge.ROLES, on_task=None,
        upgrade: bool = False) -> tuple[converge.Result, float]:
    """Returns the converge result and the seconds the hub took to answer afterwards.

    TLS problems (a preflight, a bad manual certificate) raise TLSError before the
    roles run, so the machine keeps serving as it did. ``upgrade``: the user environment
    gets the newest versions its pins allow.
    """
    tls.prepare(effective)
    packages.install_plugins(effective)  # their hooks add to the roles' variables
    previous = state.load_applied()
    # The hub reads the proxy's settings from the applied config when the roles restart it.
    state.save_applied(effective)
    if previous and _entrypoint(previous) != _entrypoint(effective):
        # The hub keeps routes it finds in place, whatever their entrypoint: make it
        # add them all again, on the new one (user servers keep running meanwhile).
        paths.HUB_ROUTES_FILE.unlink(missing_ok=True)
    try:
        variables = {**converge.role_variables(effective), "hubstead_user_env_upgrade": upgrade}
        result = converge.run(variables, roles=roles, on_task=on_task)
    except Exception:
        if previous is not None:
            state.save_applied(previous)
        raise
    if "hub" in roles:  # its handler restarted the hub if the recorded digest differed
        state.write_hub_digest(effective)
    tls.finish(effective)
    return result, wait_for_hub(effective)
