"""`hubstead backup` and `hubstead restore` with every path in a temporary tree and Unix
accounts in memory: what is restored, what is refused (changing nothing), who owns what."""

import io
import lzma
import os
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubstead import config
from hubstead.cli import main as cli
from hubstead.core import credentials, paths, usernames
from hubstead.core.passwords import PasswordStore
from hubstead.core.unixusers import AccountError
from hubstead.machine import backup, provision

STUDENTS = {"alice": (1001, 1001), "bob": (1002, 1002)}
# The test's own ids stand for the teacher's on the old machine: the course folder's
# files are the test's.
TEACHER_IDS = (os.getuid(), os.getgid())
# Lock files are the machine's, not the class's.
LOCKS = {".backup.lock", ".config.lock", "passwords.json.lock"}


def point_at(monkeypatch, root: Path) -> None:
    """Every file a backup holds, below ``root``."""
    etc, state = root / "etc", root / "state"
    for name, path in {
        "CONFIG_FILE": etc / "config.yaml", "CONFIG_LOCK": etc / ".config.lock",
        "JUPYTERHUB_CONFIG_D": etc / "jupyterhub_config.d", "PASSWORD_STORE": state / "passwords.json",
        "COOKIE_SECRET": state / "jupyterhub_cookie_secret", "HUB_DB": state / "jupyterhub.sqlite",
        "TLS_DIR": state / "tls", "LETSENCRYPT_DIR": state / "letsencrypt", "SHARED_DIR": root / "shared",
        "BACKUP_LOCK": state / ".backup.lock",
    }.items():
        monkeypatch.setattr(paths, name, path)
    monkeypatch.setattr(credentials, "FILES", {key: state / path.name for key, path in credentials.FILES.items()})
    for directory in (etc, state, root / "shared", root / "home"):  # what the base role makes
        directory.mkdir(parents=True, exist_ok=True)


class Accounts(backup.Accounts):
    """Unix accounts in memory; homes below the tree; chown recorded, not done."""

    def __init__(self, root: Path, users: dict[str, tuple[int, int]], groups: dict[str, int],
                 foreign: set[str] = frozenset()):
        self.root, self.users, self.groups, self.foreign = root, dict(users), groups, foreign
        self.chowned: dict[Path, tuple[int, int]] = {}

    def ids(self, unix_name):
        return self.users.get(unix_name)

    def group_id(self, group):
        return self.groups.get(group)

    def home(self, unix_name):
        return self.root / "home" / unix_name

    def check(self, hub_name):
        if usernames.unix_name(hub_name) in self.foreign:
            raise AccountError(f"Unix account {usernames.unix_name(hub_name)} belongs to another user")

    def ensure(self, hub_name):
        unix_name = usernames.unix_name(hub_name)
        self.users.setdefault(unix_name, (2001 + len(self.users), 2001 + len(self.users)))
        self.home(unix_name).mkdir(mode=0o700, exist_ok=True)
        return unix_name

    def chown(self, dir_fd, name, uid, gid):
        self.chowned[Path(os.readlink(f"/proc/self/fd/{dir_fd}")) / name] = (uid, gid)


