"""Adding a class to the hub: the shared step of the teacher's page and
`hubstead users import`."""

from dataclasses import dataclass

from . import usernames
from .hubapi import HubAPI, HubAPIError
from .passwords import PasswordStore, WeakPassword, generate
from .roster import Row


@dataclass
class Outcome:
    line: int
    name: str
    result: str  # added | already there | refused
    detail: str


def ensure_group(api: HubAPI, group: str) -> None:
    try:
        api.request("POST", f"/groups/{group}")
    except HubAPIError as e:
        if e.status != 409:  # 409: it exists already
            raise


def join_group(api: HubAPI, name: str, group: str) -> None:
    ensure_group(api, group)
    api.request("POST", f"/groups/{group}/users", {"users": [name]})


SYSADMIN_REFUSED = "a sysadmin (users.sudoers): only root changes their account"


def enrol(api: HubAPI, store: PasswordStore, rows: list[Row], default_group: str | None = None,
          sysadmins: frozenset[str] = frozenset()):
    """Add the valid rows' users (the hub creates their Unix accounts), with their
    password or a generated one that must be changed at the first login. Rows naming
    one of ``sysadmins`` are refused (a teacher's list must not reach them).
    Returns (an outcome per row, {name: initial password} to show once)."""
    existing = {u["name"] for u in api.users()}
    outcomes, issued = [], {}
    for row in rows:
        error = row.error or (SYSADMIN_REFUSED if row.name in sysadmins else None)
        if error:
            outcomes.append(Outcome(row.line, row.name, "refused", error))
            continue
        group = row.group or default_group
        try:
            if row.name in existing:
                result, detail = "already there", "unchanged"
            else:
                api.add_user(row.name)
                password = row.password or generate()
                store.set(row.name, password, must_change=True)
                issued[row.name] = password
                result, detail = "added", f"Unix account {usernames.unix_name(row.name)}"
            if group:
                join_group(api, row.name, group)
                detail += f"; in group {group}"
        except (HubAPIError, WeakPassword) as e:
            result, detail = "refused", str(e)
        outcomes.append(Outcome(row.line, row.name, result, detail))
    return outcomes, issued


def reset_password(api: HubAPI, store: PasswordStore, name: str, password: str, must_change: bool) -> None:
    """A new password for ``name``, and every session and token of the old one ended
    (whoever knew it may be logged in). Raises WeakPassword before changing anything."""
    store.set(name, password, must_change=must_change)
    api.end_sessions(name)
