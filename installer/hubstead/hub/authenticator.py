"""Authenticators: Hubstead's own password store, and the Unix-account hook that every
authenticator gets.

Adding a hub user (admin page, REST API, CLI, first login) creates its Unix account at
once, so the machine follows the hub whatever route added the user.
"""

import asyncio
import secrets
from pathlib import Path

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import new_token, url_path_join
from tornado import web
from tornado.httputil import url_concat
from traitlets import Integer, List, Unicode
from traitlets.config import LoggingConfigurable

from hubstead import config
from hubstead.config import authenticators, plugins
from hubstead.core import audit, passwords, paths, unixusers, usernames
from hubstead.core.passwords import Lockout, PasswordStore, WeakPassword
from hubstead.hub import hubapi

# A browser that logged in before, and as whom (see HubsteadAuthenticator.authenticate).
DEVICE_COOKIE = "hubstead-device"
DEVICE_COOKIE_DAYS = 365
# Who logged in with a password she must change: her name, signed, for the change page only.
PASSWORD_CHANGE_COOKIE = "hubstead-password-change"
PASSWORD_CHANGE_DAYS = 1 / 24  # an hour to choose one
# Under the hub's prefix: /hub/api/hubstead/users/NAME/sessions.
END_SESSIONS_ROUTE = "/api" + hubapi.END_SESSIONS_PATH.format(name="([^/]+)")
# The hub's own pages Hubstead adds or extends (JupyterHub.template_paths).
WEB_TEMPLATES = str(Path(__file__).parent / "web" / "templates")


class UnixAccountsMixin(LoggingConfigurable):
    """The machine follows the hub: a user's Unix account is created when JupyterHub
    adds the user (any route), and the removal policy applied when it deletes them."""

    removal_home = Unicode("archive", config=True, help="archive, delete or keep (users.removal.home)")
    removal_account = Unicode("lock", config=True, help="lock or delete (users.removal.account)")
    sudoers = List(Unicode(), config=True, help="users.sudoers: kept until taken out of that list")

    async def add_user(self, user):
        # super() validates the name: an invalid one must never reach useradd.
        result = super().add_user(user)
        if asyncio.iscoroutine(result):
            await result
        # JupyterHub calls this for every user at each start: only a new account is news.
        new_account = not unixusers.exists(usernames.unix_name(user.name))
        await asyncio.to_thread(unixusers.ensure, user.name)
        if new_account:
            await asyncio.to_thread(plugins.hook(config.load()).hubstead_new_user, username=user.name)

    async def delete_user(self, user):
        # A sysadmin's account goes only once root has taken them out of users.sudoers:
        # otherwise a teacher could remove one and add the name again as their own user.
        if user.name in self.sudoers:
            raise web.HTTPError(403, f"{user.name} is in users.sudoers: take them out first "
                                     f"(sudo hubstead config remove-item users.sudoers {user.name})")
        # JupyterHub has stopped the user's server by now.
        result = super().delete_user(user)
        if asyncio.iscoroutine(result):
            await result
        archive = await asyncio.to_thread(unixusers.remove, user.name, self.removal_home, self.removal_account)
        self.log.info("Removed user %s: home %s%s, account %s", user.name, self.removal_home,
                      f" to {archive}" if archive else "",
                      {"lock": "locked", "delete": "deleted"}[self.removal_account])


class HubsteadLoginHandler(LoginHandler):
    """After logging in with a password the teacher set, go change it first: such a login
    opens no session at all (no hub cookie, so no token, no hub API, no server, whatever
    the route), only the change-password page, which logs the user in once she chose."""

    def set_login_cookie(self, user):
        if not _must_change(self.authenticator, user.name):
            return super().set_login_cookie(user)
        self.set_signed_cookie(PASSWORD_CHANGE_COOKIE, user.name, expires_days=None,
                               path=url_path_join(self.hub.base_url, "change-password"),
                               httponly=True, samesite="Strict")

    def get_next_url(self, user=None, default=None):
        if user and _must_change(self.authenticator, user.name):
            return url_path_join(self.hub.base_url, "change-password")
        return super().get_next_url(user, default)


class ChangePasswordHandler(BaseHandler):
    """/hub/change-password: users choose their own password; who must choose one first
    comes here with no session, only the signed name of her login with the old one."""

    def _store(self) -> PasswordStore:
        return PasswordStore(self.authenticator.password_store)

    def _name(self) -> str | None:
        if self.current_user:
            return self.current_user.name
        value = self.get_signed_cookie(PASSWORD_CHANGE_COOKIE, max_age_days=PASSWORD_CHANGE_DAYS)
        return value.decode() if value else None

    async def _page(self, name: str, error: str | None = None, done: bool = False):
        html = await self.render_template(
            "change-password.html", must_change=_must_change(self.authenticator, name),
            min_length=passwords.MIN_LENGTH, error=error, done=done,
            xsrf=self.xsrf_token.decode("ascii"))
        self.finish(html)

    async def get(self):
        name = self._name()
        if name is None:
            self.redirect(url_concat(self.get_login_url(), {"next": self.request.uri}))
            return
        await self._page(name)

    async def post(self):
        name, store = self._name(), self._store()
        if name is None:
            raise web.HTTPError(403, "Log in first")
        current = self.get_body_argument("current_password", "")
        new = self.get_body_argument("new_password", "")
        lockout = self.authenticator.lockout()
        if not await asyncio.to_thread(store.verify, name, current, lockout):
            error = "The current password is wrong."
        elif new != self.get_body_argument("confirm_password", ""):
            error = "The two new passwords differ."
        elif new == current:
            error = "Choose a password different from the current one."
        else:
            try:
                await asyncio.to_thread(store.set, name, new)
                error = None
            except WeakPassword as e:
                error = f"The new {e}."
        if error:
            self.set_status(400)
            await self._page(name, error=error)
            return
        self.log.info("User %s changed their password", name)
        user = self.find_user(name)
        if not self.current_user and user:  # chose her own: now she is logged in
            self.clear_cookie(PASSWORD_CHANGE_COOKIE, path=url_path_join(self.hub.base_url, "change-password"))
            self.set_login_cookie(user)
        await self._page(name, done=True)


