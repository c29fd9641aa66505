"""The settings schema: every key of config.yaml once, with its check, its default, a
one-line doc and what makes a change to it take effect. The defaults, the validation
(hubstead.config), which roles a change needs, what `reload` refuses, what the hub
follows as applied (hubstead.hub.settings) and the README's settings tables
(hubstead.config.doc) are all read from SCHEMA.

Plain dataclasses and check functions, not pydantic, jsonschema or traitlets: the
admin-facing contract is the exact one-line message each check gives (key, value, what
is allowed), which those libraries would each have us rewrite from their own error
objects; keys named by the admin (``limits.groups.<group>.memory``) and authenticator
traits checked against a class chosen at run time fit none of their static models; and
this module stays importable without JupyterHub or a new dependency.
"""

import functools
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from hubstead.core import usernames
from hubstead.core.errors import HubsteadError

# The roles, in the order they run; a setting names those that must re-run when it changes.
ROLES = ("base", "user_env", "proxy", "hub")

# Miniforge release used by the conda user environment, pinned by version and sha256
# (user_environment.conda_installer overrides both, e.g. for a local mirror).
MINIFORGE_VERSION = "24.7.1-2"
MINIFORGE_SHA256 = {
    "aarch64": "7bf60bce50f57af7ea4500b45eeb401d9350011ab34c9c45f736647d8dba9021",
    "x86_64": "636f7faca2d51ee42b4640ce160c751a46d57621ef4bf14378704c87c5db4fe3",
}
MINIFORGE_URL = (
    "https://github.com/conda-forge/miniforge/releases/download/"
    "{version}/Miniforge3-{version}-Linux-{arch}.sh"
)

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
# A name the machine answers to: one or more DNS labels (an intranet name has one).
HOSTNAME_PATTERN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
# A URL prefix: path segments of URL-safe characters only (it goes into routes and URLs).
BASE_URL_PATTERN = re.compile(r"^/((?!\.\.?/)[A-Za-z0-9._~-]+/)*$")
# A conda package, optionally with a version constraint: nothing an option or a shell could take.
CONDA_SPEC_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*([=<>!~][A-Za-z0-9.*,=<>!~+_-]*)?$")
# A Debian package name (policy 5.6.1), optionally for one architecture: never an option.
APT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
# Memory sizes in units of 1024, as systemd's MemoryMax takes them: 512M, 1.5G.
MEMORY_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT])$")
# What a <name> in a key stands for.
PLACEHOLDERS = {
    "group": usernames.GROUP_PATTERN,
    "Class": r"[A-Z]\w*",
    "setting": r"\w+",
    "env": r"[a-z][a-z0-9_-]{0,31}",
}
ENV_NAME_ALLOWED = "lowercase letters, digits, '_' and '-', starting with a letter, at most 32 characters"
# A Python version of this machine's (an environment is built from /usr/bin/python<version>).
PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")


class ConfigError(HubsteadError, ValueError):
    """The config (or a value for it) is not acceptable; the message says why."""


def memory_bytes(size: str | None) -> int | None:
    """``512M`` → bytes (K, M, G, T are powers of 1024); None stays None. The one parser
    of memory sizes: the config check and the spawner both use it."""
    if size is None:
        return None
    match = MEMORY_SIZE.match(size) if isinstance(size, str) else None
    if not match:
        raise ValueError(f"{size!r} is not a memory size like 512M, 2G or 1.5G")
    number, unit = match.groups()
    return int(float(number) * 1024 ** ("KMGT".index(unit) + 1))


def _refuse(key, value, allowed):
    raise ConfigError(f"{key}: {value!r} is not allowed; use {allowed}")


def _check_str_list(key, value):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _refuse(key, value, "a list of strings, e.g. [a, b]")


def _check_choice(*choices):
    def check(key, value):
        if value not in choices:
            _refuse(key, value, "one of " + ", ".join(map(str, choices)))

    return check


def _check_int(low, high=None):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high
        ):
            _refuse(key, value, f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}")

    return check


def _check_optional_int(low):
    check_int = _check_int(low)

    def check(key, value):
        if value is not None:
            try:
                check_int(key, value)
            except ConfigError:
                _refuse(key, value, f"an integer >= {low}, or null")

    return check


