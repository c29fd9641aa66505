"""Packages for everyone (`hubstead packages`, the teacher's page) and plugins.

pip and conda packages go into the user environment, apt packages onto the machine.
Each is recorded in config.yaml (user_environment.{pip,conda,apt}_packages) and
installed by the role that applies that key, so `config apply` and every upgrade put
them back. A name is resolved against its registry first (a dry run): one that does not
exist, or does not fit the environment, is one line and changes nothing. Removing
uninstalls only what Hubstead recorded.

Plugins (the ``plugins`` setting) are installed into the hub's own environment before
the roles run: their hooks add to the roles' package lists.
"""

import itertools
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hubstead import config
from hubstead.config import keys, plugins, schema
from hubstead.config.model import Settings
from hubstead.core import audit, paths, state
from hubstead.core.errors import HubsteadError
from hubstead.machine import converge

KINDS = ("pip", "conda", "apt")
KEYS = {"pip": "user_environment.pip_packages", "conda": "user_environment.conda_packages",
        "apt": "user_environment.apt_packages"}
PLUGIN_KINDS = {"pip": "user_pip", "conda": "user_conda", "apt": "apt"}
# apt-get run by Hubstead never asks (nobody answers) and always speaks English (we read it).
APT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}


class PackageError(HubsteadError, ValueError):
    """A package that cannot be added or removed; the message says which and why."""


def name_of(kind: str, spec: str) -> str:
    """The package a spec names (``numpy>=2`` → ``numpy``), as its installer compares names."""
    if kind == "pip":
        return canonicalize_name(Requirement(spec).name)
    if kind == "conda":
        return re.split(r"[=<>!~]", spec, maxsplit=1)[0].lower()
    return spec.split(":")[0]


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=env)


# Where an installer's complaint starts saying what is wrong (uv, apt-get, pip, mamba).
REASON_MARKERS = ("Because ", "E: ", "ERROR: ", "nothing provides", "PackagesNotFoundError", "error: ")


def _reason(output: str) -> str:
    """The sentence of an installer's complaint that says what is wrong, on one line,
    without its box-drawing decoration."""
    lines = [line.strip(" ×╰─▶│└") for line in output.splitlines()]
    for marker in REASON_MARKERS:
        for i, line in enumerate(lines):
            if marker in line:
                # uv wraps its sentence over the lines that follow, up to a blank one.
                rest = itertools.takewhile(lambda more: more and not any(m in more for m in REASON_MARKERS),
                                           lines[i + 1:])
                return " ".join([line, *rest])
    said = [line for line in lines if line]
    return said[-1] if said else "no output"


def _pip_argv(effective: Settings, *args: str) -> list[str]:
    """pip or uv acting on the user environment as the user_env role does for its manager:
    as the environment's owner, wheels only."""
    if effective["user_environment"]["manager"] == "venv":
        return converge.uv_pip_install(effective, *args)
    return [*converge.as_user_env_owner(effective), str(paths.USER_ENV / "bin" / "python"), "-m", "pip", "install",
            "--no-input", "--disable-pip-version-check", converge.BINARY_ONLY["pip"],
            *converge.user_env_index_options(effective), *args]


def _as_owner(effective: Settings, *argv: str) -> subprocess.CompletedProcess:
    """``argv`` run on the user environment by its owner (never by root)."""
    return _run([*converge.as_user_env_owner(effective), *argv])


def _apt_installed(name: str) -> bool:
    result = _run(["dpkg-query", "-W", "-f=${db:Status-Status}", name], APT_ENV)
    return result.returncode == 0 and result.stdout.strip() == "installed"


def _check_for_teacher(kind: str, specs: list[str]) -> None:
    """What a teacher (not root) adds comes from the package index by name. (Nothing of
    any package runs as root: the user environment's owner installs it, wheels only.)"""
    if kind != "pip":
        return  # Debian's and conda-forge's packages come built from their archives
    direct = [spec for spec in specs if Requirement(spec).url]
    if direct:
        raise PackageError(f"pip package {', '.join(direct)}: a teacher adds packages from the package index by "
                           "name; a URL or path is for root (sudo hubstead packages add)")


