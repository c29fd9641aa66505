"""Course material links: an nbgitpuller URL a teacher hands out. A student who follows
it logs in, gets a server, and nbgitpuller (in the user environment) clones the
repository into their home, or merges what changed into the copy they have, then opens
the file.

The repository is asked for the branch first (``git ls-remote``), so a mistyped URL or
branch is an error on the teacher's page, not a broken link in forty students' hands.
"""

import os
import re
import subprocess
from urllib.parse import urlencode, urlsplit

from hubstead.core.errors import HubsteadError

# What git may speak for a link: never file:// or ext:: (it runs as root here) and no
# transport that would ask for a password on a terminal.
PROTOCOLS = ("https", "http", "git")
LS_REMOTE_SECONDS = 20
APPS = {"lab": "lab/tree/", "classic": "tree/"}
# A branch and a path in a repository: no option, no '..', no spaces or quotes.
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$")
_PATH = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/ -]{0,400}$")


class LinkRefused(HubsteadError, ValueError):
    """A repository, branch or file a link cannot be made for."""


def repo_dir(repo: str) -> str:
    """The folder nbgitpuller clones ``repo`` into: the URL's last part without .git."""
    return urlsplit(repo).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")


def check_form(repo: str, branch: str, path: str, app: str) -> None:
    """The form's values, or LinkRefused naming the bad one and what is allowed."""
    parts = urlsplit(repo)
    if parts.scheme not in PROTOCOLS or not parts.hostname or not repo_dir(repo) or re.search(r"\s", repo):
        raise LinkRefused(f"repository {repo!r}: use an https://, http:// or git:// URL of a git repository, "
                          "e.g. https://github.com/org/course.git")
    if parts.username or parts.password:
        raise LinkRefused(f"repository {parts.hostname}: no user name or password in the URL (every student "
                          "would see it); use a public repository")
    if not _BRANCH.match(branch):
        raise LinkRefused(f"branch {branch!r}: use a branch name like main")
    if not _PATH.match(path):
        raise LinkRefused(f"file {path!r}: use a path inside the repository like lesson1/intro.ipynb")
    if app not in APPS:
        raise LinkRefused(f"interface {app!r}: use one of {', '.join(APPS)}")


def check_branch(repo: str, branch: str) -> None:
    """LinkRefused unless ``repo`` answers and has ``branch``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "GIT_ALLOW_PROTOCOL": ":".join(PROTOCOLS), "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    try:
        result = subprocess.run(["git", "ls-remote", "--exit-code", "--heads", "--", repo, f"refs/heads/{branch}"],
                                capture_output=True, text=True, env=env, timeout=LS_REMOTE_SECONDS)
    except subprocess.TimeoutExpired:
        raise LinkRefused(f"repository {repo}: no answer in {LS_REMOTE_SECONDS} s") from None
    if result.returncode == 2:  # --exit-code: the repository answered without that branch
        raise LinkRefused(f"repository {repo}: has no branch {branch!r}")
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no answer"])[-1].removeprefix("fatal: ")
        raise LinkRefused(f"repository {repo}: not reachable as a git repository ({said})")


def nbgitpuller_url(hub_url: str, repo: str, branch: str, path: str, app: str) -> str:
    """The link: ``hub_url`` is the hub's public URL with its base URL (ends in '/')."""
    check_form(repo, branch, path, app)
    folder = repo_dir(repo)
    opened = f"{APPS[app]}{folder}/{path}".rstrip("/")
    # targetpath: left out, nbgitpuller would clone into a folder named with the URL's
    # ".git" and the file opened would not be there.
    query = urlencode({"repo": repo, "branch": branch, "targetpath": folder, "urlpath": opened})
    return f"{hub_url}hub/user-redirect/git-pull?{query}"
