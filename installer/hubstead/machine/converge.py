"""Run the roles with ansible-runner over a local connection.

Each run gets a fresh private data dir (runner's ``env/`` files are sticky across
runs), 0700 under the state dir; the last few are kept for debugging. No secret is
ever passed to ansible: secrets are made and read by Python (hubstead.secrets).
"""

import difflib
import importlib.metadata
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubstead import config
from hubstead.config import plugins
from hubstead.config.model import Settings
from hubstead.config.schema import ROLES
from hubstead.core import paths, state
from hubstead.core.errors import HubsteadError

KEEP_RUNS = 5
SITE_PLAYBOOK = "site.yml"  # the roles, each tagged with its name
REMOVE_PLAYBOOK = "remove.yml"  # each role's tasks/remove.yml


class ConvergeError(HubsteadError, RuntimeError):
    """A role failed; the message names the task and what it said."""


@dataclass
class Result:
    changed: int = 0
    ok: int = 0
    changed_tasks: list = field(default_factory=list)
    # In check mode: unified diffs of the files that would change.
    diffs: list = field(default_factory=list)


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose effective value differs between two configs."""
    old_flat, new_flat = config.flat(old), config.flat(new)
    return sorted(k for k in old_flat.keys() | new_flat.keys() if old_flat.get(k) != new_flat.get(k))


def hub_requirement(name: str) -> str:
    """Hubstead's own requirement on ``name``, name and version range as installed."""
    [spec] = [r for r in importlib.metadata.requires("hubstead") or ()
              if re.split(r"[<>=!~;\s]", r, maxsplit=1)[0] == name]
    return spec


# What every user server needs, besides JupyterHub in the hub's own version range (a
# server talks to its hub); users.pip_packages / conda_packages come on top. Jupyter
# Server from 2.20 serves a notebook as a page (/nbconvert/) sandboxed, as it does files:
# its scripts get an origin of their own, not the hub's (docs/security.md, SEC-34).
USER_ENV_PACKAGES = ("jupyterlab>=4,<5", "notebook>=7,<8", "jupyter-server>=2.20,<3", "nbgitpuller>=1.2,<2",
                     "jupyter-resource-usage>=1.1,<2", "ipywidgets>=8,<9")


# uv's overrides for the user environment (venv mode): what the role and every dry run use.
UV_OVERRIDES = paths.ROLES_DIR / "user_env" / "files" / "uv-overrides.txt"


def user_env_base_packages() -> list[str]:
    return [hub_requirement("jupyterhub"), *USER_ENV_PACKAGES]


def index_options(effective: Settings) -> list[str]:
    """pip's and uv's options for where packages come from: the wheelhouse only, when
    there is one (a machine without the package index); otherwise their own settings."""
    wheelhouse = effective["wheelhouse"]
    return ["--no-index", "--find-links", wheelhouse] if wheelhouse else []


# What pip and uv take for the user environment: wheels only, for every name and every
# dependency, in the teacher's check, the install and every upgrade alike (building an
# sdist runs its setup code).
BINARY_ONLY = {"uv": "--no-build", "pip": "--only-binary=:all:"}
# What a program run as the user environment's owner keeps of its caller's environment
# (names only on its command line: a proxy's URL may hold a password).
PASSED_ENVIRONMENT = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                      "NO_PROXY", "no_proxy", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL",
                      "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX")


def as_user_env_owner(effective: Settings) -> list[str]:
    """What goes before every program root runs on the user environment (uv, pip, mamba,
    its interpreter): a transient unit as the environment's owner, which can write the
    environment and its own cache and nothing else, and never gains privileges. The
    wheelhouse, if any, is where user_env_index_options says."""
    wheelhouse = effective["wheelhouse"]
    return ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
            "--description=hubstead: a command of the user environment's owner",
            f"--property=User={paths.USER_ENV_OWNER}", "--property=NoNewPrivileges=yes",
            "--property=ProtectSystem=strict", "--property=ProtectHome=yes", "--property=PrivateTmp=yes",
            f"--property=ReadWritePaths={paths.USER_ENV}",
            f"--property=CacheDirectory={paths.USER_ENV_OWNER_HOME.name}",
            "--property=UMask=0022", f"--setenv=HOME={paths.USER_ENV_OWNER_HOME}",
            *([f"--property=BindReadOnlyPaths={wheelhouse}:{paths.USER_ENV_WHEELHOUSE}"] if wheelhouse else []),
            *[f"--setenv={name}" for name in PASSED_ENVIRONMENT if name in os.environ], "--"]