def resolve(effective: Settings, kind: str, specs: list[str]) -> None:
    """Raise PackageError unless ``specs`` can be installed (nothing is installed), as
    the role installs them."""
    if kind == "pip":
        result = _run(_pip_argv(effective, "--dry-run", *specs))
    elif kind == "conda":
        result = _as_owner(effective, str(paths.USER_ENV / "bin" / "mamba"), "install", "--dry-run", "--yes",
                           "--prefix", str(paths.USER_ENV), "--channel", "conda-forge", *specs)
    else:
        # Installed already, and not by us: removing it later would take what the machine had.
        theirs = [name for name in specs if _apt_installed(name_of("apt", name))]
        if theirs:
            raise PackageError(f"apt package {', '.join(theirs)}: already installed on this machine, not by "
                               "Hubstead; it stays as it is (nothing to add)")
        simulate = ["apt-get", "install", "--simulate", "--quiet", "--no-install-recommends", *specs]
        result = _run(simulate, APT_ENV)
        if result.returncode != 0 and "Unable to locate" in result.stderr:
            _run(["apt-get", "update", "--quiet"], APT_ENV)  # the lists may predate the package
            result = _run(simulate, APT_ENV)
    if result.returncode != 0:
        raise PackageError(f"{kind} package{'s' if len(specs) > 1 else ''} {', '.join(specs)}: cannot be installed: "
                           f"{_reason(result.stderr + result.stdout)}")


def _apply(effective: Settings, kind: str, on_task: Callable | None) -> converge.Result:
    """Run the role that installs ``kind`` packages, and record the key as applied."""
    role = "base" if kind == "apt" else "user_env"
    result = converge.run(converge.role_variables(effective), roles=(role,), on_task=on_task)
    applied = state.load_applied()
    if applied is not None:
        state.save_applied(keys.set_(applied, KEYS[kind], keys.get(dict(effective), KEYS[kind])))
    return result


def _check_manager(effective: Settings, kind: str) -> None:
    manager = effective["user_environment"]["manager"]
    if kind == "conda" and manager != "conda":
        raise PackageError(f"conda packages need user_environment.manager conda; this machine's is {manager}: "
                           "use --pip")


def add(kind: str, specs: list[str], on_task: Callable | None = None, actor: str | None = None) -> list[str]:
    """Check, resolve, record and install ``specs``; returns those that were new (a spec
    replaces the recorded one of the same name, e.g. ``numpy>=2`` for ``numpy``).
    ``actor``: the teacher the teacher's page asks for (checked as _check_for_teacher
    says, and named in the audit trail); None: root at the command line."""
    key = KEYS[kind]
    schema.setting(key).check(key, specs)  # one line naming the bad spec
    before = config.load()
    _check_manager(before, kind)
    current: list[str] = keys.get(dict(before), key)
    new = [spec for spec in dict.fromkeys(specs) if spec not in current]
    if not new:
        return []
    replaced = {name_of(kind, spec) for spec in new}
    updated = [spec for spec in current if name_of(kind, spec) not in replaced] + new
    if actor is not None:
        _check_for_teacher(kind, new)
    resolve(before, kind, new)
    with config.edit() as user_config:
        previous = keys.get(config.merge(config.DEFAULTS, user_config), key)
        user_config.update(keys.set_(user_config, key, updated))
        after = config.validate(user_config)
    try:
        _apply(after, kind, on_task)
    except Exception:
        with config.edit() as user_config:  # the role failed: the record goes with it
            user_config.update(keys.set_(user_config, key, previous))
        raise
    audit.record("packages-added", f"{kind}: {', '.join(new)}", actor)
    return new


def _required_by(effective: Settings, name: str) -> list[str]:
    """The installed packages of the user environment that need pip package ``name``."""
    if effective["user_environment"]["manager"] == "venv":
        argv = [str(paths.HUB_ENV / "bin" / "uv"), "pip", "show", "-p", str(paths.USER_ENV / "bin" / "python"), name]
    else:
        argv = [str(paths.USER_ENV / "bin" / "python"), "-m", "pip", "show", name]
    for line in _as_owner(effective, *argv).stdout.splitlines():
        if line.startswith("Required-by:"):
            return [n.strip() for n in line.partition(":")[2].split(",") if n.strip()]
    return []


