"""Attacks through course links, the teacher's link checker and a restore (issue 18, items
4, 5 and 9), each from the attacker's own position on one booted target: Mallory, a
student, serves git repositories from her own kernel on loopback and hands out links;
a teacher's page checks links on the hub; a student's running server meddles with her
home while root restores a backup."""

import re
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
import requests
from hubclient import ADMIN, ADMIN_PASSWORD, BASE, HubSession, own_server, run_code, teacher_page_post

from hubstead.core import paths, usernames

pytestmark = pytest.mark.integration

MALLORY, PASSWORD = "mallory", "attack-pass-1"
# Mallory's services, in her own server on loopback: git daemon (nbgitpuller clones
# shallow, which git's dumb HTTP cannot serve) and a web server with a request log.
GIT_PORT = 47125
REPOS = f"git://127.0.0.1:{GIT_PORT}"
WEB_PORT = 47123
CLOSED_PORT = 47124  # nothing listens here
# What her repositories hold: a file an IPython kernel runs at its start, if it is in
# ~/.ipython/profile_default/startup. A teacher's kernel would hand her the course folder.
PLANTED = "00-planted.py"
PAYLOAD = "PLANTED = 'mallory was here'\n"
SERVE = f"""
import os, subprocess, sys
def repo(name, files):
    work, bare = os.path.expanduser(f"~/work-{{name}}"), os.path.expanduser(f"~/srv/{{name}}")
    subprocess.run(["git", "init", "-q", "-b", "main", work], check=True)
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(work, path)) or work, exist_ok=True)
        open(os.path.join(work, path), "w").write(text)
    git = ["git", "-C", work, "-c", "user.name=m", "-c", "user.email=m@example.edu"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "lesson"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", work, bare], check=True)
    subprocess.run(["git", "-C", bare, "update-server-info"], check=True)
repo("startup.git", {{"{PLANTED}": {PAYLOAD!r}}})
repo(".ipython", {{"profile_default/startup/{PLANTED}": {PAYLOAD!r}}})
srv = os.path.expanduser("~/srv")
subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={{srv}}", "--listen=127.0.0.1",
                  "--port={GIT_PORT}", srv], start_new_session=True)
log = open(os.path.expanduser("~/requests.log"), "a")
subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{WEB_PORT}", "--directory", srv],
                 stdout=log, stderr=log, start_new_session=True)
"""


def add_user(hub, name: str, *extra: str) -> None:
    hub.tb.run("hubstead", "users", "add", name, *extra, "--password-stdin", input=PASSWORD + "\n")


@pytest.fixture(scope="module")
def mallory(hub):
    """Mallory's running server, serving her repositories on loopback: a token of hers."""
    add_user(hub, MALLORY)
    _, token = own_server(MALLORY, PASSWORD)
    run_code(MALLORY, token, SERVE)
    hub.tb.run("sh", "-c", f"for i in $(seq 100); do git ls-remote {REPOS}/startup.git >/dev/null 2>&1 && exit 0; "
                           "sleep 0.3; done; exit 1")
    assert requests.get(f"http://127.0.0.1:{WEB_PORT}/", timeout=30).status_code == 200
    return token


def requests_mallory_saw(token: str) -> list[str]:
    return run_code(MALLORY, token, "print(open('requests.log').read(), end='')").splitlines()


def link(**query: str) -> str:
    return f"{BASE}/hub/user-redirect/git-pull?{urlencode(query)}"


def follow(session: HubSession, name: str, url: str) -> tuple[requests.Response, requests.Response]:
    """What ``name``'s browser does with a link: opens nbgitpuller's page in their server,
    whose script then asks the server to pull, with the values the page was given (the
    link's own, when the page refused to show). Returns both answers."""
    page = session.http.get(url, timeout=120)
    values = {key: unquote(value) for key, value in re.findall(r'data-(repo|branch|targetpath)="([^"]*)"', page.text)}
    if not values:
        values = {key: value[0] for key, value in parse_qs(urlsplit(url).query).items()
                  if key in ("repo", "branch", "targetpath")}
    pull = session.http.get(f"{BASE}/user/{name}/git-pull/api?{urlencode(values)}", timeout=120)
    return page, pull


def planted_outside_mallory(hub) -> list[str]:
    found = hub.tb.run("find", "/home", str(paths.SHARED_DIR), "-name", PLANTED,
                       "-not", "-path", f"/home/{usernames.unix_name(MALLORY)}/*").stdout
    return sorted(found.split())


def kernel_planted(name: str, token: str) -> str:
    return run_code(name, token, "print(globals().get('PLANTED'))").strip()


# Each victim follows one hostile link before any kernel of theirs ran (no IPython
# profile yet, as for a student on the first day): a relative dot path, an absolute
# path, a '..' path, and no targetpath at all with a repository whose name is a dot-name.
HOSTILE = {
    "vic": {"repo": f"{REPOS}/startup.git", "branch": "main", "targetpath": ".ipython/profile_default/startup"},
    ADMIN: {"repo": f"{REPOS}/startup.git", "branch": "main",
            "targetpath": f"/home/{usernames.unix_name(ADMIN)}/.ipython/profile_default/startup"},
    "vic2": {"repo": f"{REPOS}/startup.git", "branch": "main",
             "targetpath": "week1/../.ipython/profile_default/startup"},
    "vic3": {"repo": f"{REPOS}/.ipython", "branch": "main"},
}


