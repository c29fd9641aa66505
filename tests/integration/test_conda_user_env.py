"""The conda user environment, built by the user_env role on this host (no systemd, no
target machine), from a FAKE Miniforge installer (fake_miniforge/): conda-forge and GitHub
are out of reach from test machines. Runs as root because ansible writes as root. Also
`hubstead packages` in conda mode, against the fake mamba's stand-in channel. This host
has no systemd to start the owner's sandboxed unit: the environment's programs run as
root here, its owner being root (a booted target's run as hubstead-env:
test_teacher_package_attacks_e2e.py)."""

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

from hubstead import config
from hubstead.core import audit, paths
from hubstead.machine import converge, packages

pytestmark = pytest.mark.integration

FAKE_INSTALLER = Path(__file__).parent / "fake_miniforge" / "fake-miniforge-installer.sh"
FAKE_INSTALLER_SHA256 = hashlib.sha256(FAKE_INSTALLER.read_bytes()).hexdigest()


@pytest.fixture
def prefix(tmp_path):
    return tmp_path / "user"


@pytest.fixture
def cache(tmp_path):
    # Ends in .sh like the default: a real Miniforge installer insists on it.
    return tmp_path / "cache" / "miniforge-installer.sh"


NO_OWNER = {"hubstead_user_env_owner": "root", "hubstead_user_env_as_owner": []}


@pytest.fixture
def variables(prefix, cache, tmp_path):
    effective = config.validate({
        "user_environment": {
            "manager": "conda",
            "conda_packages": ["numpy"],
            "conda_installer": {"url": str(FAKE_INSTALLER), "sha256": FAKE_INSTALLER_SHA256},
        },
    })
    variables = converge.role_variables(effective)
    variables.update(
        hubstead_user_env_dir=str(prefix),
        hubstead_user_env_conda_installer_cache=str(cache),
        hubstead_user_env_server_config_dir=str(tmp_path / "etc" / "jupyter"),
        hubstead_user_env_kernels_dir=str(tmp_path / "share" / "jupyter" / "kernels"),
        hubstead_user_env_envs_dir=str(tmp_path / "envs"),
        **NO_OWNER,
        # One small real package keeps pip honest and the test fast.
        hubstead_user_env_base_packages=["six"],
    )
    return variables


@pytest.fixture
def converge_user_env(tmp_path):
    def run(variables):
        return converge.run(variables, roles=("user_env",), runs_dir=tmp_path / "runs")

    return run


def calls(prefix: Path) -> list[str]:
    """What the fake installer, conda and mamba were asked to do, in order."""
    return (prefix / "fake-conda-calls.log").read_text().splitlines()


@pytest.mark.parametrize("url_form", ["path", "file-url"])
def test_builds_the_environment_once_then_leaves_it_alone(
        url_form, variables, prefix, cache, converge_user_env):
    if url_form == "file-url":
        variables["hubstead_user_env_conda_installer_url"] = FAKE_INSTALLER.as_uri()

    first = converge_user_env(variables)

    assert first.changed > 0
    assert (prefix / "bin" / "conda").is_file()
    subprocess.run([prefix / "bin" / "python", "-c", "import six"], check=True)
    assert calls(prefix) == [
        f"fake-miniforge-installer -b -u -p {prefix}",
        f"mamba install --yes --prefix {prefix} --channel conda-forge numpy",
    ]

    downloaded = cache.stat().st_mtime_ns
    second = converge_user_env(variables)

    assert second.changed == 0, second.changed_tasks
    assert cache.stat().st_mtime_ns == downloaded
    # mamba is asked again (and finds numpy there); the installer is not run again.
    assert [c for c in calls(prefix) if c.startswith("fake-miniforge-installer")] == [
        f"fake-miniforge-installer -b -u -p {prefix}",
    ]


def test_wrong_checksum_stops_before_installing(variables, prefix, cache, converge_user_env):
    variables["hubstead_user_env_conda_installer_sha256"] = "0" * 64

    with pytest.raises(converge.ConvergeError, match="checksum"):
        converge_user_env(variables)

    assert not prefix.exists()
    assert not cache.exists()


