"""Unix accounts behind hub users: created when the hub user is added, locked or
deleted (home archived) when it is removed.

``ensure`` is idempotent and cheap when there is nothing to do: the hub calls it for
every user in its database at every start.
"""

import hashlib
import os
import pwd
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from hubstead.core import paths, usernames
from hubstead.core.errors import HubsteadError
from hubstead.core.files import locked

HOME_MODE = 0o700
SHARED_LINK = "shared"  # ~/shared -> the course folder
SHADOW_FILE = Path("/etc/shadow")
# Hub users run code only inside their server's unit: no cron or at jobs, which would run
# outside its sandbox and limits, and outlive it. cron.deny is made if missing (cron ships
# none); at.deny is the at package's own file, only extended when it is there.
CRON_DENY = Path("/etc/cron.deny")
AT_DENY = Path("/etc/at.deny")
SCHEDULER_DENY_LOCK = paths.STATE_DIR / ".scheduler-deny.lock"  # spawns add entries in parallel
# The account's comment (GECOS) names the hub user it was made for; an e-mail address (a
# person's, which every account of the machine can read in /etc/passwd) only by a digest.
OWNER_COMMENT_PREFIX = "Hubstead user "
OWNER_DIGEST_PREFIX = "sha256-"  # no ":" in a passwd field


class AccountError(HubsteadError, RuntimeError):
    """The machine refused to change an account; the message has its reason."""


def exists(unix_name: str) -> bool:
    try:
        pwd.getpwnam(unix_name)
    except KeyError:
        return False
    return True