@pytest.mark.parametrize("victim", HOSTILE)
def test_a_link_with_a_hostile_target_plants_nothing_in_whoever_follows_it(hub, mallory, victim):
    password = ADMIN_PASSWORD if victim == ADMIN else PASSWORD
    if victim != ADMIN:
        add_user(hub, victim)
    session, token = own_server(victim, password)
    page, pull = follow(session, victim, link(**HOSTILE[victim]))
    assert planted_outside_mallory(hub) == []
    assert kernel_planted(victim, token) == "None"
    # Refused by the victim's server, saying why.
    assert (page.status_code, pull.status_code) == (400, 400), (page.text, pull.text)
    assert "folder" in pull.text


def test_a_plain_folder_link_still_works_and_its_files_stay_in_that_folder(hub, mallory):
    add_user(hub, "vic4")
    session, token = own_server("vic4", PASSWORD)
    page, pull = follow(session, "vic4", link(repo=f"{REPOS}/startup.git", branch="main", targetpath="week1"))
    assert page.status_code == 200 and '"phase": "finished"' in pull.text, pull.text
    home = hub.home(usernames.unix_name("vic4"))
    assert planted_outside_mallory(hub) == [f"{home}/week1/{PLANTED}"]
    assert kernel_planted("vic4", token) == "None"


# The link checker (the teacher's page, on the hub) asked about loopback and link-local
# services, spelled every way git accepts. Nothing may reach them, and what the page says
# must not tell an open port from a closed one.
CHECKED_HOSTS = ["127.1", "0x7f000001", "[::ffff:127.0.0.1]", "localhost", "169.254.169.254"]


def check_link(teacher: HubSession, repo: str) -> requests.Response:
    return teacher_page_post(teacher, "link", repo=repo, branch="main", path="", app="lab")


@pytest.mark.parametrize("host", CHECKED_HOSTS)
def test_the_link_checker_refuses_loopback_and_link_local_in_any_spelling(teacher, mallory, host):
    before = requests_mallory_saw(mallory)
    r = check_link(teacher, f"http://{host}:{WEB_PORT}/startup.git")
    assert r.status_code == 400 and r.text.count("\n") == 0, r.text
    assert host.strip("[]") in r.text and "public" in r.text, r.text
    assert requests_mallory_saw(mallory) == before  # nothing reached her server


def test_the_link_checker_says_the_same_for_an_open_and_a_closed_port(teacher, mallory):
    said = [check_link(teacher, f"http://127.0.0.1:{port}/startup.git") for port in (WEB_PORT, CLOSED_PORT)]
    assert [r.status_code for r in said] == [400, 400]
    assert said[0].text.replace(str(WEB_PORT), "P") == said[1].text.replace(str(CLOSED_PORT), "P"), \
        [r.text for r in said]


# A restore while a student's server runs: she turned a file of the backup into a
# directory, and keeps swapping a backed-up directory for a link while root restores.
RITA = "rita"
SWAP_LOOP = """
import os, subprocess, sys
loop = '''
import os, time
end = time.monotonic() + 600
while time.monotonic() < end:
    try:
        os.rename("lesson", "lesson-real")
        os.symlink("lesson-real", "lesson")
        os.unlink("lesson")
        os.rename("lesson-real", "lesson")
    except OSError:
        pass
'''
subprocess.Popen([sys.executable, "-c", loop], start_new_session=True)
"""


def test_a_student_cannot_stop_a_restore_half_way_and_the_hub_comes_back(hub, mallory):
    add_user(hub, RITA)
    _, token = own_server(RITA, PASSWORD)
    run_code(RITA, token, "import os\nos.makedirs('work', exist_ok=True)\nos.makedirs('lesson', exist_ok=True)\n"
                          "open('work/notes.txt', 'w').write('my notes')\n"
                          "for i in range(200): open(f'lesson/{i}.txt', 'w').write(str(i))\n")
    hub.tb.run("hubstead", "backup", "/root/class.hsb", "--homes")
    # Her notes become a directory of hers, and a loop in her server swaps her lesson
    # folder for a link, over and over.
    run_code(RITA, token, "import os\nos.rename('work/notes.txt', 'work/draft.txt')\nos.mkdir('work/notes.txt')\n"
                          "os.rename('work/draft.txt', 'work/notes.txt/draft.txt')\n" + SWAP_LOOP)
    restore = hub.tb.run("hubstead", "restore", "/root/class.hsb", check=False, timeout=1200)
    # The hub answers, whatever the restore said.
    assert requests.get(f"{BASE}/hub/login", timeout=30).status_code == 200
    assert restore.returncode == 0, restore.stderr
    home = hub.home(usernames.unix_name(RITA))
    # Her directory was set aside, and the restore said where.
    aside = re.search(rf"{re.escape(home)}/work/notes\.txt \(a directory here\) set aside as (\S+)", restore.stdout)
    assert aside, restore.stdout
    assert hub.tb.run("cat", f"{aside.group(1)}/draft.txt").stdout == "my notes"
    # She finds her home as it was backed up.
    session, token = own_server(RITA, PASSWORD)
    assert run_code(RITA, token, "import os; print(open('work/notes.txt').read(), len(os.listdir('lesson')), "
                                 "os.path.islink('lesson'))").strip() == "my notes 200 False"
