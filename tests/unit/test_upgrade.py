"""An upgrade with a way back: what fails puts config, state, database and both
environments back as they were; what succeeds leaves no copies; nothing newer copies
nothing."""

import shutil
import sqlite3
import subprocess

import pytest

from hubstead.core import paths, state
from hubstead.machine import converge, upgrade

REAL_RUN = subprocess.run
REAL_RMTREE = shutil.rmtree


@pytest.fixture
def machine(tmp_path, monkeypatch):
    for name, where in {"CONFIG_DIR": "etc", "STATE_DIR": "state", "PREFIX": "opt"}.items():
        monkeypatch.setattr(paths, name, tmp_path / where)
    monkeypatch.setattr(paths, "HUB_ENV", tmp_path / "opt" / "hub")
    monkeypatch.setattr(paths, "USER_ENV", tmp_path / "opt" / "user")
    monkeypatch.setattr(paths, "PREVIOUS_USER_ENV", tmp_path / "opt" / "previous-user")
    monkeypatch.setattr(paths, "PREVIOUS_HUB_ENV", tmp_path / "opt" / "previous-hub")
    monkeypatch.setattr(paths, "PREVIOUS_STATE_DIR", tmp_path / "state" / "previous")
    monkeypatch.setattr(paths, "HUB_DB", tmp_path / "state" / "jupyterhub.sqlite")
    monkeypatch.setattr(paths, "PASSWORD_STORE", tmp_path / "state" / "passwords.json")
    monkeypatch.setattr(paths, "UPGRADE_BACKUPS", tmp_path / "state" / "backups")
    monkeypatch.setattr(upgrade, "STATE", (paths.PASSWORD_STORE,))
    for d in ("etc", "state", "opt/hub", "opt/user", "opt/previous-hub"):
        (tmp_path / d).mkdir(parents=True)
    write_all("old", tmp_path)
    (tmp_path / "opt" / "previous-hub" / "marker").write_text("old")
    (tmp_path / "opt" / "hub" / "marker").write_text("new")  # the installer put the new Hubstead in
    monkeypatch.setattr(upgrade.backup, "backup", lambda target, homes: backups.append(target))
    backups: list = []
    calls: list = []

    def run(argv, **kwargs):
        if argv[0] == "cp":
            return REAL_RUN(argv, **kwargs)
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(upgrade.subprocess, "run", run)
    monkeypatch.setattr(upgrade, "_software_of", lambda env: {"an": "older Hubstead"})
    return tmp_path, calls, backups


def write_all(version: str, root) -> None:
    (root / "etc" / "config.yaml").write_text(version)
    (root / "state" / "passwords.json").write_text(version)
    (root / "opt" / "user" / "marker").write_text(version)
    with sqlite3.connect(root / "state" / "jupyterhub.sqlite") as db:
        db.execute("create table if not exists t (v)")
        db.execute("insert into t values (?)", (version,))


def read_all(root) -> dict:
    with sqlite3.connect(root / "state" / "jupyterhub.sqlite") as db:
        rows = [v for (v,) in db.execute("select v from t")]
    return {"config": (root / "etc" / "config.yaml").read_text(),
            "passwords": (root / "state" / "passwords.json").read_text(),
            "user env": (root / "opt" / "user" / "marker").read_text(),
            "hub env": (root / "opt" / "hub" / "marker").read_text(), "db": rows}


def test_a_failed_upgrade_puts_everything_back_and_the_previous_hubstead_converges(machine, monkeypatch):
    root, calls, backups = machine

    def new_version_fails(effective, on_task=None, upgrade=False):
        assert upgrade  # the user environment is upgraded
        write_all("new", root)  # what the new version changed before the hub failed to start
        raise converge.ConvergeError("hub: Restart jupyterhub: the unit failed")

    monkeypatch.setattr(upgrade.provision, "run", new_version_fails)
    with pytest.raises(upgrade.UpgradeFailed) as e:
        upgrade.run({}, root / "opt" / "previous-hub")
    assert "rolled back" in str(e.value) and "Restart jupyterhub: the unit failed" in str(e.value)
    assert read_all(root) == {"config": "old", "passwords": "old", "user env": "old", "hub env": "old", "db": ["old"]}
    assert ["systemctl", "stop", paths.HUB_UNIT] in calls
    assert calls[-1] == [str(paths.HUB_ENV / "bin" / "hubstead"), "install"]  # the previous one converges
    assert len(backups) == 1
    assert sorted(p.name for p in (root / "opt").iterdir()) == ["hub", "user"]
    assert not paths.PREVIOUS_STATE_DIR.exists()


