"""Hub user name <-> Unix account name.

Hub user ``x`` runs as Unix user ``jupyter-x``: the prefix keeps a hub user called
``root`` (or ``daemon``) from ever mapping onto a system account. Unix names are at
most 32 characters, so long hub names are cut and suffixed with a hash of the whole
name, which keeps the mapping stable and collision-resistant.

An e-mail address (what a school's Google or Microsoft sign-in gives) is a hub name
too. Its Unix name keeps what a person recognizes (the local part and the domain's
first label, each cut to Unix's characters) and always ends in a hash of the whole
address: ``alice@school.edu`` and ``alice@school.org``, or ``a.b@x.edu`` and
``a-b@x.edu``, share the readable part but never the hash.
"""

import hashlib
import re

from hubstead.core.errors import HubsteadError

UNIX_PREFIX = "jupyter-"
UNIX_NAME_MAX = 32
HUB_NAME_MAX = 64
HASH_LENGTH = 6
# What a hub name may look like, its length included; also the JupyterHub
# username_pattern, so the hub refuses the same names the CLI does. Either a plain name
# or an e-mail address (a local part with '+' too, '@', DNS labels).
_PLAIN = r"[a-z0-9][a-z0-9._-]*"
_EMAIL = r"[a-z0-9][a-z0-9._+-]*@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+"
HUB_NAME_PATTERN = rf"^(?=.{{1,{HUB_NAME_MAX}}}$)({_PLAIN}|{_EMAIL})$"
_HUB_NAME_RE = re.compile(HUB_NAME_PATTERN)
ALLOWED_DESCRIPTION = (
    "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, "
    f"or an e-mail address like alice@school.edu; at most {HUB_NAME_MAX} characters"
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


def _digest(hub_name: str) -> str:
    return hashlib.sha256(hub_name.encode()).hexdigest()[:HASH_LENGTH]


# What is left of a hashed Unix name for its readable part.
_READABLE_MAX = UNIX_NAME_MAX - len(UNIX_PREFIX) - HASH_LENGTH - 1


def unix_name(hub_name: str) -> str:
    """The Unix account of a (valid, normalized) hub user."""
    if "@" in hub_name:
        local, _, domain = hub_name.partition("@")
        # '+' is no Unix name character; runs of separators read as one.
        readable = re.sub(r"[^a-z0-9._-]+", "-", f"{local}-{domain.split('.')[0]}")
        readable = re.sub(r"([._-])[._-]+", r"\1", readable)[:_READABLE_MAX].rstrip("._-")
        return f"{UNIX_PREFIX}{readable}-{_digest(hub_name)}"
    full = UNIX_PREFIX + hub_name
    if len(full) <= UNIX_NAME_MAX:
        return full
    return f"{UNIX_PREFIX}{hub_name[:_READABLE_MAX]}-{_digest(hub_name)}"


def server_unit(hub_name: str) -> str:
    """The systemd unit of a hub user's server (hub.spawner names it after the account)."""
    return unix_name(hub_name) + ".service"