@pytest.fixture
def machine_a(tmp_path, monkeypatch):
    """A machine with a class: settings, secrets, two students with files, a live database
    whose last rows are still only in its write-ahead log."""
    root = tmp_path / "a"
    point_at(monkeypatch, root)
    config.save_user_config({"users": {"admin": ["teacher"]}, "limits": {"groups": {"lab": {"memory": "2G"}}}})
    paths.CONFIG_FILE.write_text("# our class\n" + paths.CONFIG_FILE.read_text())
    credentials.ensure(credentials.FILES)
    paths.COOKIE_SECRET.write_text("ab" * 32)
    paths.COOKIE_SECRET.chmod(0o600)
    store = PasswordStore(paths.PASSWORD_STORE)
    for name in ("alice", "bob", "teacher"):
        store.set(name, f"{name}-password")
    (paths.JUPYTERHUB_CONFIG_D / "50-site.py").parent.mkdir()
    (paths.JUPYTERHUB_CONFIG_D / "50-site.py").write_text("c.JupyterHub.shutdown_on_logout = True\n")
    paths.TLS_DIR.mkdir(mode=0o700)
    (paths.TLS_DIR / "selfsigned.key").write_text("KEY")
    (paths.TLS_DIR / "selfsigned.key").chmod(0o600)
    (paths.TLS_DIR / "selfsigned.crt").write_text("CERT")
    lineage = paths.LETSENCRYPT_DIR / "config" / "live" / "hubstead"
    lineage.mkdir(parents=True)
    (paths.LETSENCRYPT_DIR / "config" / "archive").mkdir()
    (paths.LETSENCRYPT_DIR / "config" / "archive" / "fullchain1.pem").write_text("CHAIN")
    (lineage / "fullchain.pem").symlink_to("../../archive/fullchain1.pem")
    (paths.SHARED_DIR / "week1.ipynb").write_text("{}")
    (root / "home" / "jupyter-teacher").mkdir(mode=0o700)
    for student in STUDENTS:
        home = root / "home" / f"jupyter-{student}"
        home.mkdir(mode=0o700)
        (home / "work").mkdir()
        (home / "work" / f"{student}.py").write_text(f"print('{student}')\n")
        (home / "run.sh").write_text("#!/bin/sh\n")
        (home / "run.sh").chmod(0o4755)  # set-user-id: never restored as such
        (home / "shared").symlink_to(paths.SHARED_DIR)
    db = sqlite3.connect(paths.HUB_DB)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("CREATE TABLE groups (name TEXT)")
    db.executemany("INSERT INTO users VALUES (?)", [(n,) for n in ("alice", "bob", "teacher")])
    db.execute("INSERT INTO groups VALUES ('lab')")
    db.commit()  # open, unchecked: the rows are in the write-ahead log only
    accounts = Accounts(root, {"jupyter-alice": STUDENTS["alice"], "jupyter-bob": STUDENTS["bob"],
                               "jupyter-teacher": TEACHER_IDS}, {paths.TEACHERS_GROUP: TEACHER_IDS[1]})
    yield root, accounts
    db.close()


@pytest.fixture
def hub_calls(monkeypatch):
    """What restore did to the hub: stopped it, applied the settings (nothing real)."""
    calls = []
    monkeypatch.setattr(backup, "_stop_hub", lambda: calls.append("stop"))
    monkeypatch.setattr(backup, "_stop_servers", lambda: calls.append("stop servers"))
    monkeypatch.setattr(backup, "_start_hub", lambda: calls.append("start") or "the hub was started again")
    monkeypatch.setattr(provision, "run", lambda effective: calls.append(("apply", effective)) or (None, 0.5))
    return calls


@pytest.fixture
def made(machine_a, tmp_path):
    """A backup of machine A, with homes."""
    root, accounts = machine_a
    file = tmp_path / "class.hsb"
    backup.backup(file, homes=True, accounts=accounts)
    return file


def machine_b(tmp_path, monkeypatch, existing=None, foreign=frozenset()):
    """A freshly installed second machine (accounts numbered differently)."""
    root = tmp_path / "b"
    point_at(monkeypatch, root)
    return root, Accounts(root, existing or {}, {paths.TEACHERS_GROUP: 3000}, foreign)