def _check_python_version(key, value):
    if value is not None and not (isinstance(value, str) and PYTHON_VERSION.match(value)):
        _refuse(key, value, "a Python version like 3.11 (one this machine has), or null for the system's python3")


def _check_bool(key, value):
    if not isinstance(value, bool):
        _refuse(key, value, "true or false")


def _check_optional_str(key, value):
    if value is not None and not isinstance(value, str):
        _refuse(key, value, "a string or null")


def _check_each(pattern_check, allowed):
    """A check for a list of strings, each passing ``pattern_check(item)``."""
    def check(key, value):
        _check_str_list(key, value)
        for item in value:
            if not pattern_check(item):
                _refuse(key, item, allowed)

    return check


def _is_user_name(name: str) -> bool:
    try:
        return usernames.validate(name) == name
    except usernames.InvalidUsername:
        return False


def is_ip(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def is_pip_requirement(text: str) -> bool:
    try:
        Requirement(text)
    except InvalidRequirement:
        return False
    return not text.startswith("-")


_check_pip_requirements = _check_each(is_pip_requirement, "pip requirements like pandas or numpy>=2 (PEP 508)")
_check_user_names = _check_each(_is_user_name, f"hub user names: {usernames.ALLOWED_DESCRIPTION}")


def _check_listen_address(key, value):
    # It ends up in traefik's config file and the hub's URL.
    if value and not (isinstance(value, str) and is_ip(value, 4)):
        _refuse(key, value, "an IPv4 address of this machine like 10.0.0.5 or 0.0.0.0, or empty for all")


def _check_base_url(key, value):
    if not isinstance(value, str) or not BASE_URL_PATTERN.match(value):
        _refuse(key, value, "a path that starts and ends with '/' made of letters, digits, '.', '_', '~' "
                            "and '-', e.g. /course/")


def _check_installer_url(key, value):
    if value is not None and not (isinstance(value, str) and
                                  re.match(r"^(https?://|file:///|/)[^\s]+$", value)):
        _refuse(key, value, "an https://, http:// or file:// URL or an absolute path, or null")


def _check_sha256(key, value):
    if value is not None and (
        not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value)
    ):
        _refuse(key, value, "64 lowercase hex digits or null")


def _check_memory(key, value):
    try:
        memory_bytes(value)
    except ValueError:
        _refuse(key, value, "a size like 512M, 2G or 1.5G (suffix K, M, G or T), or null")


def _check_cpu(key, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 < value < math.inf):
        _refuse(key, value, "a number of CPUs > 0 like 1 or 0.5, or null")


def _check_origins(key, value):
    _check_str_list(key, value)
    for origin in value:
        if origin != "'self'" and not re.match(r"^https?://[^\s/;,']+$", origin):
            _refuse(key, origin, "origins like https://lms.example.edu (scheme and host, no path)")


def is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _check_optional_path(key, value):
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        _refuse(key, value, "an absolute path like /etc/ssl/hub/fullchain.pem, or null")


def _check_wheelhouse(key, value, effective):
    _check_optional_path(key, value)
    if value is not None and effective["user_environment"]["manager"] != "venv":
        _refuse(key, value, "null with user_environment.manager conda (conda needs its channels); "
                "a wheelhouse serves the venv user environment")


def _check_email(key, value):
    if value is not None and (not isinstance(value, str) or not EMAIL_PATTERN.match(value)):
        _refuse(key, value, "an email address like admin@example.edu, or null")


def _check_domains(key, value):
    _check_str_list(key, value)
    for name in value:
        if not DOMAIN_PATTERN.match(name):
            _refuse(key, name, "DNS names like hub.example.edu (no scheme, port, path or wildcard)")


def _check_acme_server(key, value):
    if value is not None and (not isinstance(value, str) or not value.startswith("https://")):
        _refuse(key, value, "an https:// ACME directory URL, or null for Let's Encrypt")


def _check_auth_type(key, value):
    if not isinstance(value, str) or not value:
        _refuse(key, value, "hubstead, or a JupyterHub authenticator such as firstuse or github")
    if value != "hubstead":
        # Loads the class, which imports JupyterHub: only for other authenticators.
        from hubstead.config.authenticators import authenticator_class

        try:
            authenticator_class(value)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"{key}: {value!r} cannot be loaded ({e})") from None