def _run(*cmd: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AccountError(f"{' '.join(cmd[:2])} … {cmd[-1]}: {result.stderr.strip()}")


def _expired(shadow_entry: list[str]) -> bool:
    expires = shadow_entry[7] if len(shadow_entry) > 7 else ""
    return expires.isdigit() and int(expires) * 86400 <= time.time()


def is_locked(unix_name: str) -> bool:
    """Locked by the removal policy: the account has expired. (Its Unix password is
    always locked: hub users log in through the hub, never with a Unix password.)"""
    entry = subprocess.run(["getent", "shadow", unix_name], capture_output=True, text=True).stdout.split(":")
    return _expired(entry)


def locked_accounts() -> set[str]:
    """The Unix names of all locked (expired) accounts, from one read of the shadow file:
    the teacher's page shows every student's state at once."""
    with open(SHADOW_FILE) as shadow:
        return {entry[0] for entry in (line.rstrip("\n").split(":") for line in shadow) if _expired(entry)}


def _owner_comment(hub_name: str) -> str:
    if "@" not in hub_name:
        return f"{OWNER_COMMENT_PREFIX}{hub_name}"
    # No more than the Unix name tells already: it ends in a (shorter) hash of the address.
    return f"{OWNER_COMMENT_PREFIX}{OWNER_DIGEST_PREFIX}{hashlib.sha256(hub_name.encode()).hexdigest()[:32]}"


def _check_owner(hub_name: str, unix_name: str) -> None:
    """Refuse an account that is not this hub user's own. Long names share a Unix name
    when their cut and hash agree (``averyveryverylong-8a5e4f`` is a valid hub name too,
    and a 6-digit hash is easy to match), and the machine may have its own ``jupyter-*``
    accounts: the account's comment, written when Hubstead made it, says whose it is
    (before e-mail addresses left the comment, it named them: see ``ensure``)."""
    comment = pwd.getpwnam(unix_name).pw_gecos
    if comment in (_owner_comment(hub_name), f"{OWNER_COMMENT_PREFIX}{hub_name}"):
        return
    owner = comment.removeprefix(OWNER_COMMENT_PREFIX) if comment.startswith(OWNER_COMMENT_PREFIX) else None
    raise AccountError(f"Unix account {unix_name} belongs to "
                       + (f"hub user {owner!r}" if owner and not owner.startswith(OWNER_DIGEST_PREFIX) else
                          "another hub user" if owner else "another user of this machine")
                       + f", not to {hub_name!r}: choose another name")


def hub_accounts() -> list[str]:
    """The Unix names of every account Hubstead made (its comment says so)."""
    return sorted(entry.pw_name for entry in pwd.getpwall() if entry.pw_gecos.startswith(OWNER_COMMENT_PREFIX))


def _allow_scheduling(unix_name: str) -> None:
    """Take a deleted account off the deny lists (a later account of that name is new)."""
    with locked(SCHEDULER_DENY_LOCK):
        for deny in (CRON_DENY, AT_DENY):
            lines = deny.read_text().splitlines() if deny.exists() else []
            kept = [line for line in lines if line.strip() != unix_name]
            if kept != lines:
                with open(deny, "w") as f:  # in place: keeps the file's owner and mode
                    f.write("".join(line + "\n" for line in kept))


def check_available(hub_name: str) -> None:
    """Refuse, changing nothing, what ``ensure`` would refuse: an account of that Unix
    name that is not this hub user's."""
    unix_name = usernames.unix_name(usernames.validate(hub_name))
    if exists(unix_name):
        _check_owner(hub_name, unix_name)


def _deny_scheduling(unix_name: str) -> None:
    with locked(SCHEDULER_DENY_LOCK):  # spawns run this in parallel
        for deny in (CRON_DENY, AT_DENY):
            if deny is AT_DENY and not deny.exists():
                continue
            listed = deny.read_text().split() if deny.exists() else []
            if unix_name not in listed:
                # Appending keeps the file's owner and mode (at.deny is root:daemon 0640).
                with open(deny, "a") as f:
                    f.write(unix_name + "\n")


def ensure(hub_name: str) -> str:
    """Make sure hub user ``hub_name`` has a usable Unix account and a home others
    can't read, with the course folder linked in. Validates the name before touching
    the machine; returns the Unix name."""
    hub_name = usernames.validate(hub_name)
    unix_name = usernames.unix_name(hub_name)
    if not exists(unix_name):
        _run("useradd", "--create-home", "--user-group", "--groups", paths.USERS_GROUP,
             "--shell", "/bin/bash", "--comment", _owner_comment(hub_name), unix_name)
    else:
        _check_owner(hub_name, unix_name)
        if pwd.getpwnam(unix_name).pw_gecos != _owner_comment(hub_name):  # an older install's
            _run("usermod", "--comment", _owner_comment(hub_name), unix_name)
        if is_locked(unix_name):  # removed earlier with the account locked, now back
            _run("usermod", "--expiredate", "", unix_name)
    _deny_scheduling(unix_name)
    account = pwd.getpwnam(unix_name)
    home = Path(account.pw_dir)
    if not home.exists():  # its home was archived or deleted when the user was removed
        shutil.copytree("/etc/skel", home, symlinks=True)
        _run("chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(home))
    if home.stat().st_mode & 0o777 != HOME_MODE:
        home.chmod(HOME_MODE)
    link = home / SHARED_LINK
    if paths.SHARED_DIR.is_dir() and not link.is_symlink() and not link.exists():
        link.symlink_to(paths.SHARED_DIR)
        os.lchown(link, account.pw_uid, account.pw_gid)
    return unix_name


def remove(hub_name: str, home_policy: str, account_policy: str) -> str | None:
    """Apply the removal policy to hub user ``hub_name``'s account. Returns the archive's
    path when the home was archived."""
    unix_name = usernames.unix_name(usernames.validate(hub_name))
    if not exists(unix_name):
        return None
    _check_owner(hub_name, unix_name)
    return remove_account(unix_name, home_policy, account_policy)


def remove_account(unix_name: str, home_policy: str, account_policy: str) -> str | None:
    """``remove`` of an account known to be Hubstead's (one of hub_accounts())."""
    home = Path(pwd.getpwnam(unix_name).pw_dir)
    # Nothing of the user's may keep running (a terminal, a cron job).
    subprocess.run(["pkill", "--signal", "KILL", "--uid", unix_name], capture_output=True)
    archive = None
    if home.is_dir() and home_policy == "archive":
        paths.ARCHIVE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        archive = paths.ARCHIVE_DIR / f"{unix_name}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(home, arcname=unix_name)
        archive.chmod(0o600)
    if home.is_dir() and home_policy in ("archive", "delete"):
        shutil.rmtree(home)
    if account_policy == "delete":
        if home.is_dir():
            # A kept home would otherwise belong to whoever gets this UID next.
            _run("chown", "-R", "--no-dereference", "root:root", str(home))
        _run("userdel", unix_name)
        _allow_scheduling(unix_name)
    else:
        # Expired accounts can't log in by any means (ssh keys, cron, su) until re-added.
        _run("usermod", "--expiredate", "1", unix_name)
    return str(archive) if archive else None
