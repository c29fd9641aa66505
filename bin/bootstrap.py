#!/usr/bin/env python3
"""Hubstead bootstrap: turn a fresh Debian/Ubuntu machine into a JupyterHub.

    curl -L https://…/bootstrap.py | sudo python3 - --admin teacher

Standard library only (it runs on the system python3 before anything is installed).
It checks the host, installs the apt prerequisites, builds the hub environment in
/opt/hubstead/hub, installs Hubstead into it and hands over to `hubstead install`.
Every host check fails with one line and before anything on the machine changes.
"""

import argparse
import getpass
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

# Must match hubstead.core.paths (HUB_ENV, PREVIOUS_HUB_ENV, PARTIAL_SUFFIX).
HUB_ENV = "/opt/hubstead/hub"
# On a re-run, the hub's environment as it was, beside itself: a failed upgrade goes back
# to it (`hubstead install --previous-hub-env`), and so does a boot that finds it there
# (the upgrade was cut short). It is copied under a temporary name and renamed when
# complete, so a half copy is never taken for the way back.
PREVIOUS_HUB_ENV = os.path.join(os.path.dirname(HUB_ENV), "previous-hub")
PARTIAL_SUFFIX = ".partial"
# Must match hubstead.machine.upgrade.ROLLED_BACK: the upgrade failed and undid itself.
ROLLED_BACK = 3
DEFAULT_SPEC = "hubstead"
MIN_DISK_GB = 4
MIN_MEMORY_MB = 900
SUPPORTED = {"debian": 12, "ubuntu": 24.04}
# ansible-core, which runs the roles, needs it (Ubuntu 22.04's python3 is 3.10).
MIN_PYTHON = (3, 11)
ARCHITECTURES = ("x86_64", "aarch64")
APT_PACKAGES = [
    "python3-venv",   # the hub venv, and the venv user environment
    "gcc", "python3-dev", "pkg-config", "libsystemd-dev",  # systemd-python builds from source
    "sudo", "ca-certificates", "curl", "bzip2",  # bzip2: Miniforge's installer unpacks with it
    "procps",  # pkill: the proxy role stops the progress page by its pid file
]
# While an install runs with port 80 still free (a first install), a page there shows its
# steps and hands the browser to the hub once the proxy has taken the port. Must match
# hubstead.core.paths (INSTALL_PROGRESS_DIR, _LOG, _PID): `hubstead install` appends its
# steps to the log, and the proxy role stops the page (by its pid file) before traefik starts.
PROGRESS_DIR = "/run/hubstead-install"
PROGRESS_LOG = os.path.join(PROGRESS_DIR, "steps.log")
PROGRESS_PID = os.path.join(PROGRESS_DIR, "page.pid")
PROGRESS_PORT = 80
PROGRESS_JSON_PATH = "/_hubstead/progress"
# Must match hubstead.cli.main.ADMIN_PASSWORDS_ENV: passwords never go on a command line.
ADMIN_PASSWORDS_ENV = "HUBSTEAD_ADMIN_PASSWORDS"


class HostError(Exception):
    """The machine can't run Hubstead; the message says why and what would do."""