def _check_auth_trait(key, value, effective):
    # Loads the authenticator class: only when such keys exist.
    from hubstead.config.authenticators import check_trait

    check_trait(key, value, effective["auth"]["type"])


@dataclass(frozen=True)
class Setting:
    key: str  # dotted; a <name> part is chosen by the admin (PLACEHOLDERS)
    default: object
    check: Callable  # check(key, value), or check(key, value, effective) with in_context
    doc: str
    # Roles beyond the hub's that must re-run (`hubstead config apply`); none: `reload hub`.
    roles: tuple[str, ...] = ()
    at_spawn: bool = False  # user servers get it when they next start
    shown_default: str | None = None  # for the docs, where the value itself says too little
    in_context: bool = False  # the check depends on other settings

    @functools.cached_property
    def pattern(self) -> re.Pattern:
        parts = re.split(r"<(\w+)>", self.key)  # literal, name, literal, ...
        return re.compile("^" + "".join(PLACEHOLDERS[p] if i % 2 else re.escape(p)
                                        for i, p in enumerate(parts)) + "$")

    @property
    def container(self) -> str | None:
        """For a key with a <name>: the mapping that holds what the admin names."""
        return self.key.partition(".<")[0] if "<" in self.key else None

    def validate(self, key: str, value, effective: dict) -> None:
        if self.in_context:
            self.check(key, value, effective)
        else:
            self.check(key, value)


AT_SPAWN: dict[str, Any] = {"at_spawn": True}
PROXY: dict[str, Any] = {"roles": ("proxy",)}
USER_ENV: dict[str, Any] = {"roles": ("user_env",)}
BASE: dict[str, Any] = {"roles": ("base",)}

# Typed on the command line by the trait's own type (hubstead.authenticator).
AUTH_TRAIT = Setting("auth.<Class>.<setting>", None, _check_auth_trait,
                     "any setting of the authenticator in use or its base classes, checked against its type, "
                     "e.g. `auth.GitHubOAuthenticator.client_id` (secrets are redacted by `show`)", in_context=True)
