"""The types mypy checks lookups against (config.model) name exactly the schema's keys:
a key added to one and not the other fails here."""

import re
from typing import get_args, get_origin, get_type_hints, is_typeddict

from hubstead.config import model, schema


def _keys(cls, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, hint in get_type_hints(cls).items():
        key = prefix + name
        if is_typeddict(hint):
            keys |= _keys(hint, key + ".")
        elif get_origin(hint) is dict and is_typeddict(get_args(hint)[1]):  # limits.groups.<group>.…
            keys |= _keys(get_args(hint)[1], key + ".<group>.")
        elif get_origin(hint) is dict:  # users.extra_user_groups.<group>
            keys.add(key + ".<group>")
        else:
            keys.add(key)
    return keys


def test_the_settings_types_name_the_schemas_keys():
    # auth.<Class>.<setting> is the one the types leave open: any authenticator's traits.
    # A mapping's key is the admin's choice whatever the schema calls it (<group>, <env>).
    any_name = {re.sub(r"<\w+>", "<group>", s.key) for s in schema.SCHEMA if s is not schema.AUTH_TRAIT}
    assert _keys(model.Settings) == any_name
