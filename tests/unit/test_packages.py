"""`hubstead packages` on a config.yaml in a temporary directory, with the installers
(uv, apt-get, dpkg-query) and the roles replaced by a FAKE registry and machine that
answer as the real ones do: what is checked before anything is recorded, what is
recorded, what is removed. The real installers run in tests/integration/test_packages_e2e.py."""

import json
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from hubstead.cli import main as cli
from hubstead.core import paths
from hubstead.machine import converge, packages

UV_NOT_FOUND = ("  × No solution found when resolving dependencies:\n"
                "  ╰─▶ Because {name} was not found in the package registry and you require {name}, we can\n"
                "      conclude that your requirements are unsatisfiable.\n")


class FakeMachine:
    """A registry (what exists), the user environment and the machine's Debian packages."""

    def __init__(self):
        self.registry = {"pip": {"pandas", "tabulate", "six"}, "apt": {"tree", "pandoc", "coreutils"}}
        self.installed = {"pip": {"six"}, "apt": {"coreutils"}}  # six: a dependency of the base packages
        self.required_by = {"six": ["python-dateutil"]}
        self.apt_depends = {"pandoc-citeproc-filters": ["pandoc"]}
        self.calls: list[list[str]] = []
        self.roles_run: list[tuple[str, ...]] = []

    def run(self, argv, env=None):
        self.calls.append(argv)
        if argv[0] == "systemd-run":  # as the user environment's owner, never as root
            assert f"--property=User={paths.USER_ENV_OWNER}" in argv and "--property=NoNewPrivileges=yes" in argv
            argv = argv[argv.index("--") + 1:]
        elif any(str(paths.USER_ENV) in word for word in argv):
            raise AssertionError(f"root runs a program on the user environment: {argv}")
        words = [w for w in argv if not w.startswith("-")]
        if "uv" in argv[0] and argv[1:3] == ["pip", "install"]:
            names = [w for w in words[3:] if not w.startswith("/")]
            missing = [n for n in names if n.split(">")[0].split("=")[0] not in self.registry["pip"]]
            if missing:
                return self._done(argv, 1, stderr=UV_NOT_FOUND.format(name=missing[0]))
            return self._done(argv, 0, stderr="Would install 1 package\n")
        if "uv" in argv[0] and argv[1:3] == ["pip", "show"]:
            name = words[-1]
            return self._done(argv, 0, f"Name: {name}\nRequired-by: {', '.join(self.required_by.get(name, []))}\n")
        if "uv" in argv[0] and argv[1:3] == ["pip", "uninstall"]:
            self.installed["pip"].discard(words[-1])
            return self._done(argv, 0, stderr=f"Uninstalled 1 package\n - {words[-1]}\n")
        if argv[0] == "dpkg-query":
            installed = argv[-1] in self.installed["apt"]
            return self._done(argv, 0 if installed else 1, "installed" if installed else "")
        if argv[0] == "apt-get" and "install" in argv and "--simulate" in argv:
            missing = [n for n in words[2:] if n not in self.registry["apt"]]
            if missing:
                return self._done(argv, 100, stderr=f"E: Unable to locate package {missing[0]}\n")
            return self._done(argv, 0, "Inst tree (2.1.1-2 Debian:13)\n")
        if argv[0] == "apt-get" and "remove" in argv and "--simulate" in argv:
            name = words[-1]
            removed = [name, *(p for p, deps in self.apt_depends.items()
                               if name in deps and p in self.installed["apt"])]
            return self._done(argv, 0, "".join(f"Remv {p} [1.0]\n" for p in removed))
        if argv[0] == "apt-get" and "remove" in argv:
            self.installed["apt"].discard(words[-1])
            return self._done(argv, 0, "Removing ...\n")
        if argv[0] == "apt-get" and "update" in argv:
            return self._done(argv, 0)
        raise AssertionError(f"unexpected command {argv}")

    @staticmethod
    def _done(argv, code, stdout="", stderr=""):
        return subprocess.CompletedProcess(argv, code, stdout, stderr)

    def converge(self, variables, roles, on_task=None):
        """The role installs every recorded package, as user_env and base do."""
        self.roles_run.append(tuple(roles))
        self.installed["pip"].update(s.split(">")[0] for s in variables["hubstead_user_env_pip_packages"])
        self.installed["apt"].update(variables["hubstead_base_apt_packages"])
        return converge.Result()


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CONFIG_FILE", tmp_path / "config.yaml")
    monkeypatch.setattr(paths, "CONFIG_LOCK", tmp_path / ".config.lock")
    monkeypatch.setattr(paths, "APPLIED_CONFIG", tmp_path / "applied-config.json")
    paths.CONFIG_FILE.write_text("user_environment:\n  manager: venv\n")
    paths.APPLIED_CONFIG.write_text(json.dumps({"user_environment": {"manager": "venv", "pip_packages": []}}))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    fake = FakeMachine()
    monkeypatch.setattr(packages, "_run", fake.run)
    monkeypatch.setattr(converge, "run", fake.converge)
    return fake


def run(*args):
    return CliRunner().invoke(cli.main, ["packages", *args])


def recorded(kind="pip"):
    return (yaml.safe_load(paths.CONFIG_FILE.read_text())["user_environment"]
            .get(f"{kind}_packages", []))


def test_a_package_is_resolved_recorded_and_installed_by_its_role(machine):
    result = run("add", "tabulate")

    assert result.exit_code == 0, result.output
    assert recorded() == ["tabulate"]
    assert machine.roles_run == [("user_env",)]
    assert "tabulate" in machine.installed["pip"]
    # `config apply` has nothing left to do for it.
    assert json.loads(paths.APPLIED_CONFIG.read_text())["user_environment"]["pip_packages"] == ["tabulate"]


