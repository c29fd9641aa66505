"""`hubstead backup` and `hubstead restore`: the class in one file, and back onto this or
a freshly installed machine.

A backup is an xz-compressed tar. xz checks every byte of its file (a flipped byte or a
cut-off end is an error when read); the last member, ``manifest.json``, says what the
file holds, where it was made, the hub users with the Unix accounts they had, and the
sha256 of every other member. Restore reads the whole file once to check all of that
before it changes anything, then a second time to put it back.

Members: ``state/…`` (config.yaml, passwords.json, the secrets, a consistent copy of the
hub database, the TLS material, the jupyterhub_config.d snippets), with ``--homes``
``homes/<unix name>/…`` and ``shared/…`` (the course folder).
"""

import dataclasses
import datetime
import errno
import grp
import hashlib
import io
import json
import lzma
import os
import pwd
import shutil
import socket
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hubstead import __version__, config
from hubstead.config.schema import ConfigError
from hubstead.core import credentials, paths, systemd, unixusers, usernames
from hubstead.core.errors import HubsteadError
from hubstead.core.files import locked, write_atomic
from hubstead.core.passwords import PasswordStore
from hubstead.machine import provision

FORMAT = "hubstead-backup"
# What this Hubstead writes, and the newest it reads. Bump it when an older Hubstead
# could not restore the new files correctly.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
XZ_MAGIC = b"\xfd7zXZ\x00"
XZ_PRESET = 1  # homes can be gigabytes: speed over size
HUB_DB_MEMBER = "state/jupyterhub.sqlite"
CONFIG_MEMBER = "state/config.yaml"
PASSWORDS_MEMBER = "state/passwords.json"
CONFIG_SOURCE = "config.yaml in the backup"  # as its errors name it
CHUNK = 1 << 20
# Hubstead's groups whose members' files may sit in the course folder.
GROUPS = (paths.USERS_GROUP, paths.SUDOERS_GROUP, paths.TEACHERS_GROUP)
# While a home is read or written a student may swap a directory for a link: root opens
# every entry relative to its directory, never following a link, and skips what is gone.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class BackupError(HubsteadError, RuntimeError):
    """A backup that can't be written, or a file this Hubstead does not restore."""


def _state_files() -> dict[str, Path]:
    """The single files every backup holds, by member name (paths read at call time)."""
    # The cookie secret is JupyterHub's own: it makes it at its first start.
    secrets = [*credentials.FILES.values(), paths.COOKIE_SECRET]
    return {CONFIG_MEMBER: paths.CONFIG_FILE, PASSWORDS_MEMBER: paths.PASSWORD_STORE,
            **{f"state/secrets/{path.name}": path for path in secrets}}


def _state_dirs() -> dict[str, Path]:
    """The directories every backup holds (the served TLS copies are made again from them)."""
    return {"state/jupyterhub_config.d": paths.JUPYTERHUB_CONFIG_D, "state/tls": paths.TLS_DIR,
            "state/letsencrypt": paths.LETSENCRYPT_DIR}


@dataclasses.dataclass(frozen=True)
class User:
    name: str  # the hub's
    unix_name: str
    uid: int | None  # on the machine backed up; None: it had no account
    gid: int | None


class Accounts:
    """The machine's Unix accounts as backup and restore use them (tests pass their own)."""

    def ids(self, unix_name: str) -> tuple[int, int] | None:
        try:
            account = pwd.getpwnam(unix_name)
        except KeyError:
            return None
        return account.pw_uid, account.pw_gid

    def group_id(self, group: str) -> int | None:
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            return None

    def home(self, unix_name: str) -> Path:
        return Path(pwd.getpwnam(unix_name).pw_dir)

    def check(self, hub_name: str) -> None:
        unixusers.check_available(hub_name)

    def ensure(self, hub_name: str) -> str:
        return unixusers.ensure(hub_name)

    def chown(self, dir_fd: int, name: str, uid: int, gid: int) -> None:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def _open_at(dir_fd: int | None, name: str, flags: int) -> int | None:
    """``name`` opened below ``dir_fd`` without following a link; None when it went away."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _GONE:
            return None
        raise


def _new_digest(info: tarfile.TarInfo):
    """A member's sha256 in the manifest: of its content (a link: of its target)."""
    return hashlib.sha256(info.linkname.encode("utf-8", "surrogateescape") if info.issym() else b"")


