"""Hub user name <-> Unix account name.

Hub user ``x`` runs as Unix user ``jupyter-x``: the prefix keeps a hub user called
``root`` (or ``daemon``) from ever mapping onto a system account. Unix names are at
most 32 characters, so long hub names are cut and suffixed with a hash of the whole
name, which keeps the mapping stable and collision-resistant.
"""

import hashlib
import re

from hubstead.core.errors import HubsteadError

UNIX_PREFIX = "jupyter-"
UNIX_NAME_MAX = 32
HUB_NAME_MAX = 64
# What a hub name may look like, its length included; also the JupyterHub
# username_pattern, so the hub refuses the same names the CLI does.
HUB_NAME_PATTERN = rf"^[a-z0-9][a-z0-9._-]{{0,{HUB_NAME_MAX - 1}}}$"
_HUB_NAME_RE = re.compile(HUB_NAME_PATTERN)
ALLOWED_DESCRIPTION = (
    "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, "
    f"at most {HUB_NAME_MAX} characters"
)


# A group's name (a hub group, or a Unix group in users.extra_user_groups): it goes into
# API paths, config keys and gpasswd's arguments.
GROUP_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_GROUP_RE = re.compile(rf"^{GROUP_PATTERN}$")
GROUP_MAX = 64
GROUP_ALLOWED = f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {GROUP_MAX} characters"


class InvalidUsername(HubsteadError, ValueError):
    """A name that cannot be a hub user (and so cannot get a Unix account)."""


class InvalidGroupName(HubsteadError, ValueError):
    """A name that cannot be a group."""


def validate_group(name: str) -> str:
    """The group name, stripped, or InvalidGroupName saying what is allowed."""
    stripped = name.strip()
    if len(stripped) > GROUP_MAX or not _GROUP_RE.match(stripped):
        raise InvalidGroupName(f"invalid group name {name!r}: use {GROUP_ALLOWED}")
    return stripped


def normalize(name: str) -> str:
    """Lowercase and strip, as JupyterHub's Authenticator.normalize_username does."""
    return name.strip().lower()


def validate(name: str) -> str:
    """Return the normalized hub name, or raise InvalidUsername saying what is allowed."""
    normalized = normalize(name)
    if not _HUB_NAME_RE.match(normalized):
        raise InvalidUsername(f"invalid user name {name!r}: use {ALLOWED_DESCRIPTION}")
    return normalized


def unix_name(hub_name: str) -> str:
    """The Unix account of a (valid, normalized) hub user."""
    full = UNIX_PREFIX + hub_name
    if len(full) <= UNIX_NAME_MAX:
        return full
    digest = hashlib.sha256(hub_name.encode()).hexdigest()[:6]
    keep = UNIX_NAME_MAX - len(UNIX_PREFIX) - len(digest) - 1
    return f"{UNIX_PREFIX}{hub_name[:keep]}-{digest}"


def server_unit(hub_name: str) -> str:
    """The systemd unit of a hub user's server (hub.spawner names it after the account)."""
    return unix_name(hub_name) + ".service"
