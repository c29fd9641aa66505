"""The teacher's page: a JupyterHub service (/services/teacher/) for hub admins.

What JupyterHub's own admin page lacks: adding a class from a pasted list or a CSV with
initial passwords (shown once, offered as a CSV download, never stored in clear or
logged), password resets and unlocks, removing users (the removal policy follows),
group limits, course material links (nbgitpuller), and each user's Unix account, server,
memory and last activity.

It runs as root under the hub (a managed service), because it manages passwords and
accounts; it acts on the hub through the REST API with its own admin token.
"""

import asyncio
import base64
import functools
import os
import subprocess
from pathlib import Path

import jinja2
from jupyterhub.log import log_request
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web
from tornado.log import app_log

from hubstead import config
from hubstead.classroom import enrol, links, roster
from hubstead.config.model import Settings
from hubstead.core import paths, unixusers, usernames
from hubstead.core.errors import HubsteadError
from hubstead.core.passwords import PasswordStore, generate
from hubstead.core.systemd import format_bytes, journal_logger, unit_memory
from hubstead.hub import hubapi

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=True,
)
MAX_UPLOAD = 1 << 20  # a class list, not a data set
# What users.removal does, in words for the page.
# What the page lets teachers install for everyone (`hubstead packages --KIND`): conda
# only where the user environment is conda's.
PACKAGE_KINDS = {"venv": ("pip", "apt"), "conda": ("pip", "conda", "apt")}
HOME_FATE = {"archive": "archived to /var/lib/hubstead/archive", "delete": "deleted", "keep": "kept"}
ACCOUNT_FATE = {"lock": "locked", "delete": "deleted"}


def account_state(hub_name: str, locked: set[str] | None = None) -> str:
    """active, locked or missing; ``locked``: unixusers.locked_accounts(), read once for many."""
    unix_name = usernames.unix_name(hub_name)
    if not unixusers.exists(unix_name):
        return "missing"
    return "locked" if unix_name in (unixusers.locked_accounts() if locked is None else locked) else "active"


