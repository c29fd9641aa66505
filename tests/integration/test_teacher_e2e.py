"""The teacher's day through a real headless Chromium on a booted target: import a class
from a CSV, hand out the passwords, a student logs in to JupyterLab, a reset, a removal
(the machine follows), lockout and unlock, group limits, the shared course folder. Each
test can run alone: the class, zed and bob's session come from fixtures."""

import csv
import datetime
import re
from typing import NamedTuple

import pytest
from browser import Browser
from hubclient import ADMIN, ADMIN_PASSWORD, HubSession, run_code

from hubstead.core import paths

pytestmark = pytest.mark.integration

CLASS_CSV = "username,password,group\nann,ann-initial-1,lab\nbob\nBad Name!,whatever-pass\ncarl,,lab\n"
BOB_CHOSEN = "bob-chose-this-1"
GiB = 2**30
# What a removed user's account expires on (shadow's day 1): locked.
LOCKED = datetime.datetime(1970, 1, 2)


@pytest.fixture(scope="module")
def teacher_browser(hub, tmp_path_factory):
    with Browser(download_dir=tmp_path_factory.mktemp("downloads")) as browser:
        browser.login(ADMIN, ADMIN_PASSWORD)
        yield browser


@pytest.fixture(scope="module")
def zed_account(hub):
    hub.tb.run("hubstead", "users", "add", "zed", "--password-stdin", input="zed-password-1\n")


class Imported(NamedTuple):
    page: str  # the teacher's page showing the result
    passwords: dict[str, str]  # what the page hands out, by name


@pytest.fixture(scope="module")
def imported(teacher_browser, tmp_path_factory):
    """CLASS_CSV imported on the teacher's page."""
    roster = tmp_path_factory.mktemp("roster") / "class.csv"
    roster.write_text(CLASS_CSV)
    teacher_browser.open("/services/teacher/")
    teacher_browser.upload("#csv", roster)
    teacher_browser.click("#add-submit")
    teacher_browser.wait_for("#results")
    teacher_browser.screenshot("teacher-import-result")
    page = teacher_browser.page_source
    teacher_browser.click("#download-passwords")
    rows = list(csv.DictReader(teacher_browser.wait_download(".csv").open()))
    return Imported(page, {r["username"]: r["password"] for r in rows})


@pytest.fixture(scope="module")
def bob(imported):
    """bob's session with the password he chose at his first login, and his server running.
    The test of that first login may have made him choose it already."""
    session = HubSession()
    if session.login("bob", BOB_CHOSEN).status_code != 302:
        initial = imported.passwords["bob"]
        assert session.login("bob", initial).status_code == 302
        assert session.change_password(initial, BOB_CHOSEN).status_code == 200
    session.start_server("bob")
    return session


def test_a_non_admin_gets_403_on_the_teachers_page(zed_account):
    zed = HubSession()
    assert zed.login("zed", "zed-password-1").status_code == 302
    assert zed.http.get("http://127.0.0.1/services/teacher/", timeout=30).status_code == 403


def test_the_teachers_page_is_in_the_navigation_bar(teacher_browser):
    teacher_browser.open("/hub/home")
    teacher_browser.click("#hubstead-teacher-link")
    teacher_browser.wait_for("#add-users")
    assert "Your class" in teacher_browser.page_source
    teacher_browser.screenshot("teacher-page")


def test_import_a_csv_with_one_bad_row(hub, host, imported):
    page, passwords = imported
    assert page.count('class="result-added"') == 3
    assert re.search(r"Bad Name!.*refused.*invalid user name", page, re.S)
    assert set(passwords) == {"ann", "bob", "carl"} and passwords["ann"] == "ann-initial-1"
    for name in ("ann", "bob", "carl"):
        assert host.user(f"jupyter-{name}").exists
    store = host.file(str(paths.PASSWORD_STORE)).content_string
    journal = hub.tb.run("journalctl", "--no-pager", "-o", "cat").stdout
    for password in passwords.values():
        assert password not in store and password not in journal


def test_a_student_logs_in_with_theirs_chooses_a_new_one_and_gets_jupyterlab(host, imported):
    initial = imported.passwords["bob"]
    with Browser() as student:
        student.login("bob", initial)
        student.wait_url_contains("/hub/change-password")
        assert student.wait_for("#must-change")
        student.fill("#current_password", initial)
        student.fill("#new_password", BOB_CHOSEN)
        student.fill("#confirm_password", BOB_CHOSEN)
        student.click("#change_submit")
        student.wait_for("#password-changed")
        student.open("/hub/spawn")
        student.wait_url_contains("/user/bob/lab", timeout=120)
        student.wait_for("#jp-main-dock-panel", timeout=120)
        assert "JupyterLab" in student.driver.title
        student.screenshot("student-jupyterlab")
    assert host.service("jupyter-bob").is_running
    assert HubSession().login("bob", initial).status_code == 403  # the old one is gone


