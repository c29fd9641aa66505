"""`hubstead status`: the hub, the proxy, the certificate, who is online, which servers
run and the memory they take, on one screen (or as JSON).

The hub's users come from the caller (the CLI asks the hub's API): this layer never
imports the hub's code. Servers are read from their slice, so they show even when the
hub does not answer.
"""

import datetime
from pathlib import Path

from hubstead.config.model import Settings
from hubstead.core import paths, systemd, usernames
from hubstead.machine.tls import status as tls_status

# Servers report activity to the hub every 5 minutes (and the hub reads the proxy's as
# often): a user with an open tab has activity at least this recent.
ONLINE_MINUTES = 10
MAX_SERVER_ROWS = 15  # one screen; --json lists them all


def unit_state(unit: str) -> dict:
    found = systemd.properties(unit, "ActiveState", "StateChangeTimestamp")
    return {"unit": unit, "state": found.get("ActiveState") or "unknown",
            "since": found.get("StateChangeTimestamp", "")}


def meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """The machine's memory in bytes: MemTotal and MemAvailable."""
    values = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def servers(hub_users: list[dict] | None) -> list[dict]:
    """Each running server: its unit, the hub user it is for (when the hub told us),
    the memory it uses and its cap."""
    owners = {usernames.server_unit(u["name"]): u["name"] for u in hub_users or []}
    return [{"user": owners.get(unit), "unit": unit,
             "memory": systemd.unit_memory(unit, paths.USERS_SLICE),
             "memory_max": systemd.memory_max(unit, paths.USERS_SLICE)}
            for unit in systemd.slice_services(paths.USERS_SLICE)]


def memory() -> dict:
    """All servers together against their slice's cap, and what the machine has left."""
    machine = meminfo()
    return {"servers": systemd.unit_memory(paths.USERS_SLICE, None),
            "servers_max": systemd.memory_max(paths.USERS_SLICE, None),
            "available": machine["MemAvailable"], "total": machine["MemTotal"]}


def _when(iso: str) -> datetime.datetime:
    # The hub writes UTC with a "Z", which fromisoformat reads only from Python 3.11 on.
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def online(hub_users: list[dict], now: datetime.datetime) -> list[str]:
    since = now - datetime.timedelta(minutes=ONLINE_MINUTES)
    return sorted(u["name"] for u in hub_users if u.get("last_activity") and _when(u["last_activity"]) >= since)


def gather(effective: Settings, hub_users: list[dict] | None) -> dict:
    """Everything `hubstead status` shows; ``hub_users`` None: the hub did not answer."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "hub": unit_state(paths.HUB_UNIT),
        "proxy": unit_state(paths.PROXY_UNIT),
        "certificate": tls_status.status(effective),
        "users": None if hub_users is None else {"total": len(hub_users), "online": online(hub_users, now)},
        "servers": servers(hub_users),
        "memory": memory(),
    }


def _unit_line(unit: dict) -> str:
    return f"{unit['state']}{' since ' + unit['since'] if unit['since'] else ''} ({unit['unit']})"


def _certificate_line(cert: dict) -> str:
    if cert["mode"] == "off":
        return "off (plain HTTP)"
    return f"{cert['mode']}, {'expires ' + cert['expires'] if 'expires' in cert else cert['served']}"


def format_status(info: dict) -> str:
    size = systemd.format_bytes
    users = info["users"]
    mem = info["memory"]
    cap = f" of {size(mem['servers_max'])} ({paths.USERS_SLICE})" if mem["servers_max"] else ""
    lines = [
        f"hub:          {_unit_line(info['hub'])}",
        f"proxy:        {_unit_line(info['proxy'])}",
        f"certificate:  {_certificate_line(info['certificate'])}",
        "users:        " + ("unknown: the hub does not answer" if users is None else
                            f"{len(users['online'])} online of {users['total']} "
                            f"(active in the last {ONLINE_MINUTES} minutes)"),
        f"servers:      {len(info['servers'])} running",
        f"memory:       servers {size(mem['servers'])}{cap}; machine {size(mem['available'])} "
        f"available of {size(mem['total'])}",
    ]
    ranked = sorted(info["servers"], key=lambda s: s["memory"] or 0, reverse=True)
    width = max((len(s["user"] or s["unit"]) for s in ranked), default=0)
    for server in ranked[:MAX_SERVER_ROWS]:
        limit = f" of {size(server['memory_max'])}" if server["memory_max"] else ""
        lines.append(f"  {(server['user'] or server['unit']).ljust(width)}  {size(server['memory'])}{limit}")
    if len(ranked) > MAX_SERVER_ROWS:
        lines.append(f"  … and {len(ranked) - MAX_SERVER_ROWS} more (hubstead status --json lists all)")
    return "\n".join(lines)
