"""The config model: defaults, validation, and loading/saving ``config.yaml``.

``config.yaml`` holds only what the admin changed; everything else comes from
DEFAULTS. The whole merged config is validated before anything is written.
"""

import contextlib
import copy
import re
from pathlib import Path

import yaml

from . import keys, paths
from .files import locked, write_atomic

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


def conda_installer(effective: dict, arch: str) -> tuple[str, str]:
    """(url or local path, sha256) of the Miniforge installer for this machine."""
    override = effective["user_environment"]["conda_installer"]
    if override["url"]:
        if not override["sha256"]:
            raise ConfigError(
                "user_environment.conda_installer.sha256: required when "
                "user_environment.conda_installer.url is set"
            )
        return override["url"], override["sha256"]
    if arch not in MINIFORGE_SHA256:
        raise ConfigError(f"conda user environment: no Miniforge for {arch!r}; use x86_64 or aarch64")
    return MINIFORGE_URL.format(version=MINIFORGE_VERSION, arch=arch), MINIFORGE_SHA256[arch]

DEFAULTS: dict = {
    "base_url": "/",
    "http": {"address": "", "port": 80},
    "auth": {"type": "hubstead"},
    "users": {
        "admin": [],
        "allowed": [],
        "banned": [],
        "sudoers": [],
        "extra_user_groups": {},
        # Hubstead's own passwords: this many wrong ones in a row lock the account for a while.
        "lockout": {"max_failures": 5, "minutes": 10},
        # When a user is removed: the home is archived (a tarball), deleted or kept;
        # the Unix account is locked or deleted.
        "removal": {"home": "archive", "account": "lock"},
    },
    # limits.groups.<hub group>.{memory,cpu} override the global limits for members.
    # concurrent_spawns: servers starting at once, the others queue (null: cores + 1).
    "limits": {"memory": None, "cpu": None, "groups": {}, "concurrent_spawns": None},
    "user_environment": {
        "manager": "conda",
        "default_app": "lab",
        "pip_packages": [],
        "conda_packages": [],
        "conda_installer": {"url": None, "sha256": None},
    },
    "services": {
        "cull": {
            "enabled": True,
            "timeout": 3600,
            "every": 600,
            "concurrency": 5,
            "users": False,
            "max_age": 0,
        }
    },
    "hub": {"csp_frame_ancestors": []},
    "https": {
        # off | selfsigned | manual | letsencrypt (applied with `hubstead config apply`)
        "mode": "off",
        "address": "",
        "port": 443,
        # Extra names/addresses for the self-signed certificate (the machine's own
        # addresses are always in it).
        "hostnames": [],
        # Strict-Transport-Security, sent with trusted certificates only (not self-signed).
        "hsts": True,
        "manual": {"cert": None, "key": None},
        # preflight: check DNS and port 80 before asking the ACME server (turn off only
        # where this machine can't reach its own public address, e.g. no NAT hairpin).
        "letsencrypt": {"email": None, "domains": [], "staging": False, "server": None, "preflight": True},
    },
}

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
MEMORY_PATTERN = re.compile(r"^\d+(\.\d+)?[KMGT]?$")
GROUP_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
# auth.<Class>.<trait>: one setting of an authenticator class (its value may be a mapping).
AUTH_TRAIT_KEY = re.compile(r"^auth\.[A-Z]\w*\.\w+$")


class ConfigError(ValueError):
    """The config (or a value for it) is not acceptable; the message says why."""


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


def _check_bool(key, value):
    if not isinstance(value, bool):
        _refuse(key, value, "true or false")


def _check_optional_str(key, value):
    if value is not None and not isinstance(value, str):
        _refuse(key, value, "a string or null")


def _check_base_url(key, value):
    if not isinstance(value, str) or not value.startswith("/") or not value.endswith("/"):
        _refuse(key, value, "a path that starts and ends with '/', e.g. /course/")


def _check_sha256(key, value):
    if value is not None and (
        not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value)
    ):
        _refuse(key, value, "64 lowercase hex digits or null")


def _check_memory(key, value):
    if value is not None and (not isinstance(value, str) or not MEMORY_PATTERN.match(value)):
        _refuse(key, value, "a size like 512M, 2G or 1.5G (suffix K, M, G or T), or null")


def _check_cpu(key, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        _refuse(key, value, "a number of CPUs > 0 like 1 or 0.5, or null")


def _check_origins(key, value):
    _check_str_list(key, value)
    for origin in value:
        if origin != "'self'" and not re.match(r"^https?://[^\s/;,']+$", origin):
            _refuse(key, origin, "origins like https://lms.example.edu (scheme and host, no path)")


def _check_optional_path(key, value):
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        _refuse(key, value, "an absolute path like /etc/ssl/hub/fullchain.pem, or null")


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
        from .authenticator import for_type  # imports JupyterHub: only for other authenticators

        try:
            for_type(value)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"{key}: {value!r} cannot be loaded ({e})") from None