def test_an_unknown_package_is_one_line_and_changes_nothing(machine, audited):
    before = paths.CONFIG_FILE.read_text()

    result = run("add", "tabulate", "no-such-package-xyz")

    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output == ("hubstead: error: pip packages tabulate, no-such-package-xyz: cannot be installed: "
                             "Because no-such-package-xyz was not found in the package registry and you require "
                             "no-such-package-xyz, we can conclude that your requirements are unsatisfiable.\n")
    assert paths.CONFIG_FILE.read_text() == before
    assert machine.roles_run == [] and "tabulate" not in machine.installed["pip"]
    assert audited == []


@pytest.mark.parametrize("spec", ["--index-url=http://elsewhere/simple", "numpy; rm -rf /"])
def test_a_spec_that_is_not_a_requirement_never_reaches_an_installer(machine, spec):
    result = run("add", "--", spec)

    assert result.exit_code == 1
    assert spec in result.output and "pip requirements like" in result.output
    assert machine.calls == []


def test_a_newer_spec_replaces_the_recorded_one(machine):
    run("add", "pandas")
    assert run("add", "pandas>=2").exit_code == 0
    assert recorded() == ["pandas>=2"]


def test_adding_again_changes_nothing(machine):
    run("add", "tabulate")
    result = run("add", "tabulate")
    assert "nothing to add" in result.output
    assert machine.roles_run == [("user_env",)]


def test_remove_uninstalls_what_hubstead_added(machine):
    run("add", "tabulate")

    result = run("remove", "tabulate")

    assert result.exit_code == 0, result.output
    assert "tabulate" not in machine.installed["pip"]
    assert recorded() == []


def test_remove_keeps_a_package_another_one_needs(machine):
    paths.CONFIG_FILE.write_text("user_environment:\n  manager: venv\n  pip_packages: [six]\n")

    result = run("remove", "six")

    assert "six stays installed: python-dateutil" in result.output
    assert "six" in machine.installed["pip"]
    assert recorded() == []


def test_remove_refuses_what_hubstead_did_not_add(machine):
    result = run("remove", "six")

    assert result.exit_code == 1
    assert "six: not added by Hubstead" in result.output
    assert "six" in machine.installed["pip"]


def test_apt_package_added_and_removed(machine):
    assert run("add", "--apt", "tree").exit_code == 0
    assert machine.roles_run == [("base",)]
    assert recorded("apt") == ["tree"] and "tree" in machine.installed["apt"]

    assert run("remove", "--apt", "tree").exit_code == 0
    assert "tree" not in machine.installed["apt"] and recorded("apt") == []


def test_an_apt_package_others_came_to_need_stays(machine):
    run("add", "--apt", "pandoc")
    machine.installed["apt"].add("pandoc-citeproc-filters")  # installed later, by the admin

    result = run("remove", "--apt", "pandoc")

    assert result.exit_code == 1
    assert "removing it would also remove pandoc-citeproc-filters" in result.output
    assert "pandoc" in machine.installed["apt"] and recorded("apt") == ["pandoc"]


def test_an_unknown_apt_package_is_refused(machine):
    result = run("add", "--apt", "no-such-deb")

    assert result.exit_code == 1
    assert "apt package no-such-deb: cannot be installed: E: Unable to locate package no-such-deb" in result.output
    assert "apt_packages" not in paths.CONFIG_FILE.read_text()


def test_an_apt_package_the_machine_had_is_not_taken_over(machine):
    # Recording it would let `remove` take it from the machine.
    result = run("add", "--apt", "coreutils")

    assert result.exit_code == 1
    assert "already installed on this machine, not by Hubstead" in result.output
    assert "apt_packages" not in paths.CONFIG_FILE.read_text()


@pytest.mark.parametrize("name", ["-y", "Pandoc", "tree;ls"])
def test_a_bad_debian_name_is_refused_before_apt(machine, name):
    result = run("add", "--apt", "--", name)
    assert result.exit_code == 1 and "Debian package names" in result.output
    assert machine.calls == []


def test_conda_packages_need_the_conda_manager(machine):
    result = run("add", "--conda", "scipy")
    assert result.exit_code == 1
    assert "need user_environment.manager conda" in result.output
    assert machine.calls == []


def test_a_failed_role_takes_the_record_back(machine, monkeypatch):
    def failing(variables, roles, on_task=None):
        raise converge.ConvergeError("user_env: Install the user packages: no space left on device")

    monkeypatch.setattr(converge, "run", failing)

    result = run("add", "tabulate")

    assert result.exit_code == 1 and "no space left" in result.output
    assert recorded() == []


def test_list_shows_each_kind(machine):
    run("add", "tabulate")
    run("add", "--apt", "tree")
    assert run("list").output.splitlines() == ["pip\ttabulate", "apt\ttree"]


def test_for_a_teacher_a_url_is_refused_and_nothing_is_built(machine):
    # The page acts as root for someone who is not: no code of their choosing runs while installing.
    result = run("add", "--by", "tess", "evil @ https://example.org/evil-1.0.tar.gz")

    assert result.exit_code == 1
    assert "a teacher adds packages from the package index by name" in result.output
    assert machine.calls == []

    assert run("add", "--by", "tess", "tabulate").exit_code == 0
    [dry_run] = [argv for argv in machine.calls if "--dry-run" in argv]
    assert "--no-build" in dry_run
