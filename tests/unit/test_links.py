"""Course material links: what a teacher's form may hold, the URL a student follows, and
the repository asked before the link is handed out (a real git daemon on loopback)."""

import re
import socket
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from hubstead.classroom import links, pullguard


@pytest.mark.parametrize("repo, branch, path, app, says", [
    ("file:///etc/course.git", "main", "", "lab", "use an https://, http:// or git:// URL"),
    ("ext::sh -c touch% /tmp/pwned", "main", "", "lab", "use an https://, http:// or git:// URL"),
    ("ssh://git@host/course.git", "main", "", "lab", "use an https://, http:// or git:// URL"),
    ("https://host/", "main", "", "lab", "use an https://, http:// or git:// URL"),
    ("not a url", "main", "", "lab", "use an https://, http:// or git:// URL"),
    ("https://ann:secret@host/course.git", "main", "", "lab", "no user name or password in the URL"),
    ("https://host/course.git", "--upload-pack=x", "", "lab", "branch '--upload-pack=x'"),
    ("https://host/course.git", "main", "../../etc/passwd", "lab", "file '../../etc/passwd'"),
    ("https://host/course.git", "main", "/abs.ipynb", "lab", "file '/abs.ipynb'"),
    ("https://host/course.git", "main", "", "vscode", "interface 'vscode': use one of lab, classic"),
])
def test_a_bad_form_value_is_refused_naming_it(repo, branch, path, app, says):
    with pytest.raises(links.LinkRefused, match="^.*" + says.replace("(", r"\(").replace("+", r"\+")):
        links.check_form(repo, branch, path, app)


@pytest.mark.parametrize("app, opened", [("lab", "lab/tree/course/week 1/intro.ipynb"),
                                         ("classic", "tree/course/week 1/intro.ipynb")])
def test_the_link_opens_the_file_in_the_cloned_folder(app, opened):
    url = links.nbgitpuller_url("https://hub.example.edu/course/", "https://git.example.edu/org/course.git",
                                "week1", "week 1/intro.ipynb", app)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://hub.example.edu/course/hub/user-redirect/git-pull"
    assert parse_qs(parts.query) == {"repo": ["https://git.example.edu/org/course.git"], "branch": ["week1"],
                                     "targetpath": ["course"], "urlpath": [opened]}


def test_without_a_file_the_link_opens_the_folder():
    url = links.nbgitpuller_url("http://h/", "git://h/course", "main", "", "lab")
    assert parse_qs(urlsplit(url).query)["urlpath"] == ["lab/tree/course"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A git repository with a branch main, served by git daemon on loopback: its URL."""
    base = tmp_path_factory.mktemp("git")
    work = base / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.edu"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    (work / "intro.ipynb").write_text("{}")
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "first"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(base / "course.git")], check=True)
    port = _free_port()
    server = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={base}",
                               "--listen=127.0.0.1", f"--port={port}", str(base)])
    url = f"git://127.0.0.1:{port}/course.git"
    deadline = time.monotonic() + 10
    while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "git daemon did not start"
        time.sleep(0.1)
    yield url
    server.terminate()
    server.wait()


# The test's git daemon is on loopback: a network the sysadmins allowed (hub.course_link_networks).
LOOPBACK = ["127.0.0.0/8", "::1/128"]


def test_a_repository_with_the_branch_passes(daemon):
    links.check_branch(daemon, "main", LOOPBACK)


def test_a_name_is_held_to_the_address_it_was_checked_at(daemon):
    # localhost resolves to ::1 too, where the daemon does not listen: git gets 127.0.0.1.
    links.check_branch(daemon.replace("127.0.0.1", "localhost"), "main", LOOPBACK)


def test_a_missing_branch_is_named(daemon):
    with pytest.raises(links.LinkRefused, match="has no branch 'mian'"):
        links.check_branch(daemon, "mian", LOOPBACK)


def test_a_repository_that_does_not_answer_is_named():
    url = f"git://127.0.0.1:{_free_port()}/course.git"
    with pytest.raises(links.LinkRefused, match=f"repository {url}: not reachable as a git repository"):
        links.check_branch(url, "main", LOOPBACK)


@pytest.mark.parametrize("repo, kind", [
    ("git://127.1/course.git", "loopback"), ("http://0x7f000001/course.git", "loopback"),
    ("http://[::ffff:127.0.0.1]/course.git", "loopback"), ("https://localhost/course.git", "loopback"),
    ("http://[::1]:8080/course.git", "loopback"), ("http://169.254.169.254/course.git", "link-local"),
    ("http://10.1.2.3/course.git", "private"), ("http://0.0.0.0/course.git", "private"),
    ("http://[fe80::1]/course.git", "link-local"), ("git://224.0.0.1/course.git", "multicast"),
])
def test_no_address_but_a_public_one_is_asked(repo, kind):
    # Only resolved, never connected to: the refusal comes first, the same for every port.
    host = urlsplit(repo).hostname
    with pytest.raises(links.LinkRefused, match=rf"^repository {re.escape(repo)}: {re.escape(host)} is an? {kind} "
                                                r"address \(.*\), not a public one"):
        links.check_branch(repo, "main")


def test_an_allowed_network_is_asked_and_others_still_are_not():
    with pytest.raises(links.LinkRefused, match="private"):
        links.check_branch("http://10.1.2.3/course.git", "main", ["10.2.0.0/16"])


@pytest.mark.parametrize("folder", ["course", "week_1", "Course-2", "a.b", "x" * 100])
def test_a_plain_folder_name_may_be_filled(folder):
    assert pullguard.folder_refused(folder) is None


@pytest.mark.parametrize("folder", [".ipython", ".", "..", "a/b", "/home/x", "", "-x", "a b", "x" * 101,
                                    "week1/../.ipython", "ü"])
def test_anything_but_a_plain_folder_name_is_refused(folder):
    assert pullguard.folder_refused(folder).startswith(f"folder {folder!r}: a course link may only fill")


def test_a_repository_whose_folder_would_be_a_dot_name_gets_no_link():
    with pytest.raises(links.LinkRefused, match=r"repository https://h/org/\.ipython\.git: its folder '\.ipython'"):
        links.check_form("https://h/org/.ipython.git", "main", "", "lab")
