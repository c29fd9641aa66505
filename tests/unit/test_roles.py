"""The roles and templates as shipped: they parse, and their variables all come from
hubstead.converge (a typo'd variable would only fail on a real machine)."""

import re

import pytest
import yaml

from hubstead import config, converge, paths

ROLE_FILES = sorted(paths.ROLES_DIR.rglob("*.yml"))
TEMPLATES = sorted(paths.TEMPLATES_DIR.glob("*.j2"))


@pytest.mark.parametrize("path", ROLE_FILES, ids=lambda p: str(p.relative_to(paths.ROLES_DIR)))
def test_role_file_parses(path):
    assert yaml.safe_load(path.read_text()) is not None


def _defaults() -> set:
    names = set()
    for path in paths.ROLES_DIR.glob("*/defaults/main.yml"):
        names |= set(yaml.safe_load(path.read_text()))
    return names


def test_every_variable_used_is_defined():
    defined = _defaults() | set(converge.role_variables(config.validate({"user_environment": {"manager": "venv"}})))
    defined |= set(converge.role_variables(config.validate({})))
    used = set()
    for path in [*ROLE_FILES, *TEMPLATES]:
        used |= set(re.findall(r"\b(hubstead_[a-z0-9_]+)", path.read_text()))
    registered = {m for p in ROLE_FILES for m in re.findall(r"register: (hubstead_\w+)", p.read_text())}
    assert used - defined - registered == set()


def test_every_template_is_used_and_stamped_with_its_writer():
    role_text = "".join(p.read_text() for p in ROLE_FILES)
    code_text = "".join(p.read_text() for p in (paths.DATA_DIR.parent).glob("*.py"))
    for path in TEMPLATES:
        by_role = path.name.removesuffix(".j2") in role_text
        by_code = f'"{path.name}"' in code_text
        assert by_role != by_code, f"{path.name}: written by {'both' if by_role else 'nobody'}"
        header = "{{ ansible_managed | comment }}" if by_role else "# Written by Hubstead"
        assert path.read_text().startswith(header), path.name
