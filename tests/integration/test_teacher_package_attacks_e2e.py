"""A teacher's package attacks root (issue 18, items 1 and 2), on a booted target, from
the teacher's own position: she adds packages on the teacher's page, and they come from
a package index she controls (served here from loopback; the target reads it as an
extra index, as a school's mirror would be set up in /etc/uv/uv.toml).

- A wheel with a ``.pth`` file (Python runs its ``import`` lines at every start of the
  environment's interpreter) and a console script named ``hubstead`` (what a sysadmin
  types under sudo).
- A name published as a 1.0 wheel and a 2.0 sdist, whose build backend would run if
  anything built it: the teacher's check picks 1.0; the install and every upgrade must too.

Every piece of the attacker's code sends a syslog line; the journal's own ``_UID`` field
(set by journald from the sender's credentials, not by the sender) says who ran it. The
attack fails when no line came from root, and the packages still reach a student's kernel.
"""

import hashlib
import html
import http.server
import inspect
import io
import json
import re
import tarfile
import threading
from pathlib import Path

import pytest
from hubclient import ADMIN, ADMIN_PASSWORD, BASE, HubSession, own_server, run_code

from hubstead.core import paths

pytestmark = pytest.mark.integration

STUDENT, STUDENT_PASSWORD = "ann", "ann-password-1"
SYSADMIN, SYSADMIN_PASSWORD = "sam", "sam-password-1"
TEACHER_PAGE = f"{BASE}/services/teacher/"
TAG = "hubstead-attack"  # the attacker's syslog identifier
PTH_PACKAGE, SDIST_PACKAGE = "hubstead-attack-pth", "hubstead-attack-sdist"
# One line of a .pth file: Python exec()s it at every interpreter start (site.py).
RECORD = ("import os, sys, syslog; syslog.openlog('" + TAG + "'); "
          "syslog.syslog('{what} uid=%d euid=%d argv=%r' % (os.getuid(), os.geteuid(), sys.argv[:3]))")