def _uninstall(effective: Settings, kind: str, name: str) -> str:
    """Uninstall ``name``; what happened, in words."""
    if kind == "pip":
        needed_by = _required_by(effective, name)
        if needed_by:
            return f"{name} stays installed: {', '.join(needed_by)} need(s) it"
        if effective["user_environment"]["manager"] == "venv":
            argv = [str(paths.HUB_ENV / "bin" / "uv"), "pip", "uninstall", "-p", str(paths.USER_ENV / "bin" / "python"),
                    name]
        else:
            argv = [str(paths.USER_ENV / "bin" / "python"), "-m", "pip", "uninstall", "--yes", name]
        result = _as_owner(effective, *argv)
    elif kind == "conda":
        result = _as_owner(effective, str(paths.USER_ENV / "bin" / "mamba"), "remove", "--yes", "--prefix",
                           str(paths.USER_ENV), name)
    else:
        result = _run(["apt-get", "remove", "--yes", "--quiet", name], APT_ENV)
    if result.returncode != 0:
        raise PackageError(f"{kind} package {name}: cannot be removed: {_reason(result.stderr + result.stdout)}")
    return f"{name} uninstalled"


def _check_removes_only(name: str) -> None:
    """apt removes what depends on a package with it: refuse when that is more than ``name``."""
    simulated = _run(["apt-get", "remove", "--simulate", "--quiet", name], APT_ENV)
    others = [line.split()[1] for line in simulated.stdout.splitlines()
              if line.startswith("Remv ") and line.split()[1] != name]
    if others:
        raise PackageError(f"apt package {name}: removing it would also remove {', '.join(others)}, which "
                           "need it; nothing was removed")


def remove(kind: str, names: list[str], actor: str | None = None) -> list[str]:
    """Uninstall recorded packages named ``names`` and take them out of config.yaml;
    returns what happened to each."""
    key = KEYS[kind]
    effective = config.load()
    _check_manager(effective, kind)
    current: list[str] = keys.get(dict(effective), key)
    recorded = {name_of(kind, spec): spec for spec in current}
    wanted = list(dict.fromkeys(name_of(kind, name) if _parses(kind, name) else name for name in names))
    unknown = [name for name in wanted if name not in recorded]
    if unknown:
        raise PackageError(f"{kind} package {', '.join(unknown)}: not added by Hubstead (it removes only what "
                           f"it added: {', '.join(current) or 'nothing yet'})")
    if kind == "apt":
        for name in wanted:
            _check_removes_only(name)
    done = [_uninstall(effective, kind, name) for name in wanted]
    with config.edit() as user_config:
        user_config.update(keys.set_(user_config, key, [spec for spec in current if name_of(kind, spec) not in wanted]))
        after = config.validate(user_config)
    applied = state.load_applied()
    if applied is not None:
        state.save_applied(keys.set_(applied, key, keys.get(dict(after), key)))
    audit.record("packages-removed", f"{kind}: {', '.join(wanted)}", actor)
    return done


def _parses(kind: str, name: str) -> bool:
    try:
        name_of(kind, name)
    except ValueError:  # packaging's InvalidRequirement is one
        return False
    return True


def listed(effective: Settings) -> dict[str, list[tuple[str, str]]]:
    """Per kind: (spec, where it comes from: ``config`` or ``plugin``)."""
    return {kind: [(spec, "config") for spec in keys.get(dict(effective), KEYS[kind])]
            + [(spec, "plugin") for spec in plugins.extra_packages(effective, PLUGIN_KINDS[kind])]
            for kind in KINDS}


def _install_into_hub(effective: Settings, specs: list[str], what: str) -> None:
    if not specs:
        return
    result = _run([str(Path(sys.executable).parent / "uv"), "pip", "install", "--compile-bytecode",
                   "-p", sys.executable, *converge.index_options(effective), *specs])
    if result.returncode != 0:
        raise PackageError(f"{what} {', '.join(specs)}: cannot be installed into the hub's environment: "
                           f"{_reason(result.stderr + result.stdout)}")


def install_plugins(effective: Settings) -> None:
    """The listed plugins, then the hub packages their hooks ask for, into the hub's
    environment (the one running this; an upgrade's way back restores it whole)."""
    _install_into_hub(effective, effective["plugins"], "plugin")
    plugins.forget()
    _install_into_hub(effective, plugins.extra_packages(effective, "hub_pip"), "the plugins' hub package")