SCHEMA = (
    Setting("base_url", "/", _check_base_url, "URL prefix of the hub, e.g. `/course/`"),
    Setting("http.address", "", _check_listen_address, "where the proxy listens: an address", **PROXY,
            shown_default="all addresses"),
    Setting("http.port", 80, _check_int(1, 65535), "where the proxy listens: the port", **PROXY),
    Setting("auth.type", "hubstead", _check_auth_type,
            "`hubstead` (built-in passwords) or any JupyterHub authenticator (`firstuse`, `github`, "
            "`generic-oauth`, `ldapauthenticator`, … or `module.Class`); users get Unix accounts with every one"),
    AUTH_TRAIT,
    Setting("users.admin", [], _check_user_names,
            "teachers (the installer's `--admin` adds to it): the hub's `teacher` role; **not** root"),
    Setting("users.allowed", [], _check_user_names, "users who may log in besides those an admin added"),
    Setting("users.banned", [], _check_user_names, "users who may not log in"),
    Setting("users.sudoers", [], _check_user_names,
            "sysadmins: their servers may use `sudo` (group `hubstead-sudoers`); the hub's admins; "
            "out of teachers' reach", **AT_SPAWN),
    Setting("users.extra_user_groups.<group>", None, _check_user_names,
            "Unix group (must exist) → hub users put in it at spawn", **AT_SPAWN),
    Setting("users.lockout.max_failures", 5, _check_int(0),
            "wrong passwords in a row that lock an account (0: never lock). A browser the user logged in "
            "with before keeps a count and a lock of its own, so strangers' guesses never lock a teacher "
            "out of her own browser"),
    Setting("users.lockout.minutes", 10, _check_int(1), "how long a lockout lasts"),
    Setting("users.removal.home", "archive", _check_choice("archive", "delete", "keep"),
            "when a user is removed, their home is `archive`d (tarball under /var/lib/hubstead/archive), "
            "`delete`d or `keep`t"),
    Setting("users.removal.account", "lock", _check_choice("lock", "delete"),
            "their Unix account is `lock`ed (expired) or `delete`d"),
    Setting("limits.memory", None, _check_memory,
            "per-server memory (`512M`, `2G`, `1.5G`) → the unit's `MemoryMax`",
            **AT_SPAWN, shown_default="none"),
    Setting("limits.cpu", None, _check_cpu, "per-server CPUs (`1`, `0.5`) → the unit's `CPUQuota`",
            **AT_SPAWN, shown_default="none"),
    Setting("limits.concurrent_spawns", None, _check_optional_int(1),
            "servers starting at once; the others wait their turn in arrival order and see their place on "
            "the \"server starting\" page (see [Capacity](#capacity-a-class-at-900))",
            shown_default="CPU cores + 1"),
    Setting("limits.groups.<group>.memory", None, _check_memory,
            "memory for members of a hub group (made on the admin page); a member of several gets the most "
            "generous, never less than the global limit", **AT_SPAWN),
    Setting("limits.groups.<group>.cpu", None, _check_cpu, "CPUs for members of a hub group, likewise",
            **AT_SPAWN),
    Setting("user_environment.manager", "conda", _check_choice("conda", "venv"), "`conda` or `venv`",
            **USER_ENV),
    Setting("user_environment.default_app", "lab", _check_choice("lab", "notebook"),
            "`lab` (JupyterLab) or `notebook`"),
    Setting("user_environment.pip_packages", [], _check_pip_requirements,
            "extra pip packages in the user environment (`hubstead packages add`)", **USER_ENV),
    Setting("user_environment.conda_packages", [],
            _check_each(CONDA_SPEC_PATTERN.match, "conda packages like scipy or numpy>=2"),
            "extra conda-forge packages (conda manager)", **USER_ENV),
    Setting("user_environment.apt_packages", [],
            _check_each(APT_NAME_PATTERN.match, "Debian package names like pandoc or graphviz"),
            "Debian packages installed on the machine for everyone (`hubstead packages add --apt`)", **BASE),
    Setting("user_environment.conda_installer.url", None, _check_installer_url,
            "another Miniforge installer (URL or local path)", **USER_ENV,
            shown_default=f"pinned Miniforge {MINIFORGE_VERSION}"),
    Setting("user_environment.conda_installer.sha256", None, _check_sha256,
            "the sha256 of that installer (required with a URL)", **USER_ENV),
    Setting("user_environment.r", False, _check_bool,
            "an R kernel for everyone (venv: Debian's `r-base-core` and `r-cran-irkernel`; conda: `r-irkernel`)",
            **USER_ENV),
    Setting("environments.<env>.python", None, _check_python_version,
            "an extra environment (`hubstead env create`): a venv in /opt/hubstead/envs/<env>, a kernel in "
            "every student's launcher; its Python version (one of this machine's)", **USER_ENV,
            shown_default="the system's python3"),
    Setting("environments.<env>.packages", [], _check_pip_requirements,
            "its pip packages (ipykernel comes with it)", **USER_ENV),
    Setting("wheelhouse", None, _check_wheelhouse,
            "a directory of wheels (`bootstrap.py --make-wheelhouse`) that every Python package comes from "
            "instead of the package index: a machine without internet", **USER_ENV, in_context=True),
    Setting("plugins", [], _check_pip_requirements,
            "Hubstead plugins: pip requirements (`name @ file:///path` for a local one) installed into the "
            "hub's environment; their hooks add packages, hub settings and new-user steps",
            roles=("base", "user_env")),
    Setting("services.cull.enabled", True, _check_bool, "stop idle servers"),
    Setting("services.cull.timeout", 3600, _check_int(1), "seconds of inactivity before a server is stopped"),
    Setting("services.cull.every", 600, _check_int(1), "seconds between checks"),
    Setting("services.cull.concurrency", 5, _check_int(1), "servers stopped at once"),
    Setting("services.cull.users", False, _check_bool, "also remove idle users from the hub"),
    Setting("services.cull.max_age", 0, _check_int(0),
            "stop servers older than this many seconds, idle or not (0: never)"),
    Setting("hub.csp_frame_ancestors", [], _check_origins,
            "origins that may embed the hub and JupyterLab in an iframe, e.g. `[https://lms.example.edu]`"),
    Setting("hub.course_link_networks", [],
            _check_each(is_network, "networks like 10.0.0.0/8 or addresses like 192.0.2.7"),
            "networks that course links' repositories may be on although they are not public, e.g. "
            "`[10.1.0.0/16]` for the school's own git server: the teacher's page asks a repository from the hub, "
            "so it refuses loopback, link-local, private and reserved addresses otherwise"),
    Setting("https.mode", "off", _check_choice("off", "selfsigned", "manual", "letsencrypt"),
            "`off`, `selfsigned`, `manual` or `letsencrypt`", **PROXY),
    Setting("https.address", "", _check_listen_address, "where HTTPS is served: an address", **PROXY,
            shown_default="all addresses"),
    Setting("https.port", 443, _check_int(1, 65535), "where HTTPS is served: the port", **PROXY),
    Setting("https.hostnames", [],
            _check_each(lambda name: bool(HOSTNAME_PATTERN.match(name)) or is_ip(name),
                        "names like hub.example.edu or hub, or IP addresses"),
            "extra names for the self-signed certificate (the machine's addresses are always in it)", **PROXY),
    Setting("https.hsts", True, _check_bool,
            "send Strict-Transport-Security (only with `manual` and `letsencrypt`: browsers would otherwise "
            "pin an untrusted certificate)", **PROXY),
    Setting("https.manual.cert", None, _check_optional_path,
            "PEM certificate chain, e.g. under `/etc/ssl/hub/`", **PROXY),
    Setting("https.manual.key", None, _check_optional_path, "its unencrypted key, e.g. under `/etc/ssl/hub/`",
            **PROXY),
    Setting("https.letsencrypt.email", None, _check_email,
            "your address, for expiry notices from Let's Encrypt", **PROXY),
    Setting("https.letsencrypt.domains", [], _check_domains,
            "the names to certify; each must point at this machine", **PROXY),
    Setting("https.letsencrypt.staging", False, _check_bool,
            "use Let's Encrypt's staging server (untrusted certificates, generous rate limits) to try things out",
            **PROXY),
    Setting("https.letsencrypt.server", None, _check_acme_server, "another ACME server's directory URL", **PROXY),
    Setting("https.letsencrypt.preflight", True, _check_bool,
            "check DNS and port 80 before asking the ACME server; turn off only if this machine can't reach "
            "its own public address (some NAT setups)", **PROXY),
)
_FIXED = {s.key: s for s in SCHEMA if s.container is None}
# Mappings whose keys the admin names (users.extra_user_groups): empty by default.
CONTAINERS = frozenset(s.container for s in SCHEMA if s.container is not None)