def user_env_index_options(effective: Settings) -> list[str]:
    """index_options as the user environment's owner sees them."""
    return ["--no-index", "--find-links", str(paths.USER_ENV_WHEELHOUSE)] if effective["wheelhouse"] else []


def user_pip_packages(effective: Settings) -> list[str]:
    """The extra pip packages of the user environment: the config's, then the plugins'."""
    return [*effective["user_environment"]["pip_packages"], *plugins.extra_packages(effective, "user_pip")]


def uv_pip_install(effective: Settings, *args: str) -> list[str]:
    """uv installing into the user environment (venv mode) as the user_env role does: as
    its owner, wheels only, from where the settings say packages come from."""
    return [*as_user_env_owner(effective), str(paths.HUB_ENV / "bin" / "uv"), "pip", "install",
            BINARY_ONLY["uv"], "--overrides", str(UV_OVERRIDES), "-p", str(paths.USER_ENV / "bin" / "python"),
            *user_env_index_options(effective), *args]


def role_variables(effective: Settings, hub_env: Path = paths.HUB_ENV) -> dict:
    """config.yaml (effective) and hubstead.paths -> role variables. Pure, for tests.

    Each role's variables carry its prefix (``hubstead_<role>_``) and are documented in
    its defaults/main.yml; a fact two roles need goes to each."""
    env, https = effective["user_environment"], effective["https"]
    variables = {
        "hubstead_base_prefix": str(paths.PREFIX),
        "hubstead_base_hub_env": str(hub_env),
        "hubstead_base_config_dir": str(paths.CONFIG_DIR),
        "hubstead_base_jupyterhub_config_d": str(paths.JUPYTERHUB_CONFIG_D),
        "hubstead_base_state_dir": str(paths.STATE_DIR),
        "hubstead_base_proxy_user": paths.PROXY_USER,
        "hubstead_base_proxy_dir": str(paths.PROXY_DIR),
        "hubstead_base_rules_dir": str(paths.RULES_DIR),
        "hubstead_base_served_tls_dir": str(paths.SERVED_TLS_DIR),
        "hubstead_base_shared_dir": str(paths.SHARED_DIR),
        "hubstead_base_users_slice": paths.USERS_SLICE,
        "hubstead_base_users_group": paths.USERS_GROUP,
        "hubstead_base_sudoers_group": paths.SUDOERS_GROUP,
        "hubstead_base_teachers_group": paths.TEACHERS_GROUP,
        "hubstead_base_user_env": str(paths.USER_ENV),
        "hubstead_base_user_env_owner": paths.USER_ENV_OWNER,
        "hubstead_base_user_env_owner_home": str(paths.USER_ENV_OWNER_HOME),
        "hubstead_base_apt_packages": [*env["apt_packages"], *plugins.extra_packages(effective, "apt")],

        "hubstead_user_env_dir": str(paths.USER_ENV),
        "hubstead_user_env_built_stamp": str(paths.USER_ENV_BUILT),
        "hubstead_user_env_owner": paths.USER_ENV_OWNER,
        "hubstead_user_env_as_owner": as_user_env_owner(effective),
        "hubstead_user_env_binary_only": BINARY_ONLY["uv" if env["manager"] == "venv" else "pip"],
        "hubstead_user_env_server_config_dir": str(paths.SERVER_CONFIG_DIR),
        "hubstead_user_env_hub_env": str(hub_env),
        "hubstead_user_env_base_packages": user_env_base_packages(),
        "hubstead_user_env_manager": env["manager"],
        "hubstead_user_env_pip_packages": user_pip_packages(effective),
        # conda's r-irkernel registers its kernel itself; Debian's is registered by the role.
        "hubstead_user_env_conda_packages": [*env["conda_packages"], *plugins.extra_packages(effective, "user_conda"),
                                             *(["r-irkernel"] if env["r"] else [])],
        "hubstead_user_env_kernels_dir": str(paths.KERNELS_DIR),
        "hubstead_user_env_r": env["r"],
        "hubstead_user_env_r_kernel": paths.R_KERNEL,
        "hubstead_user_env_envs_dir": str(paths.ENVS_DIR),
        "hubstead_user_env_env_kernel_prefix": paths.ENV_KERNEL_PREFIX,
        "hubstead_user_env_environments": [
            {"name": name, "python": extra.get("python") or "", "packages": extra.get("packages", [])}
            for name, extra in sorted(effective["environments"].items())],
        "hubstead_user_env_index_options": user_env_index_options(effective),
        "hubstead_user_env_envs_index_options": index_options(effective),
        "hubstead_user_env_pull_guard_source": str(paths.PULL_GUARD_SOURCE),
        "hubstead_user_env_pull_guard_module": paths.PULL_GUARD_MODULE,
        "hubstead_user_env_server_python_dir": str(paths.SERVER_PYTHON_DIR),

        "hubstead_proxy_hub_env": str(hub_env),
        "hubstead_proxy_traefik_config": str(paths.TRAEFIK_CONFIG),
        "hubstead_proxy_rules_dir": str(paths.RULES_DIR),
        "hubstead_proxy_user": paths.PROXY_USER,
        "hubstead_proxy_api_port": paths.TRAEFIK_API_PORT,
        "hubstead_proxy_unit": paths.PROXY_UNIT,
        "hubstead_proxy_progress_page_pid": str(paths.INSTALL_PROGRESS_PID),
        "hubstead_proxy_certbot_service": paths.CERTBOT_SERVICE,
        "hubstead_proxy_certbot_timer": paths.CERTBOT_TIMER,
        "hubstead_proxy_letsencrypt_config_dir": str(paths.LETSENCRYPT_CONFIG_DIR),
        "hubstead_proxy_letsencrypt_work_dir": str(paths.LETSENCRYPT_WORK_DIR),
        "hubstead_proxy_letsencrypt_logs_dir": str(paths.LETSENCRYPT_LOGS_DIR),
        "hubstead_proxy_http_address": effective["http"]["address"] or "",
        "hubstead_proxy_http_port": effective["http"]["port"],
        "hubstead_proxy_https_mode": https["mode"],
        "hubstead_proxy_https_address": https["address"] or "",
        "hubstead_proxy_https_port": https["port"],
        # HSTS pins browsers to HTTPS for a year: only with a certificate they trust.
        "hubstead_proxy_https_hsts": https["hsts"] and https["mode"] in ("manual", "letsencrypt"),
        "hubstead_proxy_letsencrypt": https["mode"] == "letsencrypt",

        "hubstead_hub_env": str(hub_env),
        "hubstead_hub_previous_env": str(paths.PREVIOUS_HUB_ENV),
        "hubstead_hub_rollback_unit": paths.ROLLBACK_UNIT,
        "hubstead_hub_state_dir": str(paths.STATE_DIR),
        "hubstead_hub_config_file": str(paths.CONFIG_FILE),
        "hubstead_hub_jupyterhub_config": str(paths.JUPYTERHUB_CONFIG),
        "hubstead_hub_jupyterhub_config_d": str(paths.JUPYTERHUB_CONFIG_D),
        "hubstead_hub_unit": paths.HUB_UNIT,
        "hubstead_hub_proxy_unit": paths.PROXY_UNIT,
        "hubstead_hub_config_digest": state.hub_config_digest(effective),
        "hubstead_hub_config_digest_file": str(paths.HUB_CONFIG_DIGEST),
    }
    if env["manager"] == "conda":
        url, sha256 = config.conda_installer(effective, platform.machine())
        variables["hubstead_user_env_conda_installer_url"] = url
        variables["hubstead_user_env_conda_installer_sha256"] = sha256
    return variables