@pytest.mark.parametrize("name", ["notes.txt", ".notes"])
def test_refuses_a_directory_that_is_not_conda(name, variables, prefix, converge_user_env):
    prefix.mkdir()
    (prefix / name).write_text("a teacher's notes\n")

    with pytest.raises(converge.ConvergeError) as failure:
        converge_user_env(variables)

    assert f"{prefix} exists, is not empty and is not a conda environment" in str(failure.value)
    assert [p.name for p in prefix.iterdir()] == [name]
    assert (prefix / name).read_text() == "a teacher's notes\n"


def test_installs_into_an_empty_directory(variables, prefix, converge_user_env):
    # e.g. a mount point made ready for the user environment
    prefix.mkdir()

    converge_user_env(variables)

    assert (prefix / "bin" / "conda").is_file()


@pytest.fixture
def conda_machine(variables, prefix, tmp_path, monkeypatch, converge_user_env):
    """This host's paths pointed at a built (FAKE) conda user environment and a config in
    tmp_path; the roles run with the fixture's variables, as `hubstead packages` runs them."""
    converge_user_env(variables)
    for name, path in {"USER_ENV": prefix, "CONFIG_FILE": tmp_path / "config.yaml",
                       "CONFIG_LOCK": tmp_path / ".config.lock", "APPLIED_CONFIG": tmp_path / "applied.json"}.items():
        monkeypatch.setattr(paths, name, path)
    paths.CONFIG_FILE.write_text(yaml.safe_dump({"user_environment": {
        "manager": "conda", "conda_installer": {"url": str(FAKE_INSTALLER), "sha256": FAKE_INSTALLER_SHA256}}}))
    role_variables = converge.role_variables
    monkeypatch.setattr(converge, "role_variables", lambda effective: {
        **role_variables(effective), **{k: v for k, v in variables.items() if not k.endswith("_packages")},
        "hubstead_user_env_base_packages": variables["hubstead_user_env_base_packages"]})
    run, runs_dir = converge.run, tmp_path / "runs"
    monkeypatch.setattr(converge, "run",
                        lambda variables, roles, on_task=None: run(variables, roles, runs_dir=runs_dir))
    monkeypatch.setattr(audit, "send", lambda message, **fields: None)
    monkeypatch.setattr(converge, "as_user_env_owner", lambda effective: NO_OWNER["hubstead_user_env_as_owner"])


def fake_installed(prefix: Path) -> list[str]:
    return (prefix / "fake-conda-installed").read_text().split()


def test_conda_packages_are_resolved_added_and_removed(conda_machine, prefix):
    assert packages.add("conda", ["scipy"]) == ["scipy"]

    assert "scipy" in fake_installed(prefix)
    assert config.load()["user_environment"]["conda_packages"] == ["scipy"]
    # Resolved with a dry run first, then installed by the role.
    assert [c for c in calls(prefix) if "scipy" in c][0].startswith("mamba install --dry-run")

    packages.remove("conda", ["scipy"])

    assert "scipy" not in fake_installed(prefix)
    assert config.load()["user_environment"]["conda_packages"] == []


def test_an_unknown_conda_package_changes_nothing(conda_machine, prefix):
    config_before, installed_before = paths.CONFIG_FILE.read_text(), fake_installed(prefix)

    with pytest.raises(packages.PackageError) as refused:
        packages.add("conda", ["scipy", "no-such-conda-package"])

    assert str(refused.value) == ("conda packages scipy, no-such-conda-package: cannot be installed: "
                                  "no-such-conda-package does not exist (perhaps a typo or a missing channel).")
    assert paths.CONFIG_FILE.read_text() == config_before
    assert fake_installed(prefix) == installed_before


def test_pip_packages_go_into_the_conda_environment_with_its_pip(conda_machine, prefix):
    packages.add("pip", ["tabulate"])

    subprocess.run([prefix / "bin" / "python", "-c", "import tabulate"], check=True)
    packages.remove("pip", ["tabulate"])
    assert subprocess.run([prefix / "bin" / "python", "-c", "import tabulate"]).returncode == 1