def lookup(key: str) -> Setting | None:
    """The setting a dotted key names, or None."""
    if key in _FIXED:
        return _FIXED[key]
    return next((s for s in SCHEMA if s.container is not None and s.pattern.match(key)), None)


def setting(key: str) -> Setting:
    """The setting a dotted key names, or ConfigError if there is no such setting."""
    found = lookup(key)
    if found is None:
        raise ConfigError(f"{key}: unknown setting (see the list in README.md, or `hubstead config show`)")
    return found


def _defaults() -> dict:
    tree: dict = {}
    for key, default in [*((c, {}) for c in sorted(CONTAINERS)), *((s.key, s.default) for s in _FIXED.values())]:
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, default)
    return tree


DEFAULTS: dict = _defaults()


def _roles(key: str) -> tuple[str, ...]:
    found = lookup(key)
    return found.roles if found else ()


def machine_keys(keys: list[str]) -> list[str]:
    """The keys among ``keys`` that a role beyond the hub's must apply (`reload` refuses them)."""
    return [k for k in keys if _roles(k)]


def roles_for(keys: list[str]) -> list[str]:
    """The roles that must run for changed ``keys`` (the hub role always: it restarts the hub)."""
    needed = {role for k in keys for role in _roles(k)}
    return [role for role in ROLES if role in needed or role == "hub"]


def sections_applied_by(role: str) -> tuple[str, ...]:
    """The top-level sections whose settings ``role`` applies."""
    return tuple(sorted({s.key.split(".")[0] for s in SCHEMA if role in s.roles}))