class TeacherHandler(HubOAuthenticated, web.RequestHandler):
    def initialize(self, api: hubapi.HubAPI):
        self.api = api
        self.store = PasswordStore()

    def get_current_user(self):
        # The hub lets only teachers and admins through (the teacher role's
        # access:services); checked again here, against the config the hub runs with.
        user = super().get_current_user()
        if user and not (user.get("admin") or user["name"] in self.effective["users"]["admin"]):
            raise web.HTTPError(403, "The teacher's page is for teachers (users.admin).")
        return user

    def write_error(self, status_code, **kwargs):
        # An expected error (a bad name, a short password) is the form's: a 400 with its
        # one line, as is an HTTPError's message; anything else is a bug: tornado's 500.
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, HubsteadError):
            self.set_status(400)
        message = str(error) if isinstance(error, HubsteadError) else getattr(error, "log_message", None)
        if not message:
            return super().write_error(status_code, **kwargs)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(message)

    def log_exception(self, typ, value, tb):
        if isinstance(value, HubsteadError):  # not a bug: no traceback
            app_log.warning("%s %s: 400: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    @property
    def actor(self) -> str:
        """The teacher acting, for the audit trail."""
        return self.current_user["name"]

    def student_name(self) -> str:
        """The valid user name the form acts on; never a sysadmin's (403)."""
        try:
            return enrol.target(self.get_body_argument("name"), self.sysadmins())
        except enrol.Refused as e:
            raise web.HTTPError(403, str(e)) from None

    def group_name(self, required: bool) -> str | None:
        """The form's group, valid (InvalidGroupName saying what is allowed), or None."""
        value = self.get_body_argument("group", "").strip()
        if not value and not required:
            return None
        return usernames.validate_group(value)

    @functools.cached_property
    def effective(self) -> Settings:
        """The settings, read once for this request."""
        return config.load()

    def sysadmins(self) -> frozenset[str]:
        return frozenset(self.effective["users"]["sudoers"])

    def render_page(self, template: str, **values) -> None:
        # Pages show initial and reset passwords: never kept in a browser's or proxy's cache.
        self.set_header("Cache-Control", "no-store")
        self.finish(TEMPLATES.get_template(template).render(
            prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/teacher/"),
            hub_prefix=os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/",
            xsrf_form_html=self.xsrf_form_html(), user=self.current_user,
            own_passwords=self.effective["auth"]["type"] == "hubstead", **values))

    def groups_of(self) -> list[dict]:
        return sorted(self.api.request("GET", "/groups?limit=10000"), key=lambda g: g["name"])


class Dashboard(TeacherHandler):
    def _rows(self) -> list[dict]:
        accounts, locked = self.store.accounts(), unixusers.locked_accounts()
        rows = []
        for user in sorted(self.api.users(), key=lambda u: u["name"]):
            server = user.get("servers", {}).get("")
            running = bool(server and server.get("ready") and not server.get("stopped"))
            account = accounts.get(user["name"])
            unit = usernames.server_unit(user["name"])
            rows.append({
                "name": user["name"],
                "admin": user.get("admin"),
                "groups": ", ".join(user.get("groups", [])),
                "account": account_state(user["name"], locked),
                "server": "running" if running else ("starting" if server and server.get("pending") else "stopped"),
                "memory": format_bytes(unit_memory(unit, paths.USERS_SLICE)) if running else "–",
                "last_activity": (user.get("last_activity") or "never")[:19].replace("T", " "),
                "login": "locked" if account and account.locked else
                         ("must change password" if account and account.must_change else
                          ("ok" if account else "no password")),
            })
        return rows

    @web.authenticated
    async def get(self):
        # Off the event loop: a class is a hundred accounts, units and password entries.
        rows = await asyncio.to_thread(self._rows)
        removal = self.effective["users"]["removal"]
        groups = await asyncio.to_thread(self.groups_of)
        env = self.effective["user_environment"]
        self.render_page("dashboard.html", users=rows, groups=groups,
                         home_fate=HOME_FATE[removal["home"]], account_fate=ACCOUNT_FATE[removal["account"]],
                         packages=[(kind, spec) for kind in PACKAGE_KINDS[env["manager"]]
                                   for spec in env[f"{kind}_packages"]],  # type: ignore[literal-required]
                         package_kinds=PACKAGE_KINDS[env["manager"]])


class AddUsers(TeacherHandler):
    @web.authenticated
    async def post(self):
        parts = [self.get_body_argument("names", "")]
        upload = self.request.files.get("csv")
        if upload:
            if len(upload[0]["body"]) > MAX_UPLOAD:
                raise web.HTTPError(413, "The CSV is larger than 1 MiB.")
            parts.append(upload[0]["body"].decode("utf-8-sig", errors="replace"))
        # Line numbers in the report count from the start of what was given.
        text = "\n".join(p for p in parts if p.strip())
        default_group = self.group_name(required=False)
        outcomes, issued = await asyncio.to_thread(
            enrol.enrol, self.api, self.store, roster.parse(text), default_group, self.sysadmins(), self.actor)
        csv_text = roster.passwords_csv(issued) if issued else ""
        self.render_page("added.html", outcomes=outcomes, issued=sorted(issued.items()),
                         csv_data=base64.b64encode(csv_text.encode()).decode())


class ResetPassword(TeacherHandler):
    @web.authenticated
    async def post(self):
        name = self.student_name()
        typed = self.get_body_argument("password", "").strip()
        must_change = self.get_body_argument("must_change", "") == "on"
        password = typed or generate()
        await asyncio.to_thread(enrol.reset_password, self.api, self.store, name, password, must_change, self.actor)
        self.render_page("reset.html", name=name, password=password, must_change=must_change)


class Unlock(TeacherHandler):
    @web.authenticated
    async def post(self):
        name = self.student_name()
        await asyncio.to_thread(enrol.unlock, self.store, name, self.actor)
        self.redirect(self.settings["prefix"])


class RemoveUser(TeacherHandler):
    @web.authenticated
    async def post(self):
        name = self.student_name()
        if name == self.current_user["name"]:
            raise web.HTTPError(400, "You can't remove yourself.")
        await asyncio.to_thread(enrol.remove, self.api, name, self.actor)
        unix_name = usernames.unix_name(name)
        archives = sorted(paths.ARCHIVE_DIR.glob(f"{unix_name}-*.tar.gz")) if paths.ARCHIVE_DIR.exists() else []
        self.render_page("removed.html", name=name, account=account_state(name),
                         archive=str(archives[-1]) if archives else None)


class GroupLimits(TeacherHandler):
    @web.authenticated
    async def post(self):
        group = self.group_name(required=True)
        memory = self.get_body_argument("memory", "").strip().upper() or None
        cpu = self.get_body_argument("cpu", "").strip() or None
        try:
            config.validate({"limits": {"groups": {group: {"memory": memory, "cpu": float(cpu) if cpu else None}}}})
        except (config.ConfigError, ValueError) as e:
            raise web.HTTPError(400, f"{e}".replace("limits.groups.", "group ")) from None
        properties = {k: v for k, v in (("memory", memory), ("cpu", float(cpu) if cpu else None)) if v is not None}
        await asyncio.to_thread(self._set_limits, group, properties)
        self.redirect(self.settings["prefix"])

    def _set_limits(self, group: str, properties: dict) -> None:
        enrol.ensure_group(self.api, group)
        self.api.request("PUT", f"/groups/{group}/properties", properties)


class Packages(TeacherHandler):
    """Adds or removes packages for everyone through `hubstead packages`, the command
    root uses: the same checks (resolved before anything is recorded), roles and record,
    started by this root-owned service on the teacher's behalf."""

    @web.authenticated
    async def post(self):
        action = self.get_body_argument("action")
        kind = self.get_body_argument("kind")
        names = self.get_body_argument("names", "").split()
        if action not in ("add", "remove") or kind not in PACKAGE_KINDS[self.effective["user_environment"]["manager"]]:
            raise web.HTTPError(400, f"{action} {kind}: not a package action this page offers")
        if not names:
            raise web.HTTPError(400, "Name at least one package.")
        # A unit of its own, as root's shell would run it: this service's environment is
        # JupyterHub's short list (no HOME for uv's cache), its sandbox the hub's, and a
        # hub restart must not cut an install short. No option can hide among the names:
        # each follows `--`.
        argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
                "--property=User=root", f"--description=hubstead packages {action} for {self.actor}",
                str(paths.HUB_ENV / "bin" / "hubstead"), "packages", action, f"--{kind}", "--by", self.actor,
                "--", *names]
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()[-1:] or [f"hubstead packages failed ({done.returncode})"]
            raise web.HTTPError(400, message[0].removeprefix("hubstead: error: "))
        self.redirect(self.settings["prefix"] + "#packages")