class EndSessionsAPIHandler(APIHandler):
    """DELETE /hub/api/hubstead/users/NAME/sessions (admins): every login cookie and API
    token of NAME stops working, as after a password reset the old password's sessions
    must. The running server's own token stays, so the server keeps running; its
    Lab re-checks a revoked token with the hub within its cache time (5 minutes)."""

    @needs_scope("admin:users")
    async def delete(self, user_name):
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no hub user {user_name!r}")
        if user.admin and not self.current_user.admin:
            raise web.HTTPError(403, "Only admins can end an admin's sessions")
        user.orm_user.cookie_id = new_token()  # the hub's login cookies carry the old one
        server_tokens = {orm.APIToken.find(self.db, s.api_token) for s in user.spawners.values() if s.api_token}
        for token in list(user.orm_user.api_tokens):
            if token not in server_tokens:
                self.db.delete(token)
        self.db.commit()
        self.log.info("Ended the sessions and tokens of %s", user_name)
        audit.record("sessions-ended", user_name, self.current_user.name)
        self.set_status(204)


class HubsteadAuthenticator(UnixAccountsMixin, Authenticator):
    password_store = Unicode(
        str(paths.PASSWORD_STORE), config=True, help="JSON file of password hashes (root only)."
    )
    lockout_max_failures = Integer(5, config=True, help="users.lockout.max_failures (0: never lock)")
    lockout_minutes = Integer(10, config=True, help="users.lockout.minutes")

    def lockout(self) -> Lockout:
        return Lockout(self.lockout_max_failures, self.lockout_minutes * 60)

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        store = PasswordStore(self.password_store)
        device = _known_device(handler, name)
        # argon2 takes CPU: keep the event loop free for the other logins.
        if await asyncio.to_thread(store.verify, name, password, self.lockout(), device):
            if not isinstance(handler, HubsteadLoginHandler) and _must_change(self, name):
                # Another route that takes a password (POST /hub/api/users/NAME/tokens with
                # {"auth": ...}) would open what the login form does not: nothing until she chose.
                self.log.warning("Login refused for %s outside the login page: the password must be changed", name)
                return None
            # This browser is now known to be the user's: strangers' wrong guesses never
            # lock it out (they lock the account for unknown browsers only).
            handler.set_signed_cookie(DEVICE_COOKIE, f"{name}:{device or secrets.token_urlsafe(16)}",
                                      expires_days=DEVICE_COOKIE_DAYS, path=handler.hub.base_url,
                                      httponly=True, samesite="Strict")
            return name
        account = store.account(name)
        if account and account.locked:
            self.log.warning("Login refused for %s: locked after repeated wrong passwords", name)
        return None

    async def delete_user(self, user):
        # However the user is removed (admin page, REST API, CLI, teacher's page): a user
        # added again later under the same name must not find the old password working.
        await super().delete_user(user)  # first: it may refuse (a sysadmin)
        await asyncio.to_thread(PasswordStore(self.password_store).remove, user.name)

    def pre_spawn_start(self, user, spawner):
        account = PasswordStore(self.password_store).account(user.name)
        if account and account.must_change:
            raise web.HTTPError(403, "Choose your own password first: use Password in the menu bar.")

    def get_handlers(self, app):
        return [("/login", HubsteadLoginHandler), ("/change-password", ChangePasswordHandler),
                (END_SESSIONS_ROUTE, EndSessionsAPIHandler)]


def _must_change(authenticator, name: str) -> bool:
    account = PasswordStore(authenticator.password_store).account(name)
    return bool(account and account.must_change)


def _known_device(handler, name: str) -> str | None:
    """The id of this browser if it logged in as ``name`` before (a cookie signed with
    the hub's secret), else None."""
    value = handler.get_signed_cookie(DEVICE_COOKIE, max_age_days=DEVICE_COOKIE_DAYS)
    owner, _, device = (value or b"").decode().partition(":")
    return device if owner == name and device else None


def for_type(auth_type: str) -> type:
    """The authenticator class for config key ``auth.type``, with Unix accounts mixed in."""
    base = authenticators.authenticator_class(auth_type)
    if issubclass(base, UnixAccountsMixin):  # Hubstead's own
        return base
    return type(base.__name__, (UnixAccountsMixin, base), {"__module__": __name__})
