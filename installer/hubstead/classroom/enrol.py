"""Enrolment: the one way users are added, reset, unlocked and removed, whether from
`hubstead users ...` or the teacher's page. Each action is written to the audit trail.

Adding a user validates the name (and password) before changing anything, adds the hub
user (the authenticator's add_user hook creates the Unix account: once), sets the
password and joins the group.

First-login policy: a password chosen by someone other than the user (generated, from
a class list, typed on the teacher's page, `users add --generate`) must be changed at
the first login. A password given as final is kept: `hubstead users add
--password-stdin` (for scripts, and for accounts whose owner chose it) and the
installer's `--admin NAME:PASSWORD`, typed by the admin themself. A user who is already
there keeps the password they have; one who has none (added from JupyterHub's admin
page or API) gets the new one.
"""

from dataclasses import dataclass

from hubstead.classroom.roster import Row
from hubstead.core import audit, usernames
from hubstead.core.errors import HubsteadError
from hubstead.core.passwords import PasswordStore, check_strength, generate
from hubstead.hub.hubapi import HubAPI, HubAPIError

SYSADMIN_REFUSED = "a sysadmin (users.sudoers): only root changes their account"


class Refused(HubsteadError, ValueError):
    """Who acts may not change this user."""


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


def target(name: str, sysadmins: frozenset[str] = frozenset()) -> str:
    """The valid hub name to act on; Refused if it is one of ``sysadmins`` (whom a
    teacher must not reach)."""
    name = usernames.validate(name)
    if name in sysadmins:
        raise Refused(f"{name} is {SYSADMIN_REFUSED}")
    return name


def add(api: HubAPI, store: PasswordStore, name: str, password: str | None, *, final: bool = False,
        group: str | None = None, sysadmins: frozenset[str] = frozenset(),
        actor: str | None = None) -> tuple[bool, bool]:
    """Add ``name`` with ``password`` (None: no Hubstead password) and into ``group``.
    ``final``: the password is kept at the first login (see the module's policy).
    Returns (whether the hub user is new, whether the password was set)."""
    name = target(name, sysadmins)
    if password is not None:
        check_strength(password)
    if group is not None:
        group = usernames.validate_group(group)
    added = api.add_user(name)
    if added:
        audit.record("user-added", name, actor)
    password_set = False
    if password is not None and (added or not store.has(name)):
        store.set(name, password, must_change=not final)
        audit.record("password-set", name, actor, must_change=str(not final).lower())
        password_set = True
    if group:
        join_group(api, name, group)
        audit.record("group-joined", name, actor, group=group)
    return added, password_set


def enrol(api: HubAPI, store: PasswordStore, rows: list[Row], default_group: str | None = None,
          sysadmins: frozenset[str] = frozenset(), actor: str | None = None):
    """Add the valid rows' users with their password or a generated one (to be changed
    at the first login); every row gets an outcome, a refused row changes nothing.
    Returns (an outcome per row, {name: initial password} to show once)."""
    outcomes, issued = [], {}
    for row in rows:
        group = row.group or default_group
        password = row.password or generate()
        try:
            if row.error:
                raise Refused(row.error)
            added, password_set = add(api, store, row.name, password, group=group,
                                      sysadmins=sysadmins, actor=actor)
        except HubsteadError as e:
            outcomes.append(Outcome(row.line, row.name, "refused", str(e)))
            continue
        if password_set:
            issued[row.name] = password
        detail = f"Unix account {usernames.unix_name(row.name)}" if added else \
            ("password set" if password_set else "unchanged")
        if group:
            detail += f"; in group {group}"
        outcomes.append(Outcome(row.line, row.name, "added" if added else "already there", detail))
    return outcomes, issued


def reset_password(api: HubAPI, store: PasswordStore, name: str, password: str, must_change: bool,
                   actor: str | None = None) -> None:
    """A new password for ``name``, and every session and token of the old one ended
    (whoever knew it may be logged in). Raises WeakPassword before changing anything."""
    store.set(name, password, must_change=must_change)
    api.end_sessions(name)
    audit.record("password-reset", name, actor, must_change=str(must_change).lower())


def unlock(store: PasswordStore, name: str, actor: str | None = None) -> bool:
    """Let ``name`` log in again after too many wrong passwords; False: no such password."""
    if not store.unlock(name):
        return False
    audit.record("user-unlocked", name, actor)
    return True


def remove(api: HubAPI, name: str, actor: str | None = None) -> None:
    """Remove ``name`` from the hub: it stops the server, and its delete_user hook
    forgets the password and applies users.removal."""
    api.request("DELETE", f"/users/{name}", None, 120)
    audit.record("user-removed", name, actor)