def say(message):
    print(f"hubstead-bootstrap: {message}", flush=True)
    try:
        with open(PROGRESS_LOG, "a") as log:
            log.write(message + "\n")
    except FileNotFoundError:  # no progress page
        pass


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bootstrap.py", description=__doc__.splitlines()[0])
    parser.add_argument("--admin", action="append", default=[], metavar="NAME",
                        help="hub admin (repeatable); you are asked for the password on a terminal "
                             "(Enter: one is generated and printed once); NAME:PASSWORD also works, "
                             "but puts the password where others can see it")
    parser.add_argument("--from", dest="spec", default=DEFAULT_SPEC, metavar="SPEC",
                        help="where to install Hubstead from: a checkout directory, a wheel, or a pip "
                             "requirement (default: %(default)s)")
    parser.add_argument("--user-env", choices=["conda", "venv"], default=None,
                        help="how to build the shared user environment (default: conda on a new install)")
    parser.add_argument("--wheelhouse", metavar="DIR", type=os.path.abspath,
                        help="install every Python package from DIR, never from the package index "
                             "(a machine without internet; make DIR with --make-wheelhouse)")
    parser.add_argument("--make-wheelhouse", metavar="DIR", type=os.path.abspath,
                        help="on a connected machine of the same Debian release and CPU: put every Python "
                             "package an install needs (from --from) into DIR, then stop")
    parser.add_argument("--no-progress-page", dest="progress_page", action="store_false",
                        help=f"don't show the install's progress on port {PROGRESS_PORT} while it runs")
    parser.add_argument("--admin-passwords-stdin", action="store_true",
                        help="read the admins' passwords from standard input, as JSON {name: password} "
                             "(`hubstead install --host` sends them so; names without one get a generated one)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- host checks

def os_release(path="/etc/os-release"):
    values = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                values[key] = value.strip('"')
    return values


def check_os(release):
    distro, version = release.get("ID", "?"), release.get("VERSION_ID", "?")
    minimum = SUPPORTED.get(distro)
    try:
        ok = minimum is not None and float(version) >= minimum
    except ValueError:
        ok = False
    if not ok:
        allowed = " or ".join(f"{name.capitalize()} >= {v:g}" for name, v in SUPPORTED.items())
        raise HostError(f"unsupported system {distro} {version}: use {allowed}")


def check_python(version_info=sys.version_info):
    if tuple(version_info[:2]) < MIN_PYTHON:
        found, needed = ".".join(map(str, version_info[:2])), ".".join(map(str, MIN_PYTHON))
        raise HostError(f"python3 is {found} here: Hubstead needs {needed} or newer (Ansible runs its roles)")


def check_root():
    if os.geteuid() != 0:
        raise HostError("must run as root: curl … | sudo python3 - --admin NAME")


def check_systemd():
    try:
        with open("/proc/1/comm") as f:
            init = f.read().strip()
    except OSError:
        init = "?"
    if init != "systemd" or not os.path.isdir("/run/systemd/system"):
        raise HostError(f"systemd is not PID 1 here (PID 1 is {init!r}): Hubstead needs a machine "
                        "booted with systemd (a VM, not a plain container)")


def check_arch():
    machine = platform.machine()
    if machine not in ARCHITECTURES:
        raise HostError(f"unsupported CPU architecture {machine}: use x86_64 or aarch64")


def check_resources():
    probe = "/opt" if os.path.isdir("/opt") else "/"
    free_gb = shutil.disk_usage(probe).free / 1e9
    if free_gb < MIN_DISK_GB:
        raise HostError(f"only {free_gb:.1f} GB free on {probe}: Hubstead needs at least {MIN_DISK_GB} GB")
    with open("/proc/meminfo") as f:
        total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    if total_kb / 1024 < MIN_MEMORY_MB:
        raise HostError(f"only {total_kb // 1024} MB of memory: Hubstead needs at least {MIN_MEMORY_MB} MB")


def port_free(port):
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError as e:
                if e.errno == 97:  # EAFNOSUPPORT: no IPv6 on this machine
                    continue
                return False
    return True


def check_ports():
    # On a re-run (an upgrade) our own traefik holds the ports: that's fine.
    ours = subprocess.run(["systemctl", "is-active", "--quiet", "traefik.service"]).returncode == 0 \
        and os.path.exists("/etc/hubstead/traefik.toml")
    if ours:
        return
    busy = [p for p in (80, 443) if not port_free(p)]
    if busy:
        raise HostError(f"port {', '.join(map(str, busy))} already in use by another program "
                        f"(see: ss -ltnp 'sport = :{busy[0]}'); stop it and run again")


def check_wheelhouse(directory):
    if not os.path.isdir(directory) or not any(name.endswith(".whl") for name in os.listdir(directory)):
        raise HostError(f"--wheelhouse {directory}: no wheels there; make it on a connected machine "
                        "with: python3 bootstrap.py --make-wheelhouse DIR")


def index_options(wheelhouse):
    """What points pip and uv at the wheelhouse instead of the package index (the same
    options hubstead.machine.converge.index_options gives the roles)."""
    return ["--no-index", "--find-links", wheelhouse] if wheelhouse else []


def check_index(python):
    """Can pip reach the package index, as configured here (pip.conf, PIP_INDEX_URL,
    HTTPS_PROXY)? Asks for one small project page, with a short timeout."""
    result = subprocess.run([python, "-m", "pip", "index", "versions", "pip", "--disable-pip-version-check",
                             "--timeout", "15", "--retries", "1"], capture_output=True, text=True)
    if result.returncode == 0:
        return
    output = result.stderr + result.stdout
    # pip's retry warnings carry the network's own words ("[Errno 101] Network is
    # unreachable"); its last line only says the project was not found.
    errors = re.findall(r"\[Errno -?\d+\][^'\")\n]*", output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = (errors or lines or [f"pip exited with {result.returncode}"])[-1].strip()
    raise HostError(f"cannot reach the package index: {reason[:200]}; set HTTPS_PROXY (and the index "
                    "in /etc/pip.conf if you use a mirror) or use --wheelhouse DIR")


def check_host():
    check_root()
    check_os(os_release())
    check_python()
    check_systemd()
    check_arch()
    check_resources()
    check_ports()


# ------------------------------------------------------------- progress page

PROGRESS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Installing JupyterHub…</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 16px/1.5 system-ui, sans-serif; max-width: 46em; margin: 3em auto; padding: 0 1em; color: #222; }
 h1 { font-size: 1.5em; } #status { font-weight: 600; }
 ol { font: 13px/1.6 ui-monospace, monospace; background: #f6f6f6; padding: 1em 1em 1em 3.5em;
      max-height: 60vh; overflow: auto; } li:last-child { font-weight: 700; }
</style></head><body>
<h1>Hubstead is installing JupyterHub on this machine</h1>
<p id="status">Working… (<span id="elapsed">0</span> s)</p>
<p>This page follows the installer and opens the hub when it is ready: keep it open.</p>
<ol id="steps"></ol>
<script>
const started = Date.now(), steps = document.getElementById("steps");
const status = document.getElementById("status");
setInterval(() => {
  const e = document.getElementById("elapsed");
  if (e) e.textContent = Math.round((Date.now() - started) / 1000);
}, 1000);
function show(lines) {
  for (let i = steps.children.length; i < lines.length; i++) {
    const li = document.createElement("li"); li.textContent = lines[i]; steps.appendChild(li);
  }
  steps.scrollTop = steps.scrollHeight;
}
async function follow() {
  try {
    const r = await fetch("__JSON__", {cache: "no-store"});
    if (r.ok && (r.headers.get("content-type") || "").startsWith("application/json")) {
      show((await r.json()).steps); setTimeout(follow, 1000); return;
    }
  } catch (e) {}
  waitForHub();  // the proxy has taken the port: the installer is starting the hub
}
async function waitForHub() {
  status.textContent = "Starting the hub…";
  try {
    // An answer of the hub's, or the proxy sending the browser to HTTPS: the hub is there.
    const r = await fetch("/hub/api/", {cache: "no-store", redirect: "manual"});
    if (r.ok || r.type === "opaqueredirect") { location.replace("/hub/"); return; }
  } catch (e) {}
  setTimeout(waitForHub, 1000);
}
follow();
</script></body></html>
""".replace("__JSON__", PROGRESS_JSON_PATH)


class ProgressPage(http.server.BaseHTTPRequestHandler):
    """The steps so far as JSON, and the page on every other path (with 503: the hub is
    not there yet, and the page tells the hub's answers from its own by that)."""

    def do_GET(self):
        if self.path.split("?")[0] == PROGRESS_JSON_PATH:
            try:
                with open(PROGRESS_LOG) as log:
                    steps = log.read().splitlines()
            except FileNotFoundError:
                steps = []
            self._send(200, "application/json", json.dumps({"steps": steps}))
        else:
            self._send(503, "text/html; charset=utf-8", PROGRESS_HTML)

    def _send(self, status, content_type, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # the terminal is the installer's
        pass


class DualStackServer(http.server.HTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def progress_server():
    """Bound to port 80 on every address, or None when it can't be had."""
    try:
        return DualStackServer(("::", PROGRESS_PORT), ProgressPage)
    except OSError:  # no IPv6 here, or the port is taken
        try:
            return http.server.HTTPServer(("0.0.0.0", PROGRESS_PORT), ProgressPage)
        except OSError:
            return None


def start_progress_page():
    """Serve the page from a child process while this one (and `hubstead install`, which
    replaces it) works. The child ends when the proxy role stops it, or when the install
    ends without getting that far; either way it removes everything it made."""
    shutil.rmtree(PROGRESS_DIR, ignore_errors=True)  # of a run that was killed
    server = progress_server()
    if server is None:
        return
    os.makedirs(PROGRESS_DIR, mode=0o700)
    open(PROGRESS_LOG, "w").close()
    installer = os.getpid()
    child = os.fork()
    if child:
        server.socket.close()
        with open(PROGRESS_PID, "w") as f:
            f.write(f"{child}\n")
        return
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        server.timeout = 1
        while os.getppid() == installer:  # the installer gone: it failed before the proxy started
            server.handle_request()
    finally:
        server.server_close()
        shutil.rmtree(PROGRESS_DIR, ignore_errors=True)
        os._exit(0)


# ------------------------------------------------------------------- install

def run(cmd, **kwargs):
    subprocess.run(cmd, check=True, **kwargs)


def missing_apt_packages():
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *APT_PACKAGES],
                         capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in APT_PACKAGES if p not in installed]


def ensure_apt_packages():
    missing = missing_apt_packages()
    if not missing:
        return
    say(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env,
        stdout=subprocess.DEVNULL)


def make_venv(directory):
    run([sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3", "-m", "venv", directory])
    return os.path.join(directory, "bin", "python")


def ensure_hub_env(wheelhouse=None):
    """The hub's environment with uv in it. Without a wheelhouse, the package index must
    answer first: if it does not, an environment made here is taken away again."""
    python = os.path.join(HUB_ENV, "bin", "python")
    made = []
    if not os.path.exists(python):
        say(f"creating the hub environment in {HUB_ENV}")
        made = [d for d in (os.path.dirname(HUB_ENV), HUB_ENV) if not os.path.exists(d)]
        os.makedirs(os.path.dirname(HUB_ENV), mode=0o755, exist_ok=True)
        make_venv(HUB_ENV)
    if not wheelhouse:
        try:
            check_index(python)
        except HostError:
            for directory in reversed(made):
                shutil.rmtree(directory)
            raise
    uv = os.path.join(HUB_ENV, "bin", "uv")
    if not os.path.exists(uv):
        # uv installs the hub's ~80 packages three times faster than pip.
        result = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                 *index_options(wheelhouse), "uv"])
        if result.returncode != 0:
            say("could not install uv; falling back to pip")
    return python, uv if os.path.exists(uv) else None


def set_hub_env_aside():
    """On a re-run, copy the hub's environment aside before the new Hubstead goes in."""
    if not os.path.exists(os.path.join(HUB_ENV, "bin", "hubstead")):
        return None
    partial = PREVIOUS_HUB_ENV + PARTIAL_SUFFIX
    for leftover in (PREVIOUS_HUB_ENV, partial):  # of a run cut short: the current one is newer
        if os.path.exists(leftover):
            shutil.rmtree(leftover)
    run(["cp", "-a", "--reflink=auto", HUB_ENV, partial])
    os.rename(partial, PREVIOUS_HUB_ENV)
    return PREVIOUS_HUB_ENV


def put_hub_env_back(previous, why):
    if previous and os.path.exists(previous):
        shutil.rmtree(HUB_ENV)
        os.rename(previous, HUB_ENV)
        say(f"{why}: the previous Hubstead is back in {HUB_ENV}")


def install_spec(spec):
    """A directory is copied first: building in place would write into the checkout."""
    if not os.path.isdir(spec):
        return spec, None
    tmp = tempfile.mkdtemp(prefix="hubstead-src-")
    src = os.path.join(tmp, "src")
    shutil.copytree(spec, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.pyc", ".venv", "build", "dist", "*.egg-info", ".pytest_cache"))
    return src, tmp


def install_hubstead(python, uv, spec, wheelhouse=None):
    target, tmp = install_spec(spec)
    say(f"installing Hubstead from {spec}" + (f" and {wheelhouse}" if wheelhouse else ""))
    try:
        if uv:
            run([uv, "pip", "install", "-q", "--compile-bytecode", "-p", python, *index_options(wheelhouse),
                 "--reinstall-package", "hubstead", target])
        else:
            run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *index_options(wheelhouse),
                 "--upgrade", target])
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def admin_passwords(specs, terminal=None):
    """{name: password} for the --admin values: NAME:PASSWORD (with a warning: command
    lines are in every process list while this runs, and sudo logs them), or asked for
    on the terminal. Without a terminal or an answer, `hubstead install` makes one."""
    passwords = {}
    for spec in specs:
        name, sep, password = spec.partition(":")
        name = name.strip().lower()
        if sep:
            print(f"hubstead-bootstrap: warning: the password of {name} is on the command line, "
                  "which other users of this machine can see while this runs and sudo has logged; "
                  f"next time use --admin {name} and type it when asked", file=sys.stderr, flush=True)
            passwords[name] = password
        elif terminal is not None:
            typed = getpass.getpass(f"Password for hub admin {name} (Enter: generate one): ", stream=terminal)
            if typed:
                passwords[name] = typed
    return passwords


def open_terminal():
    """The controlling terminal (stdin is this script when piped from curl), or None."""
    try:
        return open("/dev/tty", "w+")
    except OSError:
        return None


def hand_over(args, passwords, previous=None):
    """Run `hubstead install`; admin passwords travel in the environment only. On a
    re-run it upgrades and can go back to ``previous``; if the new Hubstead does not even
    get that far, the previous environment is put back here."""
    admins = []
    for spec in args.admin:
        admins += ["--admin", spec.partition(":")[0]]
    argv = [os.path.join(HUB_ENV, "bin", "hubstead"), "install", *admins]
    if args.user_env:
        argv += ["--user-env", args.user_env]
    if args.wheelhouse:
        argv += ["--wheelhouse", args.wheelhouse]
    env = dict(os.environ, LANG="C.UTF-8", PATH=f"{HUB_ENV}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}")
    env[ADMIN_PASSWORDS_ENV] = json.dumps(passwords)
    if previous is None:  # a first install: nothing to go back to
        return os.execve(argv[0], argv, env)
    returncode = subprocess.run([*argv, "--previous-hub-env", previous], env=env).returncode
    if returncode not in (0, ROLLED_BACK):
        put_hub_env_back(previous, f"the new Hubstead stopped with exit code {returncode}")
    return returncode


def make_wheelhouse(directory, spec):
    """Every Python package of an install in ``directory``: the hub's environment
    (Hubstead, built from ``spec``, and what it needs), proven complete by installing it
    from there alone, then the user environment's (`hubstead wheelhouse`)."""
    os.makedirs(directory, exist_ok=True)
    work = tempfile.mkdtemp(prefix="hubstead-wheelhouse-")
    try:
        python = make_venv(os.path.join(work, "venv"))
        # The system's pip in a new venv is old; --use-pep517 builds sdists (systemd-python)
        # as their build backends say, not through a setup.py command it may lack.
        run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip"])
        target, tmp = install_spec(spec)
        try:
            say(f"collecting the hub environment's packages (Hubstead from {spec}) in {directory}")
            run([python, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--use-pep517",
                 "-w", directory, target, "uv", "pip", "setuptools", "wheel"])
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *index_options(directory),
             "hubstead"])
        say("collecting the user environment's packages")
        run([os.path.join(work, "venv", "bin", "hubstead"), "wheelhouse", directory])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"done: copy {directory} to the machine and run this installer there with --wheelhouse DIR")