class _Padded:
    """A file's bytes on their way into the archive, hashed. A file that shrank since its
    size was taken (a student saving meanwhile) is padded with zeros to that size."""

    def __init__(self, file, size: int, digest):
        self.file, self.left, self.digest = file, size, digest

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.file.read(n)
        data += bytes(n - len(data))
        self.left -= n
        self.digest.update(data)
        return data


class _Writer:
    def __init__(self, tar: tarfile.TarFile, skip: set[tuple[int, int]]):
        self.tar = tar
        self.digests: dict[str, str] = {}
        self.skip = skip  # (device, inode) of the backup being written

    def add(self, path: Path, name: str) -> None:
        """``path`` (a file, or a directory with all below it) as member ``name``."""
        self._add_at(None, str(path), name)

    def _add_at(self, dir_fd: int | None, entry: str, name: str) -> None:
        try:
            st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            try:
                link = os.readlink(entry, dir_fd=dir_fd)
            except OSError as e:
                if e.errno in (*_GONE, errno.EINVAL):  # EINVAL: no longer a link
                    return
                raise
            self._add_entry(st, name, link=link)
            return
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return  # sockets, fifos, devices: nothing anyone gets back
        # O_NONBLOCK: should it have become a fifo meanwhile, opening it must not wait.
        fd = _open_at(dir_fd, entry, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            return
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in self.skip:
            with os.fdopen(fd, "rb") as f:
                self._add_entry(st, name, data=f)
            return
        try:
            if stat.S_ISDIR(st.st_mode):
                self._add_entry(st, name)
                for child in sorted(os.listdir(fd)):
                    self._add_at(fd, child, f"{name}/{child}")
        finally:
            os.close(fd)

    def _add_entry(self, st: os.stat_result, name: str, link: str | None = None, data=None) -> None:
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
        elif data is None:
            info.type = tarfile.DIRTYPE
        else:
            info.size = st.st_size
        digest = _new_digest(info)
        self.tar.addfile(info, _Padded(data, info.size, digest) if data is not None else None)
        self.digests[name] = digest.hexdigest()

    def add_manifest(self, manifest: dict) -> None:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.datetime.now().timestamp())
        self.tar.addfile(info, io.BytesIO(data))


def copy_db(source: Path, copy: Path) -> None:
    """A consistent copy of the live database, what is still in its write-ahead log
    included: sqlite's backup API, while the hub may be writing."""
    try:
        live = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(copy)
            try:
                live.backup(target)
            finally:
                target.close()
        finally:
            live.close()
    except sqlite3.Error as e:
        raise BackupError(f"{source}: {e}") from None


def discard_write_ahead_log() -> None:
    """Before the hub's database is replaced (the hub stopped): sqlite would apply a
    write-ahead log left from the old database to the new one."""
    for suffix in ("-wal", "-shm"):
        Path(f"{paths.HUB_DB}{suffix}").unlink(missing_ok=True)


