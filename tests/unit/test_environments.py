"""`hubstead env`: what a bad name, version or file gets (one line, nothing changed),
what a good one records for the user_env role, and what a failed build leaves (nothing)."""

import pytest
import yaml
from click.testing import CliRunner

from hubstead import config
from hubstead.cli import main as cli
from hubstead.core import paths
from hubstead.machine import converge, environments, provision


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """config.yaml in a temporary directory, two Pythons in a fake /usr/bin, and the
    converges that would have run (their effective environments)."""
    monkeypatch.setattr(paths, "CONFIG_FILE", tmp_path / "config.yaml")
    monkeypatch.setattr(paths, "CONFIG_LOCK", tmp_path / ".config.lock")
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    system_bin = tmp_path / "bin"
    system_bin.mkdir()
    for name in ("python3", "python3.11", "python3.13", "python3.11-config"):
        (system_bin / name).touch()
    monkeypatch.setattr(environments, "SYSTEM_BIN", system_bin)
    runs: list[tuple[list, dict]] = []

    def fake_provision(effective, roles, on_task=None):
        runs.append((roles, converge.role_variables(effective)["hubstead_user_env_environments"]))
        if any("no-such-package-x" in e["packages"] for e in runs[-1][1]):
            raise converge.ConvergeError("user_env: Install each extra environment's packages: not found")
        return converge.Result(changed=1), 0.1

    monkeypatch.setattr(provision, "run", fake_provision)
    paths.CONFIG_FILE.write_text("# the admin's comment\nbase_url: /\n")
    return runs


def _hubstead(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_the_machines_python_versions_are_found(machine):
    assert environments.python_versions() == ["3.11", "3.13"]


@pytest.mark.parametrize("args, says", [
    (["env", "create", "Bad!"], "invalid environment name 'Bad!'"),
    (["env", "create", "a" * 33], "at most 32 characters"),
    (["env", "create", "stats", "--python", "3.9"], "--python 3.9: not on this machine; it has 3.11, 3.13"),
    (["env", "remove", "nothere"], "no environment 'nothere'"),
])
def test_bad_input_gets_one_line_and_changes_nothing(machine, args, says):
    before = paths.CONFIG_FILE.read_text()
    result = _hubstead(*args)
    assert result.exit_code == 1
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert paths.CONFIG_FILE.read_text() == before
    assert machine == []


def test_create_records_the_environment_and_builds_it_with_the_user_env_role(machine, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# stats course\ncowsay==6.1  # the one package\n\nnumpy>=1.26\n")
    result = _hubstead("env", "create", "stats", "--python", "3.11", "-r", str(requirements))
    assert result.exit_code == 0, result.output
    assert config.load()["environments"] == {"stats": {"python": "3.11", "packages": ["cowsay==6.1", "numpy>=1.26"]}}
    assert "# the admin's comment" in paths.CONFIG_FILE.read_text()
    [(roles, built)] = machine
    assert "user_env" in roles
    assert built == [{"name": "stats", "python": "3.11", "packages": ["cowsay==6.1", "numpy>=1.26"]}]
    assert _hubstead("env", "create", "stats").exit_code == 1  # there already


def test_a_build_that_fails_leaves_no_record_and_removes_what_was_built(machine):
    result = _hubstead("env", "create", "broken", "-r", "/dev/null")
    assert result.exit_code == 0
    paths_before = paths.CONFIG_FILE.read_text()
    with pytest.raises(converge.ConvergeError):
        environments.create("other", None, ["no-such-package-x"])
    assert set(config.load()["environments"]) == {"broken"}
    assert paths.CONFIG_FILE.read_text() == paths_before
    # The second converge ran without it: the role removes what was made of it.
    assert [e["name"] for e in machine[-1][1]] == ["broken"]


def test_remove_forgets_the_environment_and_converges_without_it(machine):
    assert _hubstead("env", "create", "stats").exit_code == 0
    assert _hubstead("env", "remove", "stats").exit_code == 0
    assert "environments" not in yaml.safe_load(paths.CONFIG_FILE.read_text())
    assert machine[-1][1] == []


@pytest.mark.parametrize("line", ["-e .", "--index-url http://x", "-r other.txt", "not a requirement!"])
def test_a_requirements_line_pip_alone_would_take_is_refused_with_its_line(tmp_path, line):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"pandas\n{line}\n")
    with pytest.raises(environments.EnvironmentRefused, match=r"requirements.txt:2: "):
        environments.read_requirements(requirements)


def test_an_environment_file_gives_its_python_and_pip_packages(tmp_path):
    env_file = tmp_path / "environment.yml"
    env_file.write_text("name: stats\ndependencies:\n  - python=3.11\n  - pip\n"
                        "  - pip:\n    - cowsay\n    - numpy>=2\n")
    assert environments.read_environment_file(env_file) == ("3.11", ["cowsay", "numpy>=2"])


def test_an_environment_file_with_conda_packages_is_refused(tmp_path):
    env_file = tmp_path / "environment.yml"
    env_file.write_text("dependencies:\n  - python=3.11\n  - scipy\n")
    with pytest.raises(environments.EnvironmentRefused, match="conda package 'scipy'.*venv"):
        environments.read_environment_file(env_file)


def test_each_environment_gets_a_kernel_name_no_other_kernel_has():
    extra = {"ir": {"packages": []}, "python3": {"packages": []}}
    variables = converge.role_variables(config.validate({"user_environment": {"manager": "venv", "r": True},
                                                         "environments": extra}))
    kernels = {variables["hubstead_user_env_env_kernel_prefix"] + e["name"]
               for e in variables["hubstead_user_env_environments"]}
    assert kernels.isdisjoint({"python3", variables["hubstead_user_env_r_kernel"]})


def test_r_in_conda_mode_adds_conda_forges_r_kernel():
    effective = config.validate({"user_environment": {"r": True, "conda_packages": ["scipy"]}})
    assert converge.role_variables(effective)["hubstead_user_env_conda_packages"] == ["scipy", "r-irkernel"]
