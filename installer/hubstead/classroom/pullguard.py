"""Course links inside every user's server: nbgitpuller fills only a plain folder of the
home, whoever made the link.

nbgitpuller joins a link's ``targetpath`` (or, without one, the repository URL's last
part) to the home unchecked: ``.ipython/profile_default/startup``, ``..`` or an absolute
path would put a stranger's files where the follower's next kernel runs them, and anyone
can hand out a link. This module is a Jupyter server extension: the user_env role copies
it into the user environment (where Hubstead itself is not installed, so it imports only
the standard library at the top) and the server settings switch nbgitpuller's own
extension off and this one on. It loads nbgitpuller with the check in front of its page
and of its pull: without this file there is no git-pull at all, never an unchecked one.
The teacher's page (``links``) makes its links by the same rule.
"""

import functools
import os
import re

# A plain folder: no '/', no dot-name ('.', '..', '.ipython'), nothing an option could take.
FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
FOLDER_ALLOWED = ("a plain folder name like course (letters, digits, '.', '_' and '-', not starting with "
                  "'.' or '-'; no '/')")


def folder_refused(name: str) -> str | None:
    """Why a link may not fill folder ``name`` of the home, or None when it may."""
    return None if FOLDER.match(name) else f"folder {name!r}: a course link may only fill {FOLDER_ALLOWED}"


def _ui_folder(handler) -> str:
    """The folder nbgitpuller's page (UIHandler.get) goes on with, computed as it does."""
    repo = handler.get_argument("repo")
    return (handler.get_argument("targetpath", None)
            or handler.get_argument("targetPath", repo.rstrip("/").split("/")[-1]))


def _pull_folder(handler) -> str:
    """The folder nbgitpuller's pull (SyncHandler.get) clones into, computed as it does."""
    return handler.get_argument("targetpath", handler.get_argument("repo").split("/")[-1])


def _refusal(handler, folder: str) -> str | None:
    refused = folder_refused(folder)
    if refused:
        return refused
    home = os.path.join(os.path.expanduser(handler.settings["server_root_dir"]),
                        os.getenv("NBGITPULLER_PARENTPATH", ""))
    if os.path.islink(os.path.join(home, folder)):  # ~/shared, or any link of the user's
        return f"folder {folder!r}: a link here, not a folder of the home; a course link fills only a folder"
    return None


def _checked(get, folder_of):
    """``get`` of a nbgitpuller handler, refusing (400, saying why) any other folder."""

    @functools.wraps(get)
    async def checked(self, *args, **kwargs):
        if self.current_user:  # otherwise the handler's own login redirect or 403
            from tornado import web

            refusal = _refusal(self, folder_of(self))
            if refusal:
                raise web.HTTPError(400, "%s", refusal)
        return await get(self, *args, **kwargs)

    return checked


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    import nbgitpuller
    from nbgitpuller._compat import get_base_handler

    get_base_handler(serverapp)  # before nbgitpuller.handlers is imported, as its own loader does
    from nbgitpuller import handlers

    handlers.UIHandler.get = _checked(handlers.UIHandler.get, _ui_folder)
    handlers.SyncHandler.get = _checked(handlers.SyncHandler.get, _pull_folder)
    nbgitpuller._load_jupyter_server_extension(serverapp)
