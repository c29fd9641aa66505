"""`hubstead uninstall` on a booted target: nothing of Hubstead is left but what the
teacher keeps (students' accounts, homes, the course folder), a new install afterwards
finds them again, and `--purge` removes those too."""

import pytest
from conftest import installed, module_target
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, own_server, run_code

from hubstead.core import paths

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub():
    """A real install (uninstall undoes what a real install did: its own, not a copy of the image)."""
    with module_target(installed("hubstead-uninstall")) as target:
        yield target


STUDENT, PASSWORD = "stu", "stu-password-1"
# What Hubstead puts on a machine, found from outside: units, files, commands, accounts.
UNIT_FILES = [f"/etc/systemd/system/{u}" for u in (paths.HUB_UNIT, paths.PROXY_UNIT, paths.USERS_SLICE,
                                                   paths.CERTBOT_SERVICE, paths.CERTBOT_TIMER)]
FILES = [str(paths.CONFIG_DIR), str(paths.PROXY_DIR), str(paths.PREFIX), "/usr/local/bin/hubstead",
         "/usr/local/bin/hubstead-config", "/etc/sudoers.d/hubstead", "/etc/ssh/sshd_config.d/hubstead.conf"]
GROUPS = [paths.USERS_GROUP, paths.SUDOERS_GROUP, paths.TEACHERS_GROUP, paths.PROXY_USER]


def _present(hub, *paths_on_target: str) -> list[str]:
    return [p for p in paths_on_target if hub.tb.run("test", "-e", p, check=False).returncode == 0]


def _nothing_of_hubstead_runs_or_remains(hub):
    assert _present(hub, *UNIT_FILES, *FILES) == []
    assert [g for g in GROUPS if hub.tb.run("getent", "group", g, check=False).returncode == 0] == []
    assert hub.tb.run("getent", "passwd", paths.PROXY_USER, check=False).returncode != 0
    units = hub.tb.run("systemctl", "list-units", "--all", "--no-legend", "jupyter*", "traefik*").stdout
    assert [line for line in units.splitlines() if "not-found" not in line] == []  # forgotten, or never known
    listening = hub.tb.run("ss", "--listening", "--tcp", "--numeric", "--no-header").stdout
    ports = {paths.HTTP_PORT, paths.HUB_PORT, paths.TEACHER_PORT, paths.TRAEFIK_API_PORT}
    assert not [line for line in listening.splitlines() if int(line.split()[3].rsplit(":", 1)[1]) in ports]


def test_uninstall_asks_first_and_changes_nothing_when_told_no(hub):
    r = hub.tb.run("hubstead", "uninstall", input="n\n", check=False)
    assert r.returncode != 0 and "Remove Hubstead now?" in r.stdout
    assert _present(hub, *FILES) == FILES
    assert hub.tb.run("systemctl", "is-active", paths.HUB_UNIT, paths.PROXY_UNIT).stdout.split() == ["active"] * 2


def test_uninstall_keeps_the_students_work_a_new_install_finds_it_and_purge_removes_it(hub):
    hub.tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=PASSWORD + "\n")
    _, token = own_server(STUDENT, PASSWORD)  # a running server: it must not outlive the hub
    run_code(STUDENT, token, "open('essay.txt', 'w').write('my essay')")
    hub.tb.run("sh", "-c", f"echo 'read me' > {paths.SHARED_DIR}/week1.txt")
    # A teacher's links in the course folder (made from her own kernel), to a system file
    # and to a student's: giving the folder back to root's group must not give those to it.
    _, teacher_token = own_server(ADMIN, ADMIN_PASSWORD)
    run_code(ADMIN, teacher_token, f"""
import os
os.symlink("/etc/shadow", "{paths.SHARED_DIR}/shadow")
os.symlink("/home/jupyter-stu/essay.txt", "{paths.SHARED_DIR}/essay")
""")
    groups_before = hub.tb.run("stat", "-c", "%G", "/etc/shadow", "/home/jupyter-stu/essay.txt").stdout

    out = hub.tb.run("hubstead", "uninstall", "--yes").stdout
    assert "Hubstead is removed" in out and "jupyter-stu" in out and str(paths.SHARED_DIR) in out
    _nothing_of_hubstead_runs_or_remains(hub)
    assert hub.tb.run("cat", "/home/jupyter-stu/essay.txt").stdout == "my essay"
    assert hub.tb.run("stat", "-c", "%U %a", "/home/jupyter-stu").stdout.split() == ["jupyter-stu", "700"]
    assert hub.tb.run("stat", "-c", "%G", f"{paths.SHARED_DIR}/week1.txt").stdout.strip() == "root"
    assert hub.tb.run("stat", "-c", "%G", "/etc/shadow", "/home/jupyter-stu/essay.txt").stdout == groups_before
    assert groups_before.split() == ["shadow", "jupyter-stu"]
    assert _present(hub, str(paths.STATE_DIR)) == []  # nothing archived: nothing kept there

    # A new install finds the student's account and home again.
    hub.bootstrap()
    assert HubSession().login(ADMIN, ADMIN_PASSWORD).status_code == 302
    added = hub.tb.run("hubstead", "users", "add", STUDENT, "--password-stdin", input=PASSWORD + "\n").stdout
    assert "(Unix account jupyter-stu)" in added
    _, token = own_server(STUDENT, PASSWORD)
    assert run_code(STUDENT, token, "print(open('essay.txt').read())").strip() == "my essay"

    out = hub.tb.run("hubstead", "uninstall", "--purge", "--yes").stdout
    assert "the accounts of 2 hub users deleted" in out  # the student's and the teacher's
    _nothing_of_hubstead_runs_or_remains(hub)
    for account in ("jupyter-stu", f"jupyter-{ADMIN}"):
        assert hub.tb.run("getent", "passwd", account, check=False).returncode != 0
    assert _present(hub, "/home/jupyter-stu", str(paths.SHARED_DIR), str(paths.STATE_DIR)) == []
    assert "jupyter-stu" not in hub.tb.run("cat", "/etc/cron.deny").stdout