def _hub_users(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        return [name for (name,) in connection.execute("SELECT name FROM users ORDER BY name")]
    except sqlite3.Error as e:
        raise BackupError(f"{paths.HUB_DB}: no hub users table ({e})") from None
    finally:
        connection.close()


def _includes(names) -> list[str]:
    """What the members are, in words of one part each: config.yaml, secrets, tls, homes…"""
    return sorted({name.split("/")[1] if name.startswith("state/") else name.split("/")[0]
                   for name in names if name != MANIFEST})


def backup(target: Path, homes: bool, accounts: Accounts | None = None) -> dict:
    """Write the backup to ``target`` (0600, atomically); returns its manifest."""
    accounts = accounts or Accounts()
    target = Path(target).absolute()
    if target.is_dir():
        raise BackupError(f"{target} is a directory: give the backup's file name")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    if not paths.HUB_DB.exists():
        raise BackupError(f"no hub database at {paths.HUB_DB}: is Hubstead installed here?")
    with locked(paths.BACKUP_LOCK), tempfile.TemporaryDirectory(prefix="hubstead-backup-") as scratch:
        db = Path(scratch) / "jupyterhub.sqlite"
        copy_db(paths.HUB_DB, db)
        users = [User(name, usernames.unix_name(name), *(accounts.ids(usernames.unix_name(name)) or (None, None)))
                 for name in _hub_users(db)]
        # Created 0600 next to the target; it takes the target's name only when complete.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            skip = {(st.st_dev, st.st_ino) for st in (os.fstat(fd), *([target.stat()] if target.exists() else []))}
            with os.fdopen(fd, "wb") as raw:
                with lzma.open(raw, "wb", preset=XZ_PRESET) as xz, \
                        tarfile.open(fileobj=xz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    writer = _Writer(tar, skip)
                    for name, path in _state_files().items():
                        writer.add(path, name)
                    writer.add(db, HUB_DB_MEMBER)
                    for name, path in _state_dirs().items():
                        writer.add(path, name)
                    if homes:
                        for user in users:
                            if user.uid is not None:
                                writer.add(accounts.home(user.unix_name), f"homes/{user.unix_name}")
                        writer.add(paths.SHARED_DIR, "shared")
                    manifest = {
                        "format": FORMAT, "version": FORMAT_VERSION, "hubstead": __version__,
                        "hostname": socket.gethostname(),
                        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                        "includes": _includes(writer.digests),
                        "users": [dataclasses.asdict(user) for user in users],
                        "groups": {group: accounts.group_id(group) for group in GROUPS},
                        "members": writer.digests,
                    }
                    writer.add_manifest(manifest)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return manifest


def _safe_parts(name: str) -> list[str]:
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BackupError(f"holds {name!r}, a name no backup has")
    return parts


def _users(manifest: dict) -> list[User]:
    try:
        users = [User(**entry) for entry in manifest["users"]]
        for user in users:
            usernames.validate(user.name)
    except (KeyError, TypeError, HubsteadError) as e:
        raise BackupError(f"its manifest's users are not readable ({e})") from None
    return users


def _check_names(manifest: dict, users: list[User]) -> None:
    """Every member is one this Hubstead knows where to put."""
    state = {*_state_files(), HUB_DB_MEMBER}
    dirs = set(_state_dirs())
    homes = {f"homes/{user.unix_name}" for user in users}
    for name in manifest["members"]:
        parts = _safe_parts(name)
        known = (name in state or "/".join(parts[:2]) in dirs or parts[0] == "shared"
                 or (parts[0] == "homes" and "/".join(parts[:2]) in homes))
        if not known:
            raise BackupError(f"holds {name}, which this Hubstead does not restore")


def _read(path: Path, keep: set[str]) -> tuple[dict[str, str], dict[str, bytes]]:
    """Every member's digest, and the content of those in ``keep`` (and the manifest)."""
    digests: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    with open(path, "rb") as raw, lzma.open(raw) as xz:
        with tarfile.open(fileobj=xz, mode="r|") as tar:
            for info in tar:
                if MANIFEST in kept:
                    raise BackupError(f"{path}: damaged: {info.name} after the manifest")
                if not (info.isreg() or info.isdir() or info.issym()):
                    raise BackupError(f"{path}: holds {info.name}, of a kind no backup has")
                digest, chunks = _new_digest(info), []
                if info.isreg():
                    member = tar.extractfile(info)
                    assert member is not None  # a regular file always has one
                    while chunk := member.read(CHUNK):
                        digest.update(chunk)
                        if info.name in keep or info.name == MANIFEST:
                            chunks.append(chunk)
                if info.name == MANIFEST or info.name in keep:
                    kept[info.name] = b"".join(chunks)
                if info.name != MANIFEST:
                    digests[info.name] = digest.hexdigest()
        while xz.read(CHUNK):
            pass  # to its end, where xz checks its index and footer
    return digests, kept


def verify(path: Path) -> dict:
    """Read and check the whole backup; returns its manifest. Changes nothing."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            if raw.read(len(XZ_MAGIC)) != XZ_MAGIC:
                raise BackupError(f"{path}: not a Hubstead backup (not xz-compressed)")
        digests, kept = _read(path, {CONFIG_MEMBER, PASSWORDS_MEMBER})
    except (lzma.LZMAError, EOFError, tarfile.TarError) as e:
        raise BackupError(f"{path}: damaged or not a Hubstead backup ({e})") from None
    except OSError as e:
        raise BackupError(f"{path}: cannot read it ({e.strerror or e})") from None
    if MANIFEST not in kept:
        raise BackupError(f"{path}: not a Hubstead backup (no {MANIFEST})")
    try:
        manifest = json.loads(kept[MANIFEST])
    except ValueError:
        raise BackupError(f"{path}: not a Hubstead backup ({MANIFEST} is not JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a Hubstead backup (its manifest is not ours)")
    version = manifest.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupError(f"{path}: made by Hubstead {manifest.get('hubstead')} in backup format {version}; "
                          f"this Hubstead {__version__} reads up to {FORMAT_VERSION}: upgrade it first")
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise BackupError(f"{path}: not a Hubstead backup (its manifest lists no members)")
    for name in sorted(set(listed) | set(digests)):
        if listed.get(name) != digests.get(name):
            problem = ("is missing" if name not in digests else "is not in its manifest" if name not in listed
                       else "does not match its checksum")
            raise BackupError(f"{path}: damaged: {name} {problem}")
    try:
        _check_names(manifest, _users(manifest))
    except BackupError as e:
        raise BackupError(f"{path}: {e}") from None
    missing = [name for name in (CONFIG_MEMBER, PASSWORDS_MEMBER) if name not in kept]
    if missing:
        raise BackupError(f"{path}: holds no {missing[0]}")
    try:
        config.validate(config.parse_user_config(kept[CONFIG_MEMBER].decode(), CONFIG_SOURCE))
        if not isinstance(json.loads(kept[PASSWORDS_MEMBER]), dict):
            raise ValueError("not a JSON object")
    except ConfigError as e:
        raise BackupError(f"{path}: {e}") from None
    except ValueError as e:
        raise BackupError(f"{path}: passwords.json in the backup: {e}") from None
    return manifest


def _open_dir(root: Path, parts: list[str]) -> int:
    """The directory ``root``/``parts`` opened without following a link anywhere below root."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    for part in parts:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as e:
            raise BackupError(f"{root}/{'/'.join(parts)}: not a directory here ({e.strerror}); "
                              "move it away and restore again") from None
        finally:
            os.close(fd)
        fd = child
    return fd


def _kind(mode: int) -> str:
    return "a directory" if stat.S_ISDIR(mode) else "a link" if stat.S_ISLNK(mode) else "a file"


def _member_kind(info: tarfile.TarInfo) -> str:
    return "a directory" if info.isdir() else "a link" if info.issym() else "a file"


@dataclasses.dataclass(frozen=True)
class SetAside:
    """An entry of a home or the course folder that was of another kind than the backup's
    (a directory where the backup has a file, a link where it has a directory, …): kept
    under a new name next to it, and said."""
    path: str
    kind: str  # what it was here: a directory, a link, a file
    now: str  # where it is now


def _set_aside(parent: int, name: str, path: str, kind: str) -> SetAside:
    """Rename entry ``name`` of directory ``parent`` to a free name beside it (the link
    itself, never what it points to)."""
    for n in range(1, 1000):
        new = f"{name}.before-restore" + (f"-{n}" if n > 1 else "")
        try:
            os.stat(new, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(name, new, src_dir_fd=parent, dst_dir_fd=parent)
            return SetAside(path, kind, f"{path.rsplit('/', 1)[0]}/{new}")
    raise BackupError(f"{path}: {kind} here, and {name}.before-restore and its -2 to -999 are all taken: "
                      "move them away and restore again")


def _put(tar: tarfile.TarFile, info: tarfile.TarInfo, root: Path, parts: list[str], owner: tuple[int, int],
         accounts: Accounts, aside: list[SetAside]) -> None:
    """Create member ``info`` as ``root``/``parts``, owned by ``owner``. An entry there of
    another kind is set aside (recorded in ``aside``); a directory is merged into, a file
    or a link replaced. Never set-id files: a restore is no way to make one."""
    parent = _open_dir(root, parts[:-1])
    name = parts[-1]
    try:
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing and _kind(existing.st_mode) != _member_kind(info):
            aside.append(_set_aside(parent, name, f"{root}/{'/'.join(parts)}", _kind(existing.st_mode)))
            existing = None
        if existing and not stat.S_ISDIR(existing.st_mode):
            os.unlink(name, dir_fd=parent)
        if info.issym():
            os.symlink(info.linkname, name, dir_fd=parent)
            accounts.chown(parent, name, *owner)
            return
        if info.isdir():
            if not existing:
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            mode = info.mode
        else:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent)
            member = tar.extractfile(info)
            assert member is not None  # a regular file always has one
            while chunk := member.read(CHUNK):
                os.write(fd, chunk)
            mode = info.mode & ~(stat.S_ISUID | stat.S_ISGID)
        try:
            accounts.chown(parent, name, *owner)
            os.fchmod(fd, mode)  # after chown, which clears set-group-id on some systems
            if not info.isdir():
                os.utime(fd, (info.mtime, info.mtime))
        finally:
            os.close(fd)
    finally:
        os.close(parent)


def _stage_db(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Path:
    """The database in the backup, written whole next to the hub's (which it replaces last)."""
    fd, tmp = tempfile.mkstemp(dir=paths.HUB_DB.parent, prefix=f".{paths.HUB_DB.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            member = tar.extractfile(info)
            assert member is not None  # a regular file always has one
            shutil.copyfileobj(member, f, CHUNK)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


class _IdMap:
    """New (uid, gid) for an old one, by account and group name; anything the backup's
    machine had that this one does not, or that is no Hubstead account's, becomes root's,
    so no file is handed to whoever holds the old number here."""

    def __init__(self, manifest: dict, users: list[User], new_unix: dict[str, str], accounts: Accounts):
        self.uids: dict[int, int] = {}
        self.gids: dict[int, int] = {}
        for user in users:
            new = accounts.ids(new_unix[user.unix_name])
            if user.uid is not None and user.gid is not None and new:
                self.uids[user.uid], self.gids[user.gid] = new
        for group, old in manifest.get("groups", {}).items():
            new_gid = accounts.group_id(group)
            if old is not None and new_gid is not None:
                self.gids[old] = new_gid

    def __call__(self, uid: int, gid: int) -> tuple[int, int]:
        return self.uids.get(uid, 0), self.gids.get(gid, 0)


def _put_back(path: Path, manifest: dict, users: list[User], new_unix: dict[str, str],
              accounts: Accounts) -> list[SetAside]:
    """Put every member back: homes and the course folder merged as they come, then (only
    once all of that went through) the state: the hub database, the files through their
    owners, the directories swapped in whole. Returns the entries set aside."""
    id_map = _IdMap(manifest, users, new_unix, accounts)
    homes = {unix: (accounts.home(new), accounts.ids(new)) for unix, new in new_unix.items()}
    files, dirs = _state_files(), _state_dirs()
    staged: dict[str, Path] = {}
    staged_files: dict[str, str] = {}
    staged_db: Path | None = None
    aside: list[SetAside] = []
    try:
        with open(path, "rb") as raw, lzma.open(raw) as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
            for info in tar:
                parts = _safe_parts(info.name)
                top = "/".join(parts[:2])
                if info.name == MANIFEST:
                    continue
                if info.name == HUB_DB_MEMBER:
                    staged_db = _stage_db(tar, info)
                elif info.name in files:
                    member = tar.extractfile(info)
                    assert member is not None  # a regular file always has one
                    staged_files[info.name] = member.read().decode()
                elif top in dirs and len(parts) == 2 and info.isdir():
                    target = dirs[top]
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    staged[top] = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restore-"))
                    staged[top].chmod(info.mode)
                elif top in dirs:
                    _put(tar, info, staged[top], parts[2:], (0, 0), accounts, aside)
                elif parts[0] == "homes" and len(parts) > 2:
                    home, owner = homes[parts[1]]
                    assert owner is not None  # made by accounts.ensure
                    # A home is its student's, whatever the numbers were on the old machine.
                    _put(tar, info, home, parts[2:], owner, accounts, aside)
                elif parts[0] == "shared" and len(parts) > 1:
                    _put(tar, info, paths.SHARED_DIR, parts[1:], id_map(info.uid, info.gid), accounts, aside)
        if staged_db is not None:
            discard_write_ahead_log()
            os.replace(staged_db, paths.HUB_DB)
            staged_db = None
        for name, text in staged_files.items():
            _put_state_file(name, text, files[name])
        for top, staging in list(staged.items()):
            _swap_in(staging, dirs[top])
            del staged[top]
    finally:
        for staging in staged.values():
            shutil.rmtree(staging, ignore_errors=True)
        if staged_db is not None:
            staged_db.unlink(missing_ok=True)
    return aside


def _put_state_file(name: str, text: str, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if name == CONFIG_MEMBER:
        config.replace_user_config(text, CONFIG_SOURCE)
    elif name == PASSWORDS_MEMBER:
        PasswordStore(target).replace(json.loads(text))
    else:
        write_atomic(target, text)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace directory ``target`` by the complete ``staging`` next to it."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old:
        shutil.rmtree(old)


def _stop_hub() -> None:
    result = subprocess.run(["systemctl", "stop", paths.HUB_UNIT], capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"could not stop {paths.HUB_UNIT}: {result.stderr.strip()}")


def _stop_servers() -> None:
    """Every user's server (the hub stopped: none starts again), so nobody changes a home
    while it is put back."""
    subprocess.run(["systemctl", "stop", paths.USERS_SLICE], capture_output=True, text=True)
    running = systemd.slice_services(paths.USERS_SLICE)
    if running:
        raise BackupError(f"could not stop the users' servers {', '.join(running)}")


def _start_hub() -> str:
    """The hub started again after a restore that did not get as far as applying the
    settings: what happened, in words."""
    result = subprocess.run(["systemctl", "start", paths.HUB_UNIT], capture_output=True, text=True)
    return ("the hub was started again" if result.returncode == 0
            else f"the hub could not be started again ({result.stderr.strip()}): sudo hubstead config apply")


def restore(path: Path, accounts: Accounts | None = None) -> dict:
    """Check the backup, then put it back and bring the machine to its settings. Returns
    the manifest, and how long the hub took to answer afterwards."""
    accounts = accounts or Accounts()
    with locked(paths.BACKUP_LOCK):
        manifest = verify(path)
        users = _users(manifest)
        for user in users:  # someone else's account of the same name: refused before any change
            try:
                accounts.check(user.name)
            except HubsteadError as e:
                raise BackupError(f"{path}: cannot restore here: {e}") from None
        _stop_hub()
        # From here on, whatever happens, the hub runs again afterwards.
        try:
            _stop_servers()
            new_unix = {user.unix_name: accounts.ensure(user.name) for user in users}
            aside = _put_back(path, manifest, users, new_unix, accounts)
        except (HubsteadError, OSError) as e:
            raise BackupError(f"{path}: not restored: {e}; the settings, passwords, secrets and hub database are "
                              f"as they were (homes may be in part restored); {_start_hub()}") from None
        except BaseException:
            _start_hub()
            raise
        try:
            _, waited = provision.run(config.load())
        except BaseException as e:
            started = _start_hub()
            if not isinstance(e, HubsteadError):
                raise
            raise BackupError(f"restored {path}, but the machine could not be brought to its settings: {e}; "
                              f"{started}; fix that, then: sudo hubstead config apply") from None
    return {**manifest, "new_unix": new_unix, "waited": waited, "set_aside": aside}
