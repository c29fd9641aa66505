"""Where everything lives on the machine (FHS layout; see DESIGN.md), and what it is
called: the one source of these names, ports and paths. The roles get them as variables
from hubstead.converge.role_variables.

The bottom of the dependency graph: no Hubstead imports here.
"""

from pathlib import Path

PREFIX = Path("/opt/hubstead")
HUB_ENV = PREFIX / "hub"
USER_ENV = PREFIX / "user"
ENVS_DIR = PREFIX / "envs"  # named extra environments (`hubstead env`), one venv each
# The user environment belongs to its own system account (no login): only it writes
# USER_ENV, and whatever root runs on that environment (uv, pip, mamba, its interpreter)
# runs as it, in a unit that can write nothing else (converge.as_user_env_owner). Root
# never starts a program of it: a package's .pth file, build backend or console script
# is code a teacher chose. Its HOME holds uv's and pip's caches (systemd's CacheDirectory).
USER_ENV_OWNER = "hubstead-env"
USER_ENV_OWNER_HOME = Path("/var/cache") / USER_ENV_OWNER
# Where that unit sees the wheelhouse (which may lie where the owner cannot go, as /root).
USER_ENV_WHEELHOUSE = Path("/run/hubstead-wheelhouse")
# What every user server reads besides its environment (the spawner's JUPYTER_CONFIG_PATH
# and JUPYTER_PATH): root's files, outside the environment, which root never writes into.
SERVER_CONFIG_DIR = PREFIX / "etc" / "jupyter"
SERVER_DATA_DIR = PREFIX / "share" / "jupyter"
SERVER_PYTHON_DIR = PREFIX / "lib" / "server-python"  # on the servers' PYTHONPATH: the course link guard
# Kernels every server finds: an extra environment's is KERNEL_PREFIX + its name, so it
# never takes the name of python3 or ir.
KERNELS_DIR = SERVER_DATA_DIR / "kernels"
ENV_KERNEL_PREFIX = "env-"
R_KERNEL = "ir"

CONFIG_DIR = Path("/etc/hubstead")
CONFIG_FILE = CONFIG_DIR / "config.yaml"
CONFIG_LOCK = CONFIG_DIR / ".config.lock"
JUPYTERHUB_CONFIG = CONFIG_DIR / "jupyterhub_config.py"
JUPYTERHUB_CONFIG_D = CONFIG_DIR / "jupyterhub_config.d"
TRAEFIK_CONFIG = CONFIG_DIR / "traefik.toml"

STATE_DIR = Path("/var/lib/hubstead")
ARCHIVE_DIR = STATE_DIR / "archive"  # homes of removed users, as tarballs
# Course material: teachers (hub admins) write, students read; linked into every home.
SHARED_DIR = Path("/srv/hubstead/shared")
# The proxy runs as its own system user (and group) with CAP_NET_BIND_SERVICE only: of
# Hubstead's files it can read what is in PROXY_DIR (root-owned, setgid to its group,
# files PROXY_FILE_MODE) and nothing else.
PROXY_USER = "hubstead-proxy"
PROXY_DIR = Path("/var/lib/hubstead-proxy")
PROXY_FILE_MODE = 0o640
RULES_DIR = PROXY_DIR / "rules"
SERVED_TLS_DIR = PROXY_DIR / "tls"  # copies of the certificate and key traefik serves
HUB_ROUTES_FILE = RULES_DIR / "rules.toml"  # the hub's routes (written by the hub)
TLS_RULES_FILE = RULES_DIR / "tls.toml"  # certificates, TLS options, HSTS (hubstead.tls)
HTTP_RULES_FILE = RULES_DIR / "http.toml"  # ACME challenge route, HTTP->HTTPS redirect
TLS_DIR = STATE_DIR / "tls"  # self-signed key and certificate (root's; served as copies)
LETSENCRYPT_DIR = STATE_DIR / "letsencrypt"
LETSENCRYPT_CONFIG_DIR = LETSENCRYPT_DIR / "config"  # certbot's --config-dir (accounts, lineages)
LETSENCRYPT_WORK_DIR = LETSENCRYPT_DIR / "work"
LETSENCRYPT_LOGS_DIR = LETSENCRYPT_DIR / "logs"
PASSWORD_STORE = STATE_DIR / "passwords.json"
# The user environment's last build finished (absent: the next build reinstalls every package).
USER_ENV_BUILT = STATE_DIR / "user-env-built"
TRAEFIK_API_SECRET = STATE_DIR / "traefik-api.secret"
CLI_API_TOKEN = STATE_DIR / "cli-api.token"
COOKIE_SECRET = STATE_DIR / "jupyterhub_cookie_secret"
HUB_DB = STATE_DIR / "jupyterhub.sqlite"
ANSIBLE_RUNS = STATE_DIR / "ansible"
APPLIED_CONFIG = STATE_DIR / "applied-config.json"
HUB_CONFIG_DIGEST = STATE_DIR / "hub-config.digest"
# During an upgrade: the hub's environment as it was (the installer copies it there; while
# it exists the upgrade has not finished, and a boot puts it back: ROLLBACK_UNIT), the
# config and state as they were, and the user environment beside itself (one file
# system, so each goes back by a rename). A copy in the making has PARTIAL_SUFFIX.
PREVIOUS_HUB_ENV = PREFIX / "previous-hub"
PREVIOUS_STATE_DIR = STATE_DIR / "previous"
PREVIOUS_USER_ENV = PREFIX / "previous-user"
PARTIAL_SUFFIX = ".partial"
UPGRADE_BACKUPS = STATE_DIR / "backups"  # the backups made before each upgrade
BACKUP_LOCK = STATE_DIR / ".backup.lock"  # one backup or restore at a time

