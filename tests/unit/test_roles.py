"""The roles as shipped: each is self-contained (its variables prefixed, defaulted and
documented, its templates its own), Hubstead passes the values of hubstead.paths and
config.yaml that the defaults only document, and ansible-lint and ansible's syntax check
pass."""

import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment

from hubstead import config
from hubstead.core import paths
from hubstead.machine import converge

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VARIABLE = re.compile(r"\b(hubstead_[a-z0-9_]+)")
# Computed for each run or machine (settings digest, Miniforge for this architecture,
# where the hub environment has Hubstead's files): the defaults cannot hold Hubstead's
# value and say what an empty one does instead.
PER_RUN = {"hubstead_hub_config_digest", "hubstead_user_env_conda_installer_url",
           "hubstead_user_env_conda_installer_sha256", "hubstead_user_env_pull_guard_source"}


def _role_dirs() -> list[Path]:
    return sorted(p.parent.parent for p in paths.ROLES_DIR.glob("*/tasks/main.yml"))


def test_the_playbook_runs_every_role():
    site = yaml.safe_load((paths.ROLES_DIR / "site.yml").read_text())
    # converge selects roles by tag.
    assert [(r["role"], r["tags"]) for r in site[0]["roles"]] == [(r, [r]) for r in converge.ROLES]
    assert [d.name for d in _role_dirs()] == sorted(converge.ROLES)


def _defaults(role: Path) -> dict:
    return yaml.safe_load((role / "defaults" / "main.yml").read_text())


def _registered(role: Path) -> set:
    """The variables a role makes itself: registered results and facts it sets."""
    pattern = r"register: (\w+)|set_fact:\n\s+(\w+):"
    return {name for p in role.rglob("*.yml") for m in re.findall(pattern, p.read_text()) for name in m if name}


def _used(role: Path) -> set:
    files = [*role.glob("tasks/*.yml"), *role.glob("handlers/*.yml"), *role.glob("templates/*.j2")]
    return {m for p in files for m in VARIABLE.findall(p.read_text())}


def _passed() -> dict:
    """What Hubstead passes for a default config, conda and venv together."""
    return {**converge.role_variables(config.validate({"user_environment": {"manager": "venv"}})),
            **converge.role_variables(config.validate({}))}


@pytest.mark.parametrize("role", _role_dirs(), ids=lambda p: p.name)
def test_a_role_uses_its_own_variables_and_defaults_each(role):
    prefix = f"hubstead_{role.name}_"
    own = set(_defaults(role)) | _registered(role)
    assert {v for v in own if not v.startswith(prefix)} == set()
    assert _used(role) - own == set()
    text = (role / "defaults" / "main.yml").read_text()
    undocumented = [n for n in _defaults(role) if not re.search(rf"#.*\n(\w+:.*\n)*{n}:", text)]
    assert undocumented == []


def test_every_variable_hubstead_passes_is_a_role_default():
    defined = set().union(*(_defaults(role) for role in _role_dirs()))
    assert set(_passed()) - defined == set()


def test_role_defaults_agree_with_what_hubstead_passes():
    defaults = {k: v for role in _role_dirs() for k, v in _defaults(role).items()}
    passed = {k: v for k, v in _passed().items() if k not in PER_RUN}
    assert {k: defaults[k] for k in passed} == passed


@pytest.mark.parametrize("role", _role_dirs(), ids=lambda p: p.name)
def test_templates_belong_to_the_role_that_renders_them(role):
    tasks = "".join(p.read_text() for p in role.glob("tasks/*.yml"))
    assert set(re.findall(r"[\w.-]+\.j2", tasks)) == {p.name for p in role.glob("templates/*.j2")}


@pytest.mark.parametrize("template", sorted(paths.ROLES_DIR.glob("*/templates/*.j2")),
                         ids=lambda p: p.name)
def test_role_template_renders_with_what_hubstead_passes(template):
    role = template.parent.parent
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template.parent),
                             undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["comment"] = comment
    variables = {**_defaults(role), **_passed(), "ansible_managed": "Ansible managed"}
    assert env.get_template(template.name).render(variables).startswith("#\n# Ansible managed\n#\n")


def test_hubsteads_own_templates_are_rendered_by_its_code():
    code = "".join(p.read_text() for p in paths.DATA_DIR.parent.rglob("*.py"))
    for path in paths.TEMPLATES_DIR.glob("*.j2"):
        assert f'"{path.name}"' in code, path.name
        assert path.read_text().startswith("# Written by Hubstead"), path.name


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env})


def test_ansible_lint_passes():
    # Lints the source tree: .ansible-lint (profile, and why a rule is skipped) is there.
    result = _run(str(BIN / "ansible-lint"), "--nocolor", "roles")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("playbook", [converge.SITE_PLAYBOOK, converge.REMOVE_PLAYBOOK])
def test_playbook_syntax_check_passes(playbook):
    result = _run(str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                  str(paths.ROLES_DIR / playbook), ANSIBLE_ROLES_PATH=str(paths.ROLES_DIR))
    assert result.returncode == 0, result.stdout + result.stderr
