"""Bring the machine to the settings: TLS material first, then the roles, then what
only makes sense once they ran. Used by `hubstead install` and `hubstead config apply`."""

from . import converge, tls
from .health import wait_for_hub


def apply(effective: dict, roles=converge.ROLES, on_task=None) -> tuple[converge.Result, float]:
    """Returns the converge result and the seconds the hub took to answer afterwards.

    TLS problems (a preflight, a bad manual certificate) raise TLSError before the
    roles run, so the machine keeps serving as it did.
    """
    tls.prepare(effective)
    result = converge.run(converge.role_variables(effective), roles=roles, on_task=on_task)
    converge.save_applied(effective)
    tls.finish(effective)
    return result, wait_for_hub(effective)
