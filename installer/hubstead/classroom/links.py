"""Course material links: an nbgitpuller URL a teacher hands out. A student who follows
it logs in, gets a server, and nbgitpuller (in the user environment) clones the
repository into their home, or merges what changed into the copy they have, then opens
the file.

The repository is asked for the branch first (``git ls-remote``), so a mistyped URL or
branch is an error on the teacher's page, not a broken link in forty students' hands.
That question goes out from the hub, as root: only to public addresses (a repository's
name is resolved first, and git is held to the addresses found, redirects refused), so a
link cannot make the hub probe the machine's own or the local network's services; a
sysadmin may allow networks of their own (``hub.course_link_networks``).

The folder a link fills is one plain folder of the home, as every user's server enforces
for links from anyone (``pullguard``).
"""

import ipaddress
import os
import re
import socket
import subprocess
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

from hubstead.classroom import pullguard
from hubstead.core.errors import HubsteadError

# What git may speak for a link: never file:// or ext:: (it runs as root here) and no
# transport that would ask for a password on a terminal.
PROTOCOLS = ("https", "http", "git")
LS_REMOTE_SECONDS = 20
DEFAULT_PORTS = {"https": 443, "http": 80, "git": 9418}
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
    refused = pullguard.folder_refused(repo_dir(repo))
    if refused:
        raise LinkRefused(f"repository {repo}: its {refused}; rename the repository")
    if parts.username or parts.password:
        raise LinkRefused(f"repository {parts.hostname}: no user name or password in the URL (every student "
                          "would see it); use a public repository")
    if not _BRANCH.match(branch):
        raise LinkRefused(f"branch {branch!r}: use a branch name like main")
    if not _PATH.match(path):
        raise LinkRefused(f"file {path!r}: use a path inside the repository like lesson1/intro.ipynb")
    if app not in APPS:
        raise LinkRefused(f"interface {app!r}: use one of {', '.join(APPS)}")


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for kind in ("loopback", "link_local", "private", "multicast"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "reserved"


def _public_addresses(repo: str, networks: Iterable[str]) -> tuple[str, int, list[str]]:
    """The host of ``repo``, its port, and the addresses it resolves to; LinkRefused
    when one of them is not public (loopback, link-local, private, reserved, multicast,
    in any spelling) and in none of ``networks``."""
    parts = urlsplit(repo)
    host = parts.hostname or ""
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (ValueError, OSError) as e:
        raise LinkRefused(f"repository {repo}: not reachable as a git repository ({host}: "
                          f"{getattr(e, 'strerror', None) or e})") from None
    allowed = [ipaddress.ip_network(network, strict=False) for network in networks]
    addresses = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not (address.is_global and not address.is_multicast) and not any(address in n for n in allowed):
            raise LinkRefused(f"repository {repo}: {host} is a {_kind(address)} address ({address}), not a public "
                              "one; the hub asks only public repositories (sysadmins: hub.course_link_networks "
                              "allows a network of your own)")
        addresses.append(str(address))
    return host, port, addresses


def _pinned(repo: str, host: str, port: int, addresses: list[str]) -> tuple[list[str], str]:
    """git's options and the URL that make it use only ``addresses`` for ``host``."""
    options = ["-c", "http.followRedirects=false"]  # a redirect could point anywhere
    try:
        ipaddress.ip_address(host)
        return options, repo  # a literal address: nothing to resolve again
    except ValueError:
        pass
    # IPv4 first: git's own protocol gets one address (it has no resolve option), curl tries them in turn.
    ordered = sorted(dict.fromkeys(addresses), key=lambda a: ":" in a)
    bracketed = [f"[{a}]" if ":" in a else a for a in ordered]
    if urlsplit(repo).scheme == "git":
        parts = urlsplit(repo)
        return options, parts._replace(netloc=f"{bracketed[0]}:{port}").geturl()
    return [*options, "-c", f"http.curloptResolve={host}:{port}:{','.join(bracketed)}"], repo


def check_branch(repo: str, branch: str, networks: Iterable[str] = ()) -> None:
    """LinkRefused unless ``repo`` is on a public address (or in ``networks``), answers
    and has ``branch``."""
    host, port, addresses = _public_addresses(repo, networks)
    options, url = _pinned(repo, host, port, addresses)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "GIT_ALLOW_PROTOCOL": ":".join(PROTOCOLS), "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    try:
        result = subprocess.run(["git", *options, "ls-remote", "--exit-code", "--heads", "--", url,
                                 f"refs/heads/{branch}"],
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