class CourseLink(TeacherHandler):
    @web.authenticated
    async def post(self):
        repo, branch, path, app = (self.get_body_argument(field, default).strip() for field, default in
                                   (("repo", ""), ("branch", "main"), ("path", ""), ("app", "lab")))
        links.check_form(repo, branch, path, app)
        await asyncio.to_thread(links.check_branch, repo, branch, self.effective["hub"]["course_link_networks"])
        # The hub's address as the teacher reached it (traefik passes the Host on).
        scheme = self.request.headers.get("X-Forwarded-Proto", self.request.protocol)
        hub_url = f"{scheme}://{self.request.host}{os.environ.get('JUPYTERHUB_BASE_URL', '/')}"
        url = links.nbgitpuller_url(hub_url, repo, branch, path, app)
        self.render_page("link.html", url=url, repo=repo, branch=branch, folder=links.repo_dir(repo))


def make_app() -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/teacher/")
    api = hubapi.HubAPI(url=os.environ["JUPYTERHUB_API_URL"], token=os.environ["JUPYTERHUB_API_TOKEN"])
    handlers = [
        ("", Dashboard), ("add", AddUsers), ("reset", ResetPassword), ("unlock", Unlock),
        ("remove", RemoveUser), ("groups", GroupLimits), ("packages", Packages), ("link", CourseLink),
    ]
    return web.Application(
        [(url_path_join(prefix, path), cls, {"api": api}) for path, cls in handlers]
        + [(url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)],
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,
        # JupyterHub's request log: the OAuth code and tokens in a URL are scrubbed.
        log_function=log_request,
        prefix=prefix,
    )


def main() -> None:
    # Its lines go to the journal under their own name (`hubstead logs teacher`): on its
    # inherited stdout they would be the hub's, with nothing to tell them apart.
    journal_logger(paths.TEACHER_LOG, "tornado")
    url = os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{paths.TEACHER_PORT}")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    make_app().listen(port, address="127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