def tree(root: Path) -> dict[str, tuple]:
    """Every file below root: its kind, content or link target, and mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.name in LOCKS or path.name.startswith(paths.HUB_DB.name):
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        found[str(path.relative_to(root))] = (
            ("link", os.readlink(path)) if path.is_symlink()
            else ("dir", mode) if path.is_dir() else ("file", path.read_bytes(), mode))
    return found


def test_round_trip_into_an_empty_tree_gives_back_the_same_files(made, machine_a, tmp_path, monkeypatch, hub_calls):
    a_root, _ = machine_a
    before = tree(a_root)
    b_root, accounts = machine_b(tmp_path, monkeypatch)
    restored = backup.restore(made, accounts=accounts)
    after = tree(b_root)
    set_user_id = [name for name in before if name.endswith("run.sh")]
    for name in set_user_id:  # the only difference: no set-user-id program comes back
        assert before[name][2] & ~stat.S_ISUID == after[name][2] == 0o755
        del before[name], after[name]
    assert after == before
    db = sqlite3.connect(paths.HUB_DB)
    assert db.execute("SELECT name FROM users").fetchall() == [("alice",), ("bob",), ("teacher",)]
    assert db.execute("SELECT name FROM groups").fetchall() == [("lab",)]
    assert PasswordStore(paths.PASSWORD_STORE).verify("alice", "alice-password")
    assert hub_calls == ["stop", "stop servers", ("apply", config.load())]
    assert restored["new_unix"] == {"jupyter-alice": "jupyter-alice", "jupyter-bob": "jupyter-bob",
                                    "jupyter-teacher": "jupyter-teacher"}


def test_the_backup_is_root_only_and_says_what_it_holds(made):
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    manifest = backup.verify(made)
    assert manifest["format"] == backup.FORMAT and manifest["version"] == backup.FORMAT_VERSION
    assert manifest["includes"] == ["config.yaml", "homes", "jupyterhub.sqlite", "jupyterhub_config.d",
                                    "letsencrypt", "passwords.json", "secrets", "shared", "tls"]
    assert manifest["users"][0] == {"name": "alice", "unix_name": "jupyter-alice", "uid": 1001, "gid": 1001}
    assert set(manifest["members"]) >= {"state/config.yaml", "homes/jupyter-bob/work/bob.py", "shared/week1.ipynb"}
    assert all(len(digest) == 64 for digest in manifest["members"].values())


def test_without_homes_the_backup_holds_no_home_and_no_course_folder(machine_a, tmp_path):
    _, accounts = machine_a
    manifest = backup.backup(tmp_path / "small.hsb", homes=False, accounts=accounts)
    assert "homes" not in manifest["includes"] and "shared" not in manifest["includes"]


def test_secrets_never_reach_the_output(made, tmp_path, monkeypatch, hub_calls):
    secrets = [path.read_text() for path in (*credentials.FILES.values(), paths.COOKIE_SECRET)]
    _, accounts = machine_b(tmp_path, monkeypatch)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(backup, "Accounts", lambda: accounts)
    out = CliRunner().invoke(cli.main, ["restore", str(made)]).output
    assert out.startswith(f"restored {made}: config.yaml, homes,")
    assert "  alice: Unix account jupyter-alice" in out
    assert not any(secret in out for secret in secrets)


def test_homes_are_owned_by_the_new_accounts_by_name(made, tmp_path, monkeypatch, hub_calls):
    # The new machine already has someone with alice's old number: nothing goes to them.
    b_root, accounts = machine_b(tmp_path, monkeypatch, existing={"carol": STUDENTS["alice"]})
    backup.restore(made, accounts=accounts)
    for student in STUDENTS:
        home = b_root / "home" / f"jupyter-{student}"
        owners = {path: ids for path, ids in accounts.chowned.items() if home in path.parents}
        assert {path.relative_to(home) for path in owners} == {Path("work"), Path(f"work/{student}.py"),
                                                               Path("run.sh"), Path("shared")}
        assert set(owners.values()) == {accounts.users[f"jupyter-{student}"]} != {STUDENTS[student]}
    assert STUDENTS["alice"] not in accounts.chowned.values()


@pytest.mark.parametrize("teacher_had, owner", [
    (TEACHER_IDS, "the teacher's new account"),
    ((4242, 4242), "root"),  # the file's owner was no Hubstead account there
])
def test_the_course_folder_is_mapped_by_name_and_unknown_owners_become_root(
        machine_a, tmp_path, monkeypatch, hub_calls, teacher_had, owner):
    _, a_accounts = machine_a
    a_accounts.users["jupyter-teacher"] = teacher_had
    if owner == "root" and os.geteuid() == 0:  # a number no account had (not root's own)
        os.chown(paths.SHARED_DIR / "week1.ipynb", 4243, -1)
    backup.backup(tmp_path / "class.hsb", homes=True, accounts=a_accounts)
    b_root, accounts = machine_b(tmp_path, monkeypatch)
    backup.restore(tmp_path / "class.hsb", accounts=accounts)
    uid = 0 if owner == "root" else accounts.users["jupyter-teacher"][0]
    # Its group is the teachers' group, known on both machines by name.
    assert accounts.chowned[b_root / "shared" / "week1.ipynb"] == (uid, 3000)


def refused(file: Path, accounts, hub_calls, root: Path, match: str) -> None:
    before, before_users = tree(root), dict(accounts.users)
    with pytest.raises(backup.BackupError, match=match) as e:
        backup.restore(file, accounts=accounts)
    assert "\n" not in str(e.value)
    assert tree(root) == before and not paths.HUB_DB.exists()
    assert hub_calls == [] and accounts.chowned == {} and accounts.users == before_users


@pytest.mark.parametrize("where", [0, 5, 6, 13, 0.2, 0.5, 0.8, -40, -13, -9, -5, -1])
def test_a_flipped_byte_is_refused_before_anything_changes(made, tmp_path, monkeypatch, hub_calls, where):
    data = bytearray(made.read_bytes())
    at = int(where * len(data)) if isinstance(where, float) else where
    data[at] ^= 0x10
    made.write_bytes(data)
    root, accounts = machine_b(tmp_path, monkeypatch)
    refused(made, accounts, hub_calls, root, "damaged|not a Hubstead backup")


def test_every_flipped_byte_is_found(made):
    data = made.read_bytes()
    for at in range(0, len(data), max(1, len(data) // 200)):
        damaged = made.with_suffix(".damaged")
        damaged.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
        with pytest.raises(backup.BackupError):
            backup.verify(damaged)


@pytest.mark.parametrize("keep", [0.5, -1, 100])
def test_a_truncated_file_is_refused(made, tmp_path, monkeypatch, hub_calls, keep):
    data = made.read_bytes()
    made.write_bytes(data[:int(keep * len(data)) if isinstance(keep, float) else keep])
    root, accounts = machine_b(tmp_path, monkeypatch)
    refused(made, accounts, hub_calls, root, "damaged")


def rewrite(file: Path, change) -> None:
    """Recompress the backup's tar after ``change(name, data) -> data | None`` (None: drop)."""
    with lzma.open(file) as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
        members = [(info, tar.extractfile(info).read() if info.isreg() else None) for info in tar]
    out = io.BytesIO()
    with lzma.open(out, "wb") as xz, tarfile.open(fileobj=xz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            data = change(info.name, data)
            if data is not None or not info.isreg():
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
    file.write_bytes(out.getvalue())


def test_a_member_changed_and_recompressed_fails_its_checksum(made, tmp_path, monkeypatch, hub_calls):
    rewrite(made, lambda name, data: b"print('mallory')\n" if name.endswith("alice.py") else data)
    root, accounts = machine_b(tmp_path, monkeypatch)
    refused(made, accounts, hub_calls, root, "alice.py does not match its checksum")


def test_a_tar_without_our_manifest_is_refused(made, tmp_path, monkeypatch, hub_calls):
    rewrite(made, lambda name, data: None if name == backup.MANIFEST else data)
    root, accounts = machine_b(tmp_path, monkeypatch)
    refused(made, accounts, hub_calls, root, r"not a Hubstead backup \(no manifest.json\)")


@pytest.mark.parametrize("content, match", [
    (None, "cannot read it"),
    (b"\x1f\x8b\x08\x00 a gzip file", r"not a Hubstead backup \(not xz-compressed\)"),
    (lzma.compress(b"not a tar at all"), "damaged or not a Hubstead backup"),
])
def test_a_missing_or_foreign_file_is_refused(tmp_path, monkeypatch, hub_calls, content, match):
    file = tmp_path / "other.hsb"
    if content is not None:
        file.write_bytes(content)
    root, accounts = machine_b(tmp_path, monkeypatch)
    refused(file, accounts, hub_calls, root, match)


def test_a_newer_format_is_refused(machine_a, tmp_path, monkeypatch, hub_calls):
    _, a_accounts = machine_a
    monkeypatch.setattr(backup, "FORMAT_VERSION", 2)
    backup.backup(tmp_path / "newer.hsb", homes=False, accounts=a_accounts)
    monkeypatch.setattr(backup, "FORMAT_VERSION", 1)
    root, accounts = machine_b(tmp_path, monkeypatch)
    refused(tmp_path / "newer.hsb", accounts, hub_calls, root, "backup format 2; .* reads up to 1: upgrade it first")


def test_an_account_of_someone_else_is_refused_before_anything_changes(made, tmp_path, monkeypatch, hub_calls):
    root, accounts = machine_b(tmp_path, monkeypatch, foreign={"jupyter-bob"})
    refused(made, accounts, hub_calls, root, "cannot restore here: Unix account jupyter-bob belongs to another")


def test_a_backup_cannot_be_written_where_there_is_no_directory(machine_a, tmp_path):
    _, accounts = machine_a
    with pytest.raises(backup.BackupError, match="no such directory"):
        backup.backup(tmp_path / "missing" / "x.hsb", homes=False, accounts=accounts)
    assert list(tmp_path.glob("*.hsb*")) == []


def test_a_failed_backup_leaves_the_previous_one_whole_and_no_half_file(machine_a, tmp_path, monkeypatch):
    _, accounts = machine_a
    (tmp_path / "x.hsb").write_text("last week's backup")
    monkeypatch.setattr(backup._Writer, "add_manifest", lambda self, manifest: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        backup.backup(tmp_path / "x.hsb", homes=True, accounts=accounts)
    assert [p.name for p in tmp_path.iterdir() if "hsb" in p.name] == ["x.hsb"]
    assert (tmp_path / "x.hsb").read_text() == "last week's backup"


def test_entries_of_another_kind_are_set_aside_and_named(made, machine_a, tmp_path, monkeypatch, hub_calls):
    a_root, _ = machine_a
    b_root, accounts = machine_b(tmp_path, monkeypatch)
    home = b_root / "home" / "jupyter-alice"
    home.mkdir(parents=True)
    (home / "run.sh").mkdir()  # a directory where the backup has a file
    (home / "run.sh" / "mine.txt").write_text("kept")
    (home / "elsewhere").mkdir()
    (home / "work").symlink_to("elsewhere")  # a link where the backup has a directory
    (home / "work.before-restore").write_text("an older one")  # the first free name is taken
    restored = backup.restore(made, accounts=accounts)
    assert restored["set_aside"] == [
        backup.SetAside(f"{home}/run.sh", "a directory", f"{home}/run.sh.before-restore"),
        backup.SetAside(f"{home}/work", "a link", f"{home}/work.before-restore-2"),
    ]
    assert (home / "run.sh.before-restore" / "mine.txt").read_text() == "kept"
    assert os.readlink(home / "work.before-restore-2") == "elsewhere"
    assert (home / "work" / "alice.py").read_text() == "print('alice')\n"
    assert list((home / "elsewhere").iterdir()) == []  # nothing went through the link
    assert hub_calls[-1][0] == "apply"


def test_a_restore_that_fails_half_way_changes_no_setting_and_starts_the_hub(made, tmp_path, monkeypatch, hub_calls):
    _, accounts = machine_b(tmp_path, monkeypatch)
    put = backup._put

    def failing(tar, info, root, parts, *args):
        if parts == ["work", "bob.py"]:
            raise OSError(28, "No space left on device")
        return put(tar, info, root, parts, *args)

    monkeypatch.setattr(backup, "_put", failing)
    with pytest.raises(backup.BackupError, match="No space left on device") as e:
        backup.restore(made, accounts=accounts)
    assert "\n" not in str(e.value) and "the hub was started again" in str(e.value)
    assert hub_calls == ["stop", "stop servers", "start"]
    assert not paths.CONFIG_FILE.exists() and not paths.PASSWORD_STORE.exists() and not paths.HUB_DB.exists()
    assert not paths.TLS_DIR.exists() and not any(p.name.startswith(".") for p in paths.HUB_DB.parent.iterdir()
                                                  if p.name not in LOCKS)
