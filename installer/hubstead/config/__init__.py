"""The config model: the effective config (schema defaults merged), its validation, and
loading/saving ``config.yaml``.

``config.yaml`` holds only what the admin changed; everything else comes from the
schema's defaults. The whole merged config is validated before anything is written, and
writing keeps the admin's comments and key order.
"""

import contextlib
import copy
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.representer import RoundTripRepresenter

from hubstead.config import keys, schema
from hubstead.config.model import Settings
from hubstead.config.schema import DEFAULTS, ConfigError
from hubstead.core import paths
from hubstead.core.files import locked, write_atomic


def conda_installer(effective: Settings, arch: str) -> tuple[str, str]:
    """(url or local path, sha256) of the Miniforge installer for this machine."""
    override = effective["user_environment"]["conda_installer"]
    if override["url"]:
        if not override["sha256"]:
            raise ConfigError(
                "user_environment.conda_installer.sha256: required when "
                "user_environment.conda_installer.url is set"
            )
        return override["url"], override["sha256"]
    if arch not in schema.MINIFORGE_SHA256:
        raise ConfigError(f"conda user environment: no Miniforge for {arch!r}; use x86_64 or aarch64")
    return (schema.MINIFORGE_URL.format(version=schema.MINIFORGE_VERSION, arch=arch),
            schema.MINIFORGE_SHA256[arch])


def flat(tree: Mapping[str, Any]) -> dict:
    """Dotted keys to values, down to the keys that name a setting (an authenticator
    trait's mapping value stays one value)."""
    return keys.flatten(tree, is_leaf=lambda key: schema.lookup(key) is not None)


def merge(defaults: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` onto a copy of ``defaults``."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate(user_config: dict) -> Settings:
    """Return the effective config (defaults merged), or raise ConfigError."""
    if not isinstance(user_config, dict):
        raise ConfigError(f"config.yaml must hold a mapping, not {type(user_config).__name__}")
    effective = merge(DEFAULTS, user_config)
    for key, value in flat(effective).items():
        if isinstance(value, dict) and key in schema.CONTAINERS:  # empty, e.g. limits.groups
            continue
        schema.setting(key).validate(key, value, effective)
    return cast(Settings, effective)


def load_user_config(path: Path | None = None) -> dict:
    """What the admin wrote (no defaults), or {} before the first install."""
    path = path or paths.CONFIG_FILE
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    return parse_user_config(text, path)


def parse_user_config(text: str, source: Path | str) -> dict:
    """The admin's settings in ``text`` (read from ``source``, named in errors)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    return data or {}


def load(path: Path | None = None) -> Settings:
    """The effective, validated config."""
    return validate(load_user_config(path))


def _quote_what_pyyaml_would_not_read_back(representer, value: str):
    """config.yaml is read with PyYAML (YAML 1.1): a string it would take for something
    else (yes, on, 0755) is written quoted."""
    resolved = yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))
    style = "'" if resolved != yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG else None
    return representer.represent_scalar(yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG, value, style=style)


class _Representer(RoundTripRepresenter):
    pass


_Representer.add_representer(str, _quote_what_pyyaml_would_not_read_back)


def _round_trip_yaml() -> YAML:
    round_trip = YAML()
    round_trip.Representer = _Representer
    round_trip.allow_duplicate_keys = True  # as PyYAML reads them: the last one wins
    return round_trip


def _update(document: dict, data: dict) -> None:
    """Make ``document`` equal ``data``, leaving what is equal (and its comments) in place;
    new keys go last."""
    for key in [k for k in document if k not in data]:
        del document[key]
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            _update(document[key], value)
        elif key not in document or document[key] != value:
            document[key] = copy.deepcopy(value)


def save_user_config(user_config: dict, path: Path | None = None) -> None:
    """Validate, then write atomically (0600: it may hold OAuth client secrets), keeping
    the comments and key order of the file there."""
    validate(user_config)
    path = Path(path or paths.CONFIG_FILE)
    round_trip = _round_trip_yaml()
    try:
        document = round_trip.load(path.read_text())
    except FileNotFoundError:
        document = None
    if not isinstance(document, dict):
        document = CommentedMap()
    _update(document, user_config)
    text = io.StringIO()
    round_trip.dump(document, text)
    write_atomic(path, text.getvalue())


@contextlib.contextmanager
def edit(path: Path | None = None, lock: Path | None = None):
    """A locked read-modify-write of config.yaml; nothing is written if the block fails
    or the result does not validate."""
    with locked(lock or paths.CONFIG_LOCK):
        data = load_user_config(path)
        yield data
        save_user_config(data, path)


def replace_user_config(text: str, source: Path | str) -> None:
    """Put back a whole config.yaml as it was written (``hubstead restore``): validated,
    then written atomically under the edit lock, comments and all."""
    validate(parse_user_config(text, source))
    with locked(paths.CONFIG_LOCK):
        write_atomic(paths.CONFIG_FILE, text)
