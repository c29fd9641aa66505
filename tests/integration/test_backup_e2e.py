"""Backup on one machine, restore on a freshly installed second one (issue 11, item 2):
two targets, one after the other. Target A gets two students with passwords and files
and a file in the course folder, then `hubstead backup --homes`; the file leaves A
through A's root directory on this host. Target B is installed fresh, and an unrelated
account made there first takes the number alice had on A; then `hubstead restore`."""

import shutil

import pytest
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, run_code, wait_for_route
from targethost import target_host

from hubstead.core import credentials, paths, usernames

pytestmark = pytest.mark.integration

STUDENTS = {"alice": "alice-pass-1", "bob": "bob-pass-22"}
BACKUP = "/root/x.hsb"  # inside the targets
COURSE_FILE = "week1.txt"
UNRELATED = "carol"  # B's own user, made before the restore


def notes(name: str) -> str:
    return f"{name}'s notes, written on machine A"


def signed_in(name: str, password: str) -> tuple[HubSession, str]:
    """``name``'s browser session with a running server, and a token for its kernel."""
    session = HubSession()
    assert session.login(name, password).status_code == 302, f"{name} cannot log in"
    session.start_server(name)
    token = session.token(name)
    wait_for_route(name, token)
    return session, token


def ids(target, unix_name: str) -> str:
    return target.tb.run("id", "-u", unix_name).stdout.strip()


def inside(target, path: str):
    """A path inside the target, as this host sees it (its root is a directory here)."""
    return target.tb.root() / path.lstrip("/")


@pytest.fixture(scope="module")
def moved(targets, tmp_path_factory):
    """A's class restored on B. Returns B, A's students' UIDs, and the outputs."""
    a = targets("hubstead-backup-a", copy=True)  # B is a real install: its secrets are its own
    for name, password in STUDENTS.items():
        a.tb.run("hubstead", "users", "add", name, "--password-stdin", input=password + "\n")
        _, token = signed_in(name, password)
        run_code(name, token, f"import os\nos.makedirs('work', exist_ok=True)\n"
                              f"open('work/notes.txt', 'w').write({notes(name)!r})")
    _, token = signed_in(ADMIN, ADMIN_PASSWORD)
    run_code(ADMIN, token, f"open('shared/{COURSE_FILE}', 'w').write('read chapter 1')")
    old_uids = {name: ids(a, usernames.unix_name(name)) for name in STUDENTS}
    backup_output = a.tb.run("hubstead", "backup", BACKUP, "--homes").stdout
    mode = a.tb.run("stat", "-c", "%a", BACKUP).stdout.strip()
    kept = tmp_path_factory.mktemp("backup") / "x.hsb"
    shutil.copy2(inside(a, BACKUP), kept)

    b = targets("hubstead-backup-b")  # takes A down first
    b.tb.run("useradd", "--create-home", UNRELATED)
    shutil.copy2(kept, inside(b, BACKUP))
    restore = b.tb.run("hubstead", "restore", BACKUP, check=False)
    return {"b": b, "old_uids": old_uids, "backup_output": backup_output, "mode": mode, "restore": restore}


def test_the_backup_is_root_only_and_says_what_it_holds(moved):
    assert moved["mode"] == "600"
    assert "homes" in moved["backup_output"] and "shared" in moved["backup_output"]
    assert all(name in moved["backup_output"] for name in STUDENTS)


def test_restore_says_what_it_restored(moved):
    restore = moved["restore"]
    assert restore.returncode == 0, restore.stderr
    assert "made by Hubstead" in restore.stdout and "on hubstead-backup-a" in restore.stdout
    for name in STUDENTS:
        assert f"  {name}: Unix account {usernames.unix_name(name)}" in restore.stdout


def test_the_students_have_new_numbers_and_own_their_homes(moved):
    b = moved["b"]
    assert ids(b, UNRELATED) == moved["old_uids"]["alice"], "the unrelated user should hold alice's old UID"
    for name in STUDENTS:
        unix_name = usernames.unix_name(name)
        assert ids(b, unix_name) != moved["old_uids"][name]
        owner = b.tb.run("stat", "-c", "%U:%G", f"/home/{unix_name}/work/notes.txt").stdout.strip()
        assert owner == f"{unix_name}:{unix_name}"
        strangers = b.tb.run("find", f"/home/{unix_name}", "-not", "-user", unix_name).stdout
        assert strangers == ""
    # Where restore writes, nothing is the unrelated user's but their own home.
    assert b.tb.run("find", "/home", str(paths.SHARED_DIR), str(paths.STATE_DIR), str(paths.CONFIG_DIR),
                    "-user", UNRELATED, "-not", "-path", f"/home/{UNRELATED}*").stdout == ""


def test_both_students_log_in_with_the_same_passwords_and_read_their_files(moved):
    for name, password in STUDENTS.items():
        _, token = signed_in(name, password)
        assert run_code(name, token, "print(open('work/notes.txt').read())").strip() == notes(name)
        assert run_code(name, token, f"print(open('shared/{COURSE_FILE}').read())").strip() == "read chapter 1"


def test_the_course_folder_belongs_to_the_new_teacher_account(moved):
    owner = moved["b"].tb.run("stat", "-c", "%U:%G", f"{paths.SHARED_DIR}/{COURSE_FILE}").stdout.strip()
    assert owner == f"{usernames.unix_name(ADMIN)}:{paths.TEACHERS_GROUP}"


def test_a_damaged_backup_is_refused_and_nothing_changes(moved):
    b = moved["b"]
    data = bytearray(inside(b, BACKUP).read_bytes())
    data[len(data) // 2] ^= 0xFF
    inside(b, "/root/damaged.hsb").write_bytes(data)
    # (Not the hub database: the running servers' activity updates it.)
    watched = [str(path) for path in (paths.CONFIG_FILE, paths.PASSWORD_STORE, paths.COOKIE_SECRET,
                                      *credentials.FILES.values())]

    def machine():
        hub_pid = target_host(b.tb).service(paths.HUB_UNIT).systemd_properties["MainPID"]
        return b.tb.run("sha256sum", *watched).stdout, hub_pid, b.tb.run("getent", "passwd").stdout

    before = machine()
    for file in ("/root/damaged.hsb", "/etc/hostname", "/root/missing.hsb"):
        r = b.tb.run("hubstead", "restore", file, check=False)
        assert r.returncode == 1, r.stdout
        assert r.stderr.startswith(f"hubstead: error: {file}: ") and r.stderr.count("\n") == 1, r.stderr
    assert machine() == before
