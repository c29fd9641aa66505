"""Named extra environments (`hubstead env`): a second course's Python, with its own
packages, as a kernel in every student's launcher.

Each is recorded in config.yaml (``environments.<name>``) and built by the user_env role,
so `config apply` and `upgrade` make it again; here are the checks that come before
(name, Python version, the packages a requirements or environment file names) and the
change of the settings with the converge that follows.
"""

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from hubstead import config
from hubstead.config import schema
from hubstead.config.model import Environment, Settings
from hubstead.core.errors import HubsteadError
from hubstead.machine import converge, provision

_NAME = re.compile(rf"^{schema.PLACEHOLDERS['env']}$")
# Where the machine's Pythons are (an environment never gets a downloaded one).
SYSTEM_BIN = Path("/usr/bin")


class EnvironmentRefused(HubsteadError, ValueError):
    """A name, version or file an environment cannot be made from."""


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise EnvironmentRefused(f"invalid environment name {name!r}: use {schema.ENV_NAME_ALLOWED}")
    return name


def python_versions() -> list[str]:
    """The Python 3 versions this machine has, e.g. ['3.11']."""
    found = {p.name.removeprefix("python") for p in SYSTEM_BIN.glob("python3.*")}
    return sorted((v for v in found if schema.PYTHON_VERSION.match(v)), key=lambda v: int(v.split(".")[1]))


def check_python(version: str | None) -> None:
    if version is None:
        return
    available = python_versions()
    if version not in available:
        raise EnvironmentRefused(f"--python {version}: not on this machine; it has {', '.join(available) or 'none'}")


def read_requirements(path: Path) -> list[str]:
    """The requirements in a requirements.txt: one per line, comments and blanks skipped;
    pip's options (-e, --index-url, -r) are refused (the environment installs by name)."""
    packages = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if not schema.is_pip_requirement(line):
            raise EnvironmentRefused(f"{path}:{number}: {line!r} is not a pip requirement like pandas or "
                                     "numpy>=2 (options such as -e or --index-url are not taken)")
        packages.append(line)
    return packages


def read_environment_file(path: Path) -> tuple[str | None, list[str]]:
    """(python version, pip packages) of a conda environment.yml: its ``python=3.x``
    and its ``pip:`` list. Other conda packages are refused: the environment is a venv."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EnvironmentRefused(f"{path}: not valid YAML: {e}") from None
    dependencies = data.get("dependencies", []) if isinstance(data, dict) else None
    if not isinstance(dependencies, list):
        raise EnvironmentRefused(f"{path}: no list of dependencies")
    python, packages = None, []
    for item in dependencies:
        if isinstance(item, dict) and isinstance(item.get("pip"), list):
            packages += [str(p) for p in item["pip"]]
        elif isinstance(item, str) and re.match(r"^(python|pip)\b", item):
            version = re.match(r"^python\s*=+\s*(3\.\d+)", item)
            python = version[1] if version else python
        else:
            raise EnvironmentRefused(f"{path}: conda package {item!r}: an extra environment is a venv; "
                                     "list pip packages under `pip:`")
    return python, packages


def roles() -> list[str]:
    """The roles that build environments (from the schema)."""
    return schema.roles_for(["environments.any.packages"])


def _converge(on_task: Callable | None) -> converge.Result:
    result, _ = provision.run(config.load(), roles(), on_task=on_task)
    return result


def create(name: str, python: str | None, packages: list[str],
           on_task: Callable | None = None) -> converge.Result:
    """Record the environment and build it; if the build fails (a package that does not
    exist), the record goes and what was built of it too."""
    validate_name(name)
    check_python(python)
    with config.edit() as user_config:
        environments = user_config.setdefault("environments", {})
        if name in environments:
            raise EnvironmentRefused(f"environment {name!r} exists; remove it first (hubstead env remove {name})")
        entry: Environment = {"packages": packages}
        if python:
            entry["python"] = python
        environments[name] = entry
    try:
        return _converge(on_task)
    except Exception:
        _forget(name)
        _converge(None)
        raise


def _forget(name: str) -> None:
    with config.edit() as user_config:
        environments = user_config.get("environments", {})
        environments.pop(name, None)
        if not environments:
            user_config.pop("environments", None)


def remove(name: str, on_task: Callable | None = None) -> converge.Result:
    validate_name(name)
    if name not in config.load()["environments"]:
        raise EnvironmentRefused(f"no environment {name!r} (see: hubstead env list)")
    _forget(name)
    return _converge(on_task)


def listing(effective: Settings) -> dict[str, Environment]:
    return dict(sorted(effective["environments"].items()))