def _failure_message(event: dict) -> str:
    data = event.get("event_data", {})
    res = data.get("res", {})
    # A loop's task fails with "One or more items failed": what the first item said is the news.
    failed_items = [r for r in res.get("results", []) if isinstance(r, dict) and r.get("failed")]
    res = failed_items[0] if failed_items else res
    output = res.get("stderr") or res.get("stdout")
    if res.get("msg") == "non-zero return code" and output:
        detail = f"non-zero return code ({res.get('rc')}): {output}"
    else:
        detail = res.get("msg") or output or "no message"
    return f"{data.get('role', '?')}: {data.get('task', '?')}: {str(detail).strip()[-2000:]}"


def _new_private_dir(runs_dir: Path) -> Path:
    runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = sorted(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - KEEP_RUNS + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=runs_dir))  # mkdtemp makes it 0700


def _unified(diff: dict) -> str:
    before, after = diff.get("before", ""), diff.get("after", "")
    if not isinstance(before, str) or not isinstance(after, str):
        return ""
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        diff.get("before_header", "before"), diff.get("after_header", "after")))


def run(variables: dict, roles=ROLES, on_task=None, check: bool = False,
        runs_dir: Path = paths.ANSIBLE_RUNS, roles_dir: Path = paths.ROLES_DIR) -> Result:
    """Converge the given roles; ``on_task(role, task_name)`` is called as tasks start.

    ``check``: change nothing, report what would change (ansible's check and diff mode).
    """
    return _play(SITE_PLAYBOOK, variables, ",".join(roles), on_task, check, runs_dir, roles_dir)