# The installer's progress page (bin/bootstrap.py serves it on port 80 during a first
# install): the steps `hubstead install` appends to, and the page's pid, by which the
# proxy role stops it before traefik takes the port. Gone when the page ends.
INSTALL_PROGRESS_DIR = Path("/run/hubstead-install")
INSTALL_PROGRESS_LOG = INSTALL_PROGRESS_DIR / "steps.log"
INSTALL_PROGRESS_PID = INSTALL_PROGRESS_DIR / "page.pid"

# The schemes' own ports: URLs leave them out.
HTTP_PORT = 80
HTTPS_PORT = 443

# Loopback ports of the hub, its services and the proxy API (never on a public address).
# All below 1024: only root may bind them, so a student's process can never take one
# while its owner restarts (and receive the logins, tokens or ACME challenges sent there).
HUB_PORT = 881
TEACHER_PORT = 882
TRAEFIK_API_PORT = 883
ACME_CHALLENGE_PORT = 884  # certbot's standalone server, behind traefik's challenge route
LOOPBACK_PORTS = (HUB_PORT, TEACHER_PORT, TRAEFIK_API_PORT, ACME_CHALLENGE_PORT)
# Ports from here up any process may bind; the loopback ports must stay below it (Linux's
# default is 1024; a container runtime may lower it, even to 0).
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")

# systemd units Hubstead installs (the roles write them; commands restart them).
HUB_UNIT = "jupyterhub.service"
PROXY_UNIT = "traefik.service"
CERTBOT_SERVICE = "hubstead-certbot.service"  # Let's Encrypt renewal, run by its timer
CERTBOT_TIMER = "hubstead-certbot.timer"
# At boot, finishes the rollback of an upgrade a reboot or power cut interrupted.
ROLLBACK_UNIT = "hubstead-rollback.service"
# The teacher's page runs inside the hub's unit; its own lines carry this SYSLOG_IDENTIFIER.
TEACHER_LOG = "hubstead-teacher"

# Unix groups: every hub user's account; the users in users.sudoers; hub admins, who
# write the course folder (the spawner syncs the last two at each start).
USERS_GROUP = "jupyterhub-users"
SUDOERS_GROUP = "hubstead-sudoers"
TEACHERS_GROUP = "hubstead-teachers"

# Every user's server runs in this slice, whose memory cap keeps room for the hub. (A
# dash in a slice's name would nest it in another slice.)
USERS_SLICE = "jupyter.slice"
CGROUP_ROOT = Path("/sys/fs/cgroup")

# Roles (with their templates) and the templates of files Hubstead writes itself ship
# inside the wheel (pyproject force-include).
DATA_DIR = Path(__file__).resolve().parents[1] / "_data"
ROLES_DIR = DATA_DIR / "roles"
TEMPLATES_DIR = DATA_DIR / "templates"
# The course link guard: a file of this package that the user_env role copies into the
# user environment as a Jupyter server extension module of this name.
PULL_GUARD_SOURCE = Path(__file__).resolve().parents[1] / "classroom" / "pullguard.py"
PULL_GUARD_MODULE = "hubstead_pullguard"
BOOTSTRAP = DATA_DIR / "bootstrap.py"  # the installer, for `hubstead upgrade`
# On a host run over SSH (--host): bootstrap.py and the wheel, or a backup on its way,
# for one command's time (mktemp's template).
REMOTE_SCRATCH_TEMPLATE = "/tmp/hubstead-ssh.XXXXXX"
