"""``auth.type`` and ``auth.<Class>.<setting>``: the authenticator class a config names
and the settings it has, checked with the class's own traits.

Classes are found the way JupyterHub finds them, by their ``jupyterhub.authenticators``
entry point (Hubstead's own is one, ``hubstead``) or a ``module.Class`` path: the config
layer names no class of the hub's.
"""

from importlib.metadata import entry_points

from hubstead.config.schema import ConfigError

ENTRY_POINTS = "jupyterhub.authenticators"


def authenticator_class(auth_type: str) -> type:
    """The class ``auth.type`` names; ConfigError listing the names there are."""
    found = entry_points(group=ENTRY_POINTS, name=auth_type)
    if found:
        return next(iter(found)).load()
    if "." in auth_type:
        module, _, name = auth_type.rpartition(".")
        try:
            return getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"auth.type: {auth_type!r} cannot be loaded ({e})") from None
    known = sorted(ep.name for ep in entry_points(group=ENTRY_POINTS))
    raise ConfigError(f"auth.type: unknown authenticator {auth_type!r}; use one of {', '.join(known)}")


def _trait_for(key: str, auth_type: str):
    """The traitlets trait behind ``auth.<Class>.<trait>``; ConfigError naming what exists."""
    _, class_name, trait_name = key.split(".")
    cls = authenticator_class(auth_type)
    classes = {c.__name__: c for c in cls.__mro__ if hasattr(c, "class_traits")}
    if class_name not in classes:
        raise ConfigError(
            f"{key}: {class_name} is not the authenticator in use ({auth_type} → {cls.__name__}) "
            f"nor one of its bases; use one of {', '.join(sorted(classes))}"
        )
    traits = classes[class_name].class_traits(config=True)
    if trait_name not in traits:
        raise ConfigError(f"{key}: {class_name} has no setting {trait_name!r}")
    return traits[trait_name]


def check_trait(key: str, value, auth_type: str) -> None:
    """Validate a value for ``auth.<Class>.<trait>`` with the trait's own type."""
    from traitlets import TraitError

    trait = _trait_for(key, auth_type)
    try:
        trait.validate(None, value)
    except TraitError as e:
        raise ConfigError(f"{key}: {value!r} is not allowed: {str(e).splitlines()[0]}") from None


def parse_trait_value(key: str, text: str, auth_type: str):
    """A command-line string for ``auth.<Class>.<trait>``, typed by the trait itself."""
    from traitlets import TraitError

    trait = _trait_for(key, auth_type)
    try:
        return trait.from_string(text)
    except (TraitError, ValueError) as e:  # traitlets' own words for a string it can't type
        raise ConfigError(str(e)) from None