def remove(variables: dict, runs_dir: Path, on_task=None, roles_dir: Path = paths.ROLES_DIR) -> Result:
    """Remove what the roles made (their tasks/remove.yml, in reverse order). ``runs_dir``
    must lie outside the state directory, which goes with them."""
    return _play(REMOVE_PLAYBOOK, variables, None, on_task, False, runs_dir, roles_dir)


def _play(playbook: str, variables: dict, tags: str | None, on_task, check: bool,
          runs_dir: Path, roles_dir: Path) -> Result:
    import ansible_runner  # 0.1 s import; only commands that converge pay it

    private = _new_private_dir(Path(runs_dir))
    bin_dir = str(Path(sys.executable).parent)
    result, failures = Result(), []

    def handle(event):
        kind, data = event.get("event"), event.get("event_data", {})
        if kind == "playbook_on_task_start" and on_task:
            on_task(data.get("role", ""), data.get("task", ""))
        elif kind == "runner_on_ok":
            result.ok += 1
            res = data.get("res", {})
            if res.get("changed"):
                result.changed += 1
                result.changed_tasks.append(f"{data.get('role')}: {data.get('task')}")
                diffs = res.get("diff") or []
                result.diffs.extend(filter(None, map(_unified, diffs if isinstance(diffs, list) else [diffs])))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            failures.append(_failure_message(event))
        return False  # runner need not keep the event on disk

    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(roles_dir),
        playbook=playbook,
        inventory=f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
        extravars=variables,
        tags=tags,
        cmdline="--check --diff" if check else None,
        envvars={
            # runner finds ansible-playbook through PATH, not through sys.executable.
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "ANSIBLE_ROLES_PATH": str(roles_dir),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        },
        event_handler=handle,
        quiet=True,
    )
    if failures or runner.status != "successful":
        # Errors outside a task (e.g. a role file that does not parse) only reach stdout.
        output_tail = runner.stdout.read().strip().splitlines()[-12:]
        raise ConvergeError(failures[0] if failures else
                            f"ansible run {runner.status} (rc={runner.rc}); artifacts in {private}:\n"
                            + "\n".join(output_tail))
    shutil.rmtree(private, ignore_errors=True)
    return result