def error(message):
    """The installer's one line for what stopped it; the exit code."""
    print(f"hubstead-bootstrap: error: {message}", file=sys.stderr)
    return 1


def command_failed(e, words):
    """A failed command, named by its first ``words`` (the rest may be long or private)."""
    return error(f"{' '.join(map(str, e.cmd[:words]))} … failed with exit code {e.returncode}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.make_wheelhouse:
        try:
            make_wheelhouse(args.make_wheelhouse, args.spec)
        except subprocess.CalledProcessError as e:
            return command_failed(e, 4)
        return 0
    try:
        check_host()
        if args.wheelhouse:
            check_wheelhouse(args.wheelhouse)
    except HostError as e:
        return error(e)
    if args.admin_passwords_stdin:  # sent by `hubstead install --host`, over SSH
        passwords = json.load(sys.stdin)
    else:  # asked first, so nobody waits at the terminal through the installs
        passwords = admin_passwords(args.admin, open_terminal())
    if args.progress_page:
        start_progress_page()
    previous = None
    try:
        ensure_apt_packages()
        python, uv = ensure_hub_env(args.wheelhouse)
        previous = set_hub_env_aside()
        install_hubstead(python, uv, args.spec, args.wheelhouse)
    except HostError as e:
        return error(e)
    except subprocess.CalledProcessError as e:
        code = command_failed(e, 3)
        put_hub_env_back(previous, "nothing was changed")
        return code
    return hand_over(args, passwords, previous)


if __name__ == "__main__":
    sys.exit(main())