def new_version_runs(root, changed: int):
    """provision.run as the new version does it when all goes well."""
    def run(effective, on_task=None, upgrade=False):
        write_all("new", root)
        return converge.Result(changed=changed), 2.5
    return run


def test_a_successful_upgrade_keeps_the_new_and_forgets_the_copies(machine, monkeypatch):
    root, calls, backups = machine
    monkeypatch.setattr(upgrade.provision, "run", new_version_runs(root, changed=7))
    outcome = upgrade.run({}, root / "opt" / "previous-hub")
    assert (outcome.upgraded, outcome.changed) == (True, 7)
    assert read_all(root)["hub env"] == "new" and read_all(root)["db"] == ["old", "new"]
    assert sorted(p.name for p in (root / "opt").iterdir()) == ["hub", "user"]
    assert not paths.PREVIOUS_STATE_DIR.exists() and len(backups) == 1


def test_nothing_newer_copies_nothing_and_converges_without_upgrading(machine, monkeypatch):
    root, calls, backups = machine
    monkeypatch.setattr(upgrade, "_software_of", lambda env: state.hub_software())
    monkeypatch.setattr(upgrade, "user_env_is_current", lambda effective: True)
    seen = []
    monkeypatch.setattr(upgrade.provision, "run",
                        lambda effective, on_task=None, upgrade=False: seen.append(upgrade) or (converge.Result(), 0.1))
    outcome = upgrade.run({}, root / "opt" / "previous-hub")
    assert (outcome.upgraded, outcome.changed, seen, backups) == (False, 0, [False], [])
    assert sorted(p.name for p in (root / "opt").iterdir()) == ["hub", "user"]


# A reboot (or a power cut) in the middle of an upgrade: at boot, ROLLBACK_UNIT runs
# roll_back_interrupted from the previous hub environment.

def test_a_boot_after_an_upgrade_cut_short_in_the_roles_puts_the_previous_hubstead_back(machine):
    root, calls, _ = machine
    upgrade._copy_aside()
    write_all("new", root)  # the new version's roles had changed all of it when the power went
    assert upgrade.roll_back_interrupted()
    assert read_all(root) == {"config": "old", "passwords": "old", "user env": "old", "hub env": "old", "db": ["old"]}
    assert calls[-1] == [str(paths.HUB_ENV / "bin" / "hubstead"), "install"]
    assert sorted(p.name for p in (root / "opt").iterdir()) == ["hub", "user"]
    assert not paths.PREVIOUS_STATE_DIR.exists()


def test_a_copy_the_boot_cut_short_is_not_taken_for_the_way_back(machine, monkeypatch):
    root, calls, _ = machine
    # The power went while the state was being copied: the originals were not changed yet.
    monkeypatch.setattr(upgrade.backup, "copy_db", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        upgrade._copy_aside()
    assert (root / "state" / "previous.partial").exists() and not paths.PREVIOUS_STATE_DIR.exists()
    assert upgrade.roll_back_interrupted()
    assert read_all(root) == {"config": "old", "passwords": "old", "user env": "old", "hub env": "old", "db": ["old"]}
    # The next upgrade starts from clean copies.
    upgrade._forget_copies(None)
    assert not (root / "state" / "previous.partial").exists()


def test_a_boot_after_a_finished_upgrade_keeps_the_new_version(machine, monkeypatch):
    root, calls, _ = machine
    monkeypatch.setattr(upgrade.provision, "run", new_version_runs(root, changed=1))
    # The power goes as the copies are being forgotten: the hub environment's copy went first.
    forgotten = []

    def power_cut_after_the_first(path):
        forgotten.append(path)
        if len(forgotten) > 1:
            raise KeyboardInterrupt
        REAL_RMTREE(path)

    monkeypatch.setattr(upgrade.shutil, "rmtree", power_cut_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        upgrade.run({}, root / "opt" / "previous-hub")
    monkeypatch.setattr(upgrade.shutil, "rmtree", REAL_RMTREE)
    assert not upgrade.roll_back_interrupted()
    assert read_all(root) == {"config": "new", "passwords": "new", "user env": "new", "hub env": "new",
                              "db": ["old", "new"]}


def test_without_an_unfinished_upgrade_a_boot_changes_nothing(machine):
    root, calls, _ = machine
    (root / "opt" / "previous-hub" / "marker").unlink()
    (root / "opt" / "previous-hub").rmdir()
    assert not upgrade.roll_back_interrupted()
    assert calls == [] and read_all(root)["hub env"] == "new"