def test_the_teacher_resets_a_forgotten_password(teacher_browser, imported):
    teacher_browser.open("/services/teacher/")
    teacher_browser.click("#user-carl .reset")
    new = teacher_browser.text_of("#new-password")
    teacher_browser.screenshot("teacher-reset")
    assert HubSession().login("carl", imported.passwords["carl"]).status_code == 403
    carl = HubSession()
    r = carl.login("carl", new)
    assert r.status_code == 302 and r.headers["Location"].endswith("/hub/change-password")
    assert carl.change_password(new, "carl-chose-this-1").status_code == 200


def test_group_limits_set_on_the_page_reach_the_next_spawn(host, teacher_browser, teacher, imported):
    teacher_browser.open("/services/teacher/")
    teacher_browser.fill("#limit-group", "lab")
    teacher_browser.fill("#limit-memory", "3G")
    teacher_browser.submit("#limit-submit")
    teacher_browser.wait_for("#group-lab")
    assert "3G" in teacher_browser.text_of("#group-lab")
    teacher.start_server("carl")  # a teacher may start a student's server
    assert host.service("jupyter-carl").systemd_properties["MemoryMax"] == str(3 * GiB)


def test_removing_a_user_stops_the_server_archives_the_home_and_locks_the_account(
        hub, host, teacher_browser, imported):
    ann = HubSession()
    assert ann.login("ann", "ann-initial-1").status_code == 302
    hub.tb.run("runuser", "-u", "jupyter-ann", "--", "sh", "-c", "echo homework > ~/essay.txt")
    teacher_browser.open("/services/teacher/")
    teacher_browser.click("#user-ann .remove")
    teacher_browser.driver.switch_to.alert.accept()
    archive = teacher_browser.text_of("#removed-archive")
    teacher_browser.screenshot("teacher-removed")
    assert teacher_browser.text_of("#removed-account") == "locked"
    assert host.user("jupyter-ann").expiration_date == LOCKED
    assert "expired" in hub.tb.run("su", "-s", "/bin/sh", "-c", "true", "jupyter-ann", check=False).stderr
    assert "jupyter-ann/essay.txt" in hub.tb.run("tar", "tzf", archive).stdout
    assert not host.file("/home/jupyter-ann").exists
    assert HubSession().login("ann", "ann-initial-1").status_code == 403


def test_repeated_wrong_passwords_lock_and_the_teacher_unlocks(teacher_browser, zed_account):
    for _ in range(5):
        assert HubSession().login("zed", "wrong-password").status_code == 403
    assert HubSession().login("zed", "zed-password-1").status_code == 403  # locked now
    teacher_browser.open("/services/teacher/")
    assert teacher_browser.text_of("#user-zed .login") == "locked"
    teacher_browser.submit("#user-zed .unlock")  # the page answers once the lock is lifted
    assert HubSession().login("zed", "zed-password-1").status_code == 302


def test_students_read_but_do_not_write_the_course_folder(host, bob):
    teacher = HubSession()
    assert teacher.login(ADMIN, ADMIN_PASSWORD).status_code == 302
    teacher.start_server(ADMIN)
    token = teacher.token(ADMIN)
    run_code(ADMIN, token, "open('/srv/hubstead/shared/week1.txt', 'w').write('read me')")
    week1 = host.file(str(paths.SHARED_DIR / "week1.txt"))
    assert week1.group == paths.TEACHERS_GROUP and week1.mode == 0o664
    bob_token = bob.token("bob")
    assert run_code("bob", bob_token, "print(open('shared/week1.txt').read())").strip() == "read me"
    with pytest.raises(RuntimeError, match="PermissionError"):
        run_code("bob", bob_token, "open('shared/week1.txt', 'a').write('x')")
    with pytest.raises(RuntimeError, match="PermissionError"):
        run_code("bob", bob_token, "open('/srv/hubstead/shared/mine.txt', 'w')")


def test_the_rest_api_and_the_cli_route_follow_the_same_policy(hub, host, imported, zed_account):
    teacher = HubSession()
    assert teacher.login(ADMIN, ADMIN_PASSWORD).status_code == 302
    assert teacher.api("DELETE", "/users/carl").status_code == 204  # JupyterHub's own API
    assert host.user("jupyter-carl").expiration_date == LOCKED
    assert [f for f in host.file(str(paths.ARCHIVE_DIR)).listdir()
            if f.startswith("jupyter-carl-") and f.endswith(".tar.gz")]
    out = hub.tb.run("hubstead", "users", "remove", "zed").stdout
    assert "removed: zed (Unix account jupyter-zed: locked)" in out
    imported = hub.tb.run("hubstead", "users", "import", "/dev/stdin", input="dora\nEve!\n")
    assert imported.stdout.startswith("username,password\ndora,")
    assert "line 2: Eve!: refused" in imported.stderr
    assert host.user("jupyter-dora").exists
    r = hub.tb.run("hubstead", "users", "reset-password", "dora")
    assert r.stdout.startswith("password: ")


def test_the_teachers_dashboard_shows_accounts_servers_and_memory(teacher_browser, bob):
    teacher_browser.open("/services/teacher/")
    assert teacher_browser.text_of("#user-bob .server") == "running"
    assert re.match(r"\d+(\.\d)? MiB", teacher_browser.text_of("#user-bob .memory"))
    assert teacher_browser.text_of("#user-bob .account") == "active"
    teacher_browser.screenshot("teacher-dashboard")
