"""The config model: defaults, validation, and loading/saving ``config.yaml``.

``config.yaml`` holds only what the admin changed; everything else comes from
DEFAULTS. The whole merged config is validated before anything is written.
"""

import contextlib
import copy
from pathlib import Path

import yaml

from . import paths
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
    "users": {"admin": [], "allowed": [], "banned": [], "sudoers": []},
    "limits": {"memory": None, "cpu": None},
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
}


class ConfigError(ValueError):
    """The config (or a value for it) is not acceptable; the message says why."""


def _check_str_list(key, value):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: {value!r} is not a list of strings")


def _check_choice(*choices):
    def check(key, value):
        if value not in choices:
            allowed = ", ".join(map(str, choices))
            raise ConfigError(f"{key}: {value!r} is not allowed; use one of {allowed}")

    return check


def _check_int(low, high=None):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high
        ):
            bound = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
            raise ConfigError(f"{key}: {value!r} is not allowed; use {bound}")

    return check


def _check_bool(key, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not allowed; use true or false")


def _check_optional_str(key, value):
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not allowed; use a string or null")


def _check_base_url(key, value):
    if not isinstance(value, str) or not value.startswith("/") or not value.endswith("/"):
        raise ConfigError(f"{key}: {value!r} is not allowed; use a path that starts and ends with '/'")


def _check_sha256(key, value):
    if value is not None and (
        not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value)
    ):
        raise ConfigError(f"{key}: {value!r} is not allowed; use 64 lowercase hex digits or null")


def _check_anything(key, value):
    """Values whose meaning belongs to a later check (limits are parsed where used)."""


CHECKS = {
    "base_url": _check_base_url,
    "http.address": _check_optional_str,
    "http.port": _check_int(1, 65535),
    "auth.type": _check_optional_str,
    "users.admin": _check_str_list,
    "users.allowed": _check_str_list,
    "users.banned": _check_str_list,
    "users.sudoers": _check_str_list,
    "limits.memory": _check_anything,
    "limits.cpu": _check_anything,
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
}


def merge(defaults: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` onto a copy of ``defaults``."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def validate(user_config: dict) -> dict:
    """Return the effective config (defaults merged), or raise ConfigError."""
    if not isinstance(user_config, dict):
        raise ConfigError(f"config.yaml must hold a mapping, not {type(user_config).__name__}")
    effective = merge(DEFAULTS, user_config)
    for key, value in _flatten(effective).items():
        check = CHECKS.get(key)
        if check is None:
            raise ConfigError(f"{key}: unknown setting")
        check(key, value)
    return effective


def load_user_config(path: Path = paths.CONFIG_FILE) -> dict:
    """What the admin wrote (no defaults), or {} before the first install."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return data or {}


def load(path: Path = paths.CONFIG_FILE) -> dict:
    """The effective, validated config."""
    return validate(load_user_config(path))


def save_user_config(user_config: dict, path: Path = paths.CONFIG_FILE) -> None:
    """Validate, then write atomically (0600: it may hold OAuth client secrets)."""
    validate(user_config)
    write_atomic(Path(path), yaml.safe_dump(user_config, sort_keys=True, default_flow_style=False))


@contextlib.contextmanager
def edit(path: Path = paths.CONFIG_FILE, lock: Path = paths.CONFIG_LOCK):
    """A locked read-modify-write of config.yaml; nothing is written if the block fails
    or the result does not validate."""
    with locked(lock):
        data = load_user_config(path)
        yield data
        save_user_config(data, path)