def _check_auth_trait(key, value, effective):
    from .authenticator import check_trait  # imports JupyterHub: only when such keys exist

    try:
        check_trait(key, value, effective["auth"]["type"])
    except ValueError as e:
        raise ConfigError(str(e)) from None


CHECKS = {
    "base_url": _check_base_url,
    "http.address": _check_optional_str,
    "http.port": _check_int(1, 65535),
    "auth.type": _check_auth_type,
    "users.admin": _check_str_list,
    "users.allowed": _check_str_list,
    "users.banned": _check_str_list,
    "users.sudoers": _check_str_list,
    "users.lockout.max_failures": _check_int(0),
    "users.lockout.minutes": _check_int(1),
    "users.removal.home": _check_choice("archive", "delete", "keep"),
    "users.removal.account": _check_choice("lock", "delete"),
    "limits.memory": _check_memory,
    "limits.cpu": _check_cpu,
    "limits.concurrent_spawns": _check_optional_int(1),
    "user_environment.manager": _check_choice("conda", "venv"),
    "user_environment.default_app": _check_choice("lab", "notebook"),
    "user_environment.pip_packages": _check_str_list,
    "user_environment.conda_packages": _check_str_list,
    "user_environment.conda_installer.url": _check_optional_str,
    "user_environment.conda_installer.sha256": _check_sha256,
    "services.cull.enabled": _check_bool,
    "services.cull.timeout": _check_int(1),
    "services.cull.every": _check_int(1),
    "services.cull.concurrency": _check_int(1),
    "services.cull.users": _check_bool,
    "services.cull.max_age": _check_int(0),
    "hub.csp_frame_ancestors": _check_origins,
    "https.mode": _check_choice("off", "selfsigned", "manual", "letsencrypt"),
    "https.address": _check_optional_str,
    "https.port": _check_int(1, 65535),
    "https.hostnames": _check_str_list,
    "https.hsts": _check_bool,
    "https.manual.cert": _check_optional_path,
    "https.manual.key": _check_optional_path,
    "https.letsencrypt.email": _check_email,
    "https.letsencrypt.domains": _check_domains,
    "https.letsencrypt.staging": _check_bool,
    "https.letsencrypt.server": _check_acme_server,
    "https.letsencrypt.preflight": _check_bool,
}
# Keys with a name chosen by the admin: (pattern, check).
PATTERN_CHECKS = [
    (re.compile(rf"^users\.extra_user_groups\.{GROUP_NAME}$"), _check_str_list),
    (re.compile(rf"^limits\.groups\.{GROUP_NAME}\.memory$"), _check_memory),
    (re.compile(rf"^limits\.groups\.{GROUP_NAME}\.cpu$"), _check_cpu),
    (AUTH_TRAIT_KEY, _check_auth_trait),
]


def flat(tree: dict) -> dict:
    """Dotted keys to values; an authenticator trait's dict value stays one value."""
    return keys.flatten(tree, is_leaf=AUTH_TRAIT_KEY.match)


def check_for(key: str):
    """The check of a dotted key, or ConfigError if there is no such setting."""
    if key in CHECKS:
        return CHECKS[key]
    for pattern, check in PATTERN_CHECKS:
        if pattern.match(key):
            return check
    raise ConfigError(f"{key}: unknown setting (see the list in README.md, or `hubstead config show`)")


def merge(defaults: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` onto a copy of ``defaults``."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate(user_config: dict) -> dict:
    """Return the effective config (defaults merged), or raise ConfigError."""
    if not isinstance(user_config, dict):
        raise ConfigError(f"config.yaml must hold a mapping, not {type(user_config).__name__}")
    effective = merge(DEFAULTS, user_config)
    for key, value in flat(effective).items():
        if isinstance(value, dict):  # an empty mapping such as limits.groups
            if key not in {"users.extra_user_groups", "limits.groups"}:
                check_for(key)
            continue
        check = check_for(key)
        if check is _check_auth_trait:
            check(key, value, effective)
        else:
            check(key, value)
    return effective


def load_user_config(path: Path | None = None) -> dict:
    """What the admin wrote (no defaults), or {} before the first install."""
    path = path or paths.CONFIG_FILE
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return data or {}


def load(path: Path | None = None) -> dict:
    """The effective, validated config."""
    return validate(load_user_config(path))


def save_user_config(user_config: dict, path: Path | None = None) -> None:
    """Validate, then write atomically (0600: it may hold OAuth client secrets)."""
    validate(user_config)
    write_atomic(Path(path or paths.CONFIG_FILE), yaml.safe_dump(user_config, sort_keys=True, default_flow_style=False))


@contextlib.contextmanager
def edit(path: Path | None = None, lock: Path | None = None):
    """A locked read-modify-write of config.yaml; nothing is written if the block fails
    or the result does not validate."""
    with locked(lock or paths.CONFIG_LOCK):
        data = load_user_config(path)
        yield data
        save_user_config(data, path)