def write_wheel(directory, name, version, files):
    """A pure-Python wheel of ``name`` ``version`` with ``files`` ({path: text}) in
    ``directory``; returns its file name. (Also the sdist's build backend, as its source.)"""
    import base64 as b64
    import hashlib as hl
    import zipfile as zf
    from pathlib import Path as P
    dist = f"{name.replace('-', '_')}-{version}"
    files = {**files, f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: attacker\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n"}
    record = [f"{path},sha256={b64.urlsafe_b64encode(hl.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()]
    files[f"{dist}.dist-info/RECORD"] = "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    wheel = f"{dist}-py3-none-any.whl"
    with zf.ZipFile(P(directory) / wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def module(version: str) -> str:
    return f"VERSION = {version!r}\n\n\ndef main():\n    {RECORD.format(what='console-script')}\n"


def sdist(directory: Path, name: str, version: str) -> str:
    """An sdist whose in-tree build backend records who runs it, then builds the wheel."""
    base = f"{name.replace('-', '_')}-{version}"
    backend = "\n".join([
        RECORD.format(what="build-backend"),
        inspect.getsource(write_wheel),
        f"def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        f"    return write_wheel(wheel_directory, {name!r}, {version!r}, "
        f"{{{name.replace('-', '_') + '/__init__.py'!r}: {module(version)!r}}})\n"])
    members = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
                          f'[project]\nname = "{name}"\nversion = "{version}"\n',
        "backend.py": backend,
    }
    file_name = f"{base}.tar.gz"
    with tarfile.open(directory / file_name, "w:gz") as archive:
        for member, text in members.items():
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return file_name


def simple_index(root: Path) -> None:
    """PEP 503 pages for every file in root/files, by project."""
    projects: dict[str, list[str]] = {}
    for file in sorted((root / "files").iterdir()):
        project = re.match(r"([A-Za-z0-9_]+)-", file.name)[1].replace("_", "-").lower()
        projects.setdefault(project, []).append(file.name)
    for project, files in projects.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        digests = {f: hashlib.sha256((root / "files" / f).read_bytes()).hexdigest() for f in files}
        links = "".join(f'<a href="../../files/{f}#sha256={digests[f]}">{f}</a>\n' for f in files)
        page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


@pytest.fixture(scope="module")
def attackers_index(hub, tmp_path_factory):
    """The teacher's packages on an index on loopback, which the target reads as an extra
    index (uv's system-wide configuration)."""
    root = tmp_path_factory.mktemp("attackers-index")
    (root / "files").mkdir()
    write_wheel(root / "files", PTH_PACKAGE, "1.0", {
        "hubstead_attack_pth/__init__.py": module("1.0"),
        "hubstead_attack_pth.pth": RECORD.format(what="pth") + "\n",
        "hubstead_attack_pth-1.0.dist-info/entry_points.txt": "[console_scripts]\n"
                                                              "hubstead = hubstead_attack_pth:main\n"})
    write_wheel(root / "files", SDIST_PACKAGE, "1.0", {"hubstead_attack_sdist/__init__.py": module("1.0")})
    sdist(root / "files", SDIST_PACKAGE, "2.0")
    simple_index(root)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hub.tb.run("mkdir", "-p", "/etc/uv")
    hub.tb.run("tee", "/etc/uv/uv.toml",
               input=f'extra-index-url = ["http://127.0.0.1:{server.server_address[1]}/simple/"]\n')
    try:
        yield
    finally:
        server.shutdown()
        hub.tb.run("rm", "-f", "/etc/uv/uv.toml")


def attack_records(hub) -> list[tuple[int, str]]:
    """(uid, message) of every line the attacker's code sent, as the journal saw them."""
    out = hub.tb.run("journalctl", "--no-pager", "-o", "json", f"SYSLOG_IDENTIFIER={TAG}").stdout
    return [(int(entry["_UID"]), entry["MESSAGE"]) for entry in map(json.loads, out.splitlines())]


def as_root(records):
    return [message for uid, message in records if uid == 0]


def add_user(hub, name, password):
    hub.tb.run("hubstead", "users", "add", name, "--password-stdin", input=password + "\n")


@pytest.fixture(scope="module")
def student(hub):
    add_user(hub, STUDENT, STUDENT_PASSWORD)
    return own_server(STUDENT, STUDENT_PASSWORD)[1]


@pytest.fixture(scope="module")
def teacher_page(hub, attackers_index):
    """The teacher's logged-in session on the hub."""
    session = HubSession()
    assert session.login(ADMIN, ADMIN_PASSWORD).status_code == 302
    return session


def teacher_adds(session, name: str):
    """What the teacher's page's package form sends (its form token read from the page)."""
    page = session.http.get(TEACHER_PAGE, timeout=60)
    assert page.status_code == 200, page.text[:500]
    xsrf = html.unescape(re.search(r'name="_xsrf" value="([^"]+)"', page.text)[1])
    return session.http.post(f"{TEACHER_PAGE}packages", timeout=900,
                             data={"_xsrf": xsrf, "action": "add", "kind": "pip", "names": name})


def version_in_kernel(student: str, token: str, module_name: str) -> str:
    return run_code(STUDENT, token, f"import {module_name} as m; print(m.VERSION, m.__file__)").strip()


def test_a_teachers_wheel_with_a_pth_file_runs_nothing_as_root(hub, student, teacher_page):
    added = teacher_adds(teacher_page, PTH_PACKAGE)

    assert added.status_code == 200 and f"<code>{PTH_PACKAGE}</code>" in added.text, added.text[-2000:]
    # The feature still works: a student's new kernel imports it (and runs its .pth, as her).
    assert version_in_kernel(STUDENT, student, "hubstead_attack_pth").startswith(f"1.0 {paths.USER_ENV}/")
    records = attack_records(hub)
    assert records, "the .pth file never ran"
    assert as_root(records) == []


def test_the_user_environment_stays_closed_to_students(hub, student):
    out = run_code(STUDENT, student, "import pathlib, site\n"
                                     "try:\n"
                                     "    (pathlib.Path(site.getsitepackages()[0]) / 'planted.pth').write_text('x')\n"
                                     "    print('written')\n"
                                     "except PermissionError:\n"
                                     "    print('refused')")
    assert out.strip() == "refused"


def test_a_source_only_version_is_never_built(hub, student, teacher_page):
    added = teacher_adds(teacher_page, SDIST_PACKAGE)

    assert added.status_code == 200 and f"<code>{SDIST_PACKAGE}</code>" in added.text, added.text[-2000:]
    assert version_in_kernel(STUDENT, student, "hubstead_attack_sdist").startswith("1.0 ")
    assert [message for _, message in attack_records(hub) if "build-backend" in message] == []


def test_a_sysadmins_sudo_never_runs_a_teachers_console_script(hub, student, teacher_page):
    hub.tb.run("hubstead", "config", "add-item", "users.sudoers", SYSADMIN)
    hub.tb.run("hubstead", "config", "reload", "hub")
    add_user(hub, SYSADMIN, SYSADMIN_PASSWORD)
    _, token = own_server(SYSADMIN, SYSADMIN_PASSWORD)

    # What a sysadmin types in a JupyterLab terminal: a login shell of theirs.
    out = run_code(SYSADMIN, token, "import subprocess; r = subprocess.run(['bash', '-lc', 'sudo -n hubstead "
                                    "--version'], capture_output=True, text=True); print(r.returncode, r.stdout)",
                   timeout=120)

    assert [message for message in as_root(attack_records(hub)) if "console-script" in message] == []
    assert as_root(attack_records(hub)) == []
    assert out.startswith("0 hubstead"), out  # root's own hubstead answered


def test_an_upgrade_keeps_every_recorded_package_to_wheels(hub, student):
    hub.tb.run("hubstead", "upgrade", "--from", "/opt/src", timeout=1500)

    _, token = own_server(STUDENT, STUDENT_PASSWORD)
    assert version_in_kernel(STUDENT, token, "hubstead_attack_sdist").startswith("1.0 ")
    assert version_in_kernel(STUDENT, token, "hubstead_attack_pth").startswith("1.0 ")
    records = attack_records(hub)
    assert [message for _, message in records if "build-backend" in message] == []
    assert as_root(records) == []


def test_an_environment_root_made_before_is_handed_to_its_owner(hub, host):
    # As an older Hubstead left it: root's, with the server settings inside.
    hub.tb.run("chown", "-R", "-h", "root:root", str(paths.USER_ENV))
    hub.tb.run("mkdir", "-p", f"{paths.USER_ENV}/etc/jupyter")
    hub.tb.run("cp", f"{paths.SERVER_CONFIG_DIR}/jupyter_server_config.json", f"{paths.USER_ENV}/etc/jupyter/")

    hub.bootstrap()  # re-running the installer

    assert hub.tb.run("find", str(paths.USER_ENV), "!", "-user", paths.USER_ENV_OWNER).stdout == ""
    assert not host.file(f"{paths.USER_ENV}/etc/jupyter/jupyter_server_config.json").exists
    # The venv's python is a link to the system's: the link changed hands, not what it names.
    assert hub.tb.run("stat", "-L", "-c", "%U", str(paths.USER_ENV / "bin" / "python")).stdout.strip() == "root"
    _, token = own_server(STUDENT, STUDENT_PASSWORD)
    assert version_in_kernel(STUDENT, token, "hubstead_attack_pth").startswith("1.0 ")
