"""Plugins: Python packages named in ``plugins`` that add to what Hubstead sets up.

A plugin is a distribution in the hub's environment with an entry point in the group
``hubstead`` pointing at a module (or object) whose functions carry ``hookimpl``. The
hooks mean what The Littlest JupyterHub's ``tljh_*`` hooks of the same suffix mean;
only those of the plugins listed in config.yaml are called, so taking a plugin out of
the list switches it off without uninstalling it.
"""

import functools
import importlib
import importlib.metadata

import pluggy
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hubstead.config import schema
from hubstead.config.model import Settings

PROJECT = "hubstead"
ENTRY_POINT_GROUP = "hubstead"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class HookSpecs:
    @hookspec
    def hubstead_extra_user_pip_packages(self) -> list[str]:  # type: ignore[empty-body]
        """pip requirements to install into the user environment (either manager)."""

    @hookspec
    def hubstead_extra_user_conda_packages(self) -> list[str]:  # type: ignore[empty-body]
        """conda-forge packages to install into the user environment (conda manager)."""

    @hookspec
    def hubstead_extra_apt_packages(self) -> list[str]:  # type: ignore[empty-body]
        """Debian packages to install on the machine."""

    @hookspec
    def hubstead_extra_hub_pip_packages(self) -> list[str]:  # type: ignore[empty-body]
        """pip requirements to install into the hub's environment."""

    @hookspec
    def hubstead_config_post_install(self, config: dict) -> None:
        """Change config.yaml's contents (a dict, changed in place) during `hubstead install`;
        the result is validated before it is written."""

    @hookspec
    def hubstead_custom_jupyterhub_config(self, c) -> None:
        """Change JupyterHub's config object ``c`` after Hubstead's settings, before
        jupyterhub_config.d."""

    @hookspec
    def hubstead_post_install(self) -> None:
        """Run at the end of `hubstead install` (and so of every upgrade)."""

    @hookspec
    def hubstead_new_user(self, username: str) -> None:
        """Run when hub user ``username`` gets a new Unix account (as root, in the hub)."""


def plugin_names(effective: Settings) -> frozenset[str]:
    """The distributions the ``plugins`` setting names."""
    return frozenset(canonicalize_name(Requirement(spec).name) for spec in effective["plugins"])


@functools.lru_cache(maxsize=4)
def _manager(names: frozenset[str]) -> pluggy.PluginManager:
    importlib.invalidate_caches()  # a plugin installed since this process started
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(HookSpecs)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.dist is not None and canonicalize_name(entry.dist.name) in names:
            manager.register(entry.load(), name=f"{entry.dist.name}:{entry.name}")
    return manager


def hook(effective: Settings):
    """The hooks of the listed plugins that are installed (``hook(e).hubstead_post_install()``)."""
    return _manager(plugin_names(effective)).hook


def loaded(effective: Settings) -> list[str]:
    """The plugins whose hooks are called, as ``distribution:entry point``."""
    return sorted(name for name, _ in _manager(plugin_names(effective)).list_name_plugin())


def forget() -> None:
    """Find the plugins again at the next hook call (after installing some)."""
    _manager.cache_clear()


# What each kind of extra package must pass: the check of the setting it adds to.
EXTRA_KINDS = {"user_pip": "user_environment.pip_packages", "user_conda": "user_environment.conda_packages",
               "apt": "user_environment.apt_packages", "hub_pip": "plugins"}


def extra_packages(effective: Settings, kind: str) -> list[str]:
    """What the plugins add for ``kind`` (one of EXTRA_KINDS), in order, once each; checked
    as the setting it adds to is (a plugin's list goes onto command lines too)."""
    if not effective["plugins"]:
        return []
    lists = getattr(hook(effective), f"hubstead_extra_{kind}_packages")()
    specs = list(dict.fromkeys(spec for specs in lists for spec in specs))
    schema.setting(EXTRA_KINDS[kind]).check(f"a plugin's extra {kind} packages", specs)
    return specs
