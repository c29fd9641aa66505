"""Dotted keys (``limits.memory``) on the nested config, and values typed on a command
line. Pure functions: the CLI and the tests use them on plain dicts."""

import copy
import re
from collections.abc import Mapping
from typing import Any

import yaml

from hubstead.core.errors import HubsteadError

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")
# Key names that hold secrets: redacted by `config show`.
_SECRET = re.compile(r"(secret|password|passwd|token|private_key|api_key)", re.I)
REDACTED = "<redacted>"


class MissingKey(HubsteadError, LookupError):
    """A key (or list item) that is not there, for get / unset / remove-item."""


class NotAList(HubsteadError, ValueError):
    """add-item / remove-item on a key whose value is not a list."""


def parse_value(text: str):
    """``2`` → 2, ``1.5`` → 1.5, ``true``/``false`` → bool, ``null``/``none`` → None,
    ``[a, b]`` → list; anything else (``2G``, ``/course/``) stays a string."""
    lowered = text.strip().lower()
    if lowered in ("null", "none"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.match(text.strip()):
        return int(text)
    if _FLOAT.match(text.strip()):
        return float(text)
    if text.strip().startswith("["):
        value = yaml.safe_load(text)
        if isinstance(value, list):
            return value
    return text


def get(tree: dict, key: str):
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise MissingKey(f"{key}: not set")
        node = node[part]
    return node


def set_(tree: dict, key: str, value) -> dict:
    """A copy of ``tree`` with ``key`` set (intermediate mappings created)."""
    tree = copy.deepcopy(tree)
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value
    return tree


def unset(tree: dict, key: str) -> dict:
    """A copy of ``tree`` without ``key``; mappings left empty are removed too."""
    get(tree, key)
    tree = copy.deepcopy(tree)
    parts = key.split(".")
    chain = [tree]
    for part in parts[:-1]:
        chain.append(chain[-1][part])
    del chain[-1][parts[-1]]
    for node, part in zip(reversed(chain[:-1]), reversed(parts[:-1]), strict=True):
        if node[part] == {}:
            del node[part]
    return tree


def add_item(tree: dict, key: str, value) -> dict:
    try:
        current = get(tree, key)
    except MissingKey:
        current = []
    if not isinstance(current, list):
        raise NotAList(f"{key}: holds {current!r}, not a list; use `set` instead")
    if value in current:
        return copy.deepcopy(tree)
    return set_(tree, key, [*current, value])


def remove_item(tree: dict, key: str, value) -> dict:
    current = get(tree, key)
    if not isinstance(current, list):
        raise NotAList(f"{key}: holds {current!r}, not a list")
    if value not in current:
        raise MissingKey(f"{key}: {value!r} is not in the list {current!r}")
    return set_(tree, key, [v for v in current if v != value])


def flatten(tree: Mapping[str, Any], prefix: str = "", is_leaf=lambda key: False) -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}; ``is_leaf(key)`` stops at mappings that are values."""
    flat = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value and not is_leaf(key):
            flat.update(flatten(value, key + ".", is_leaf))
        else:
            flat[key] = value
    return flat


def is_secret(key: str) -> bool:
    """Whether the dotted ``key`` holds a secret (its last part says so)."""
    return bool(_SECRET.search(key.rpartition(".")[2]))


def redact(tree: Mapping[str, Any]) -> dict:
    """A copy with the values of secret-looking keys replaced."""
    out: dict = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            out[name] = redact(value)
        elif is_secret(name) and value not in (None, ""):
            out[name] = REDACTED
        else:
            out[name] = copy.deepcopy(value)
    return out
