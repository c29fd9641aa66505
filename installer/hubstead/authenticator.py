"""Authenticators: Hubstead's own password store, and the Unix-account hook that every
authenticator gets.

Adding a hub user (admin page, REST API, CLI, first login) creates its Unix account at
once, so the machine follows the hub whatever route added the user.
"""

import asyncio
from importlib.metadata import entry_points

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from . import paths, unixusers
from .passwords import PasswordStore


class UnixAccountsMixin:
    """Create the Unix account of each hub user when JupyterHub adds the user."""

    async def add_user(self, user):
        # super() validates the name: an invalid one must never reach useradd.
        result = super().add_user(user)
        if asyncio.iscoroutine(result):
            await result
        await asyncio.to_thread(unixusers.ensure, user.name)


class HubsteadAuthenticator(UnixAccountsMixin, Authenticator):
    password_store = Unicode(
        str(paths.PASSWORD_STORE), config=True, help="JSON file of password hashes (root only)."
    )

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        # argon2 takes ~0.1 s of CPU: keep the event loop free for the other logins.
        ok = await asyncio.to_thread(PasswordStore(self.password_store).verify, name, password)
        return name if ok else None


def for_type(auth_type: str) -> type:
    """The authenticator class for config key ``auth.type``, with Unix accounts mixed in.

    ``hubstead`` is our own; other values are JupyterHub authenticator names
    (``firstuse``, ``github``, ``ldapauthenticator``…) or ``module.Class`` paths.
    """
    if auth_type == "hubstead":
        return HubsteadAuthenticator
    found = entry_points(group="jupyterhub.authenticators", name=auth_type)
    if found:
        base = next(iter(found)).load()
    elif "." in auth_type:
        module, _, name = auth_type.rpartition(".")
        base = getattr(__import__(module, fromlist=[name]), name)
    else:
        known = sorted({"hubstead", *(ep.name for ep in entry_points(group="jupyterhub.authenticators"))})
        raise ValueError(f"auth.type: unknown authenticator {auth_type!r}; use one of {', '.join(known)}")
    return type(base.__name__, (UnixAccountsMixin, base), {"__module__": __name__})


def _trait_for(key: str, auth_type: str):
    """The traitlets trait behind ``auth.<Class>.<trait>``; ValueError naming what exists."""
    _, class_name, trait_name = key.split(".")
    cls = for_type(auth_type)
    classes = {c.__name__: c for c in cls.__mro__ if hasattr(c, "class_traits")}
    if class_name not in classes:
        raise ValueError(
            f"{key}: {class_name} is not the authenticator in use ({auth_type} → {cls.__name__}) "
            f"nor one of its bases; use one of {', '.join(sorted(classes))}"
        )
    traits = classes[class_name].class_traits(config=True)
    if trait_name not in traits:
        raise ValueError(f"{key}: {class_name} has no setting {trait_name!r}")
    return traits[trait_name]


def check_trait(key: str, value, auth_type: str) -> None:
    """Validate a value for ``auth.<Class>.<trait>`` with the trait's own type."""
    from traitlets import TraitError

    trait = _trait_for(key, auth_type)
    try:
        trait.validate(None, value)
    except TraitError as e:
        raise ValueError(f"{key}: {value!r} is not allowed: {str(e).splitlines()[0]}") from None


def parse_trait_value(key: str, text: str, auth_type: str):
    """A command-line string for ``auth.<Class>.<trait>``, typed by the trait itself."""
    return _trait_for(key, auth_type).from_string(text)
