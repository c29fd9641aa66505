"""This hub as Helm values for Zero to JupyterHub's ``jupyterhub`` chart (``hubstead
export z2jh``), an image recipe for repo2docker beside them, a row per setting saying how
it carried over, and the steps of the move.

``export`` is pure (the effective settings and the admin's snippets in, an ``Export``
out) so tests can feed it any config. The values are checked as Helm checks them:
merged onto the chart's own defaults, then validated against the chart's JSON schema,
both shipped in ``chart/`` (its SOURCE.md says where they come from).
"""

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from hubstead import config
from hubstead.config import keys, schema
from hubstead.config.model import Settings
from hubstead.core import passwords, paths
from hubstead.core.errors import HubsteadError
from hubstead.core.files import write_atomic
from hubstead.hub import settings as hub_settings
from hubstead.machine import converge
from hubstead.machine.tls import letsencrypt

CHART_DIR = Path(__file__).parent / "chart"
# The chart's appVersion is JupyterHub 5.5 (chart/SOURCE.md): the image's
# jupyterhub-singleuser talks to that hub, so the recipe pins the same major version.
CHART_JUPYTERHUB = "jupyterhub>=5,<6"
MAPPED, APPROXIMATE, UNMAPPED = "mapped", "approximate", "cannot map"
# What the teacher fills in: secrets left out, the image's name.
PLACEHOLDER = "REPLACE-ME"
IMAGE_DIR = "image"  # the recipe, beside the values file
TLS_SECRET = "hubstead-tls"  # the Kubernetes secret a manual certificate goes into
# NativeAuthenticator (in the chart's hub image) stands in for Hubstead's password store:
# users choose their password at sign-up, admins approve them, wrong passwords lock.
STAND_IN_AUTHENTICATOR = "native"


class ExportError(HubsteadError):
    """The export can't be written as asked; the message says why."""


@dataclass(frozen=True)
class Row:
    key: str  # a schema key, or a jupyterhub_config.d file
    status: str  # MAPPED, APPROXIMATE or UNMAPPED
    where: str  # what it became, or what to do instead


@dataclass
class Export:
    values: dict
    recipe: dict[str, str]  # file name in IMAGE_DIR -> text
    rows: list[Row] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    secrets_left_out: list[str] = field(default_factory=list)


@cache
def chart_defaults() -> dict:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())


@cache
def _chart_schema() -> dict:
    return yaml.safe_load((CHART_DIR / "values.schema.yaml").read_text())


def coalesce(values: dict) -> dict:
    """What the chart sees: ``values`` merged onto its defaults key by key, as Helm does
    (Helm would also drop a default where a value is null; the export writes no nulls)."""
    return config.merge(chart_defaults(), values)


def validate(values: dict) -> None:
    """ExportError naming the first place the chart's schema refuses (Helm's own check)."""
    validator = jsonschema.Draft7Validator(_chart_schema())
    errors = sorted(validator.iter_errors(coalesce(values)), key=lambda e: list(e.path))
    if errors:
        where = ".".join(map(str, errors[0].path)) or "(top)"
        raise ExportError(f"the chart's schema refuses {where}: {errors[0].message}")


def _placeholder(key: str) -> str:
    return f"{PLACEHOLDER} ({key})"


def _hide_secrets_in_snippet(name: str, text: str, left_out: list[str]) -> str:
    """A snippet with every secret-looking value replaced by a placeholder, however it is
    written: ``c.X.client_secret = ...`` over any number of lines (parentheses, a
    triple-quoted string, a backslash), a dict's ``"api_token": ...`` or a call's
    ``client_secret=...``. A snippet Python cannot read is left out whole."""
    source = text.encode()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        left_out.append(f"{paths.JUPYTERHUB_CONFIG_D.name}/{name}")
        return f"# {_placeholder(name)}: not valid Python, so left out whole\n"
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    values = sorted(_secret_values(tree), key=lambda v: (v.lineno, v.col_offset))
    out, done = [], 0
    for value in values:
        start = starts[value.lineno - 1] + value.col_offset
        end = starts[value.end_lineno - 1] + value.end_col_offset  # type: ignore[operator]
        if start < done:  # inside a value already hidden
            continue
        where = f"{name}:{value.lineno}"
        left_out.append(f"{paths.JUPYTERHUB_CONFIG_D.name}/{where}")
        out += [source[done:start], repr(_placeholder(where)).encode()]
        done = end
    out.append(source[done:])
    hidden = b"".join(out).decode()
    return hidden if hidden.endswith("\n") else hidden + "\n"


def _assigned_name(target: ast.expr) -> str:
    """``client_secret`` of ``c.X.client_secret`` or ``c.X["client_secret"]``, else ''."""
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        return str(target.slice.value)
    return ""


def _secret_values(tree: ast.AST):
    """The value nodes of secret-looking names: assigned attributes, dict keys, keywords."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(keys.is_secret(_assigned_name(t)) for t in targets):
                yield node.value
        elif isinstance(node, ast.Dict):
            yield from (v for k, v in zip(node.keys, node.values, strict=True)
                        if isinstance(k, ast.Constant) and isinstance(k.value, str) and keys.is_secret(k.value))
        elif isinstance(node, ast.keyword) and node.arg and keys.is_secret(node.arg):
            yield node.value


def _authentication(effective: Settings, with_secrets: bool, out: Export, hub_config: dict) -> None:
    auth, users = effective["auth"], effective["users"]
    lockout = users["lockout"]
    if auth["type"] == "hubstead":
        hub_config["JupyterHub"]["authenticator_class"] = STAND_IN_AUTHENTICATOR
        hub_config["NativeAuthenticator"] = {
            "open_signup": False,  # an admin approves each sign-up
            "minimum_password_length": passwords.MIN_LENGTH,
            "allowed_failed_logins": lockout["max_failures"],
            "seconds_before_next_try": lockout["minutes"] * 60,
        }
        out.rows += [
            Row("auth.type", UNMAPPED,
                "Hubstead's password store (argon2 hashes in /var/lib/hubstead) has no counterpart: the values use "
                "NativeAuthenticator (students sign up again, an admin approves them at /hub/authorize); your "
                "institution's login (auth.type github, generic-oauth, ldapauthenticator) carries over better"),
            Row("users.lockout.max_failures", APPROXIMATE,
                "hub.config.NativeAuthenticator.allowed_failed_logins (one count per user, none per browser)"),
            Row("users.lockout.minutes", APPROXIMATE, "hub.config.NativeAuthenticator.seconds_before_next_try"),
        ]
    else:
        hub_config["JupyterHub"]["authenticator_class"] = auth["type"]
        own = "." in auth["type"]  # a module.Class of the admin's, not an entry point of the hub image
        out.rows += [
            Row("auth.type", APPROXIMATE if own else MAPPED,
                "hub.config.JupyterHub.authenticator_class"
                + (" (build a hub image with that module in it: hub.image)" if own else "")),
            *(Row(k, UNMAPPED, f"only Hubstead's password store locks accounts; {auth['type']} decides itself")
              for k in ("users.lockout.max_failures", "users.lockout.minutes")),
        ]
    traits = []
    for cls, settings in effective["auth"].items():
        if cls == "type" or not isinstance(settings, dict):
            continue
        for trait, value in settings.items():
            key = f"auth.{cls}.{trait}"
            if keys.is_secret(trait) and not with_secrets:
                out.secrets_left_out.append(key)
                value = _placeholder(key)
            hub_config.setdefault(cls, {})[trait] = value
            traits.append(key)
    out.rows.append(Row(schema.AUTH_TRAIT.key, MAPPED,
                        "hub.config.<Class>.<setting>: " + (", ".join(traits) or "none set")
                        + (f"; secrets as {PLACEHOLDER} (or --with-secrets)" if out.secrets_left_out else "")))


def _users(effective: Settings, out: Export, hub_config: dict, values: dict) -> None:
    users = effective["users"]
    authenticator = hub_config.setdefault("Authenticator", {})
    # As on this hub: users an admin added may log in without being listed too.
    authenticator["allow_existing_users"] = True
    if users["allowed"]:
        authenticator["allowed_users"] = sorted(users["allowed"])
    if users["banned"]:
        authenticator["blocked_users"] = sorted(users["banned"])
    if users["sudoers"]:
        authenticator["admin_users"] = sorted(users["sudoers"])
    if users["admin"]:
        # Hubstead's teacher role without the teacher's page, which only Hubstead has.
        scopes = [s for s in hub_settings.TEACHER_SCOPES if not s.endswith(f"={hub_settings.TEACHER_SERVICE}")]
        values["hub"]["loadRoles"] = {hub_settings.TEACHER_ROLE: {
            "description": "Teachers (Hubstead's users.admin): manage users, groups and servers",
            "scopes": scopes, "users": sorted(users["admin"])}}
    out.rows += [
        Row("users.admin", APPROXIMATE,
            f"hub.loadRoles.{hub_settings.TEACHER_ROLE} (JupyterHub's admin page, students' servers); the teacher's "
            "page (class import with initial passwords, resets, unlocks, removal with archives) stays behind"),
        Row("users.allowed", MAPPED, "hub.config.Authenticator.allowed_users"),
        Row("users.banned", MAPPED, "hub.config.Authenticator.blocked_users"),
        Row("users.sudoers", APPROXIMATE,
            "hub.config.Authenticator.admin_users (JupyterHub's admins); sudo inside their server needs an image "
            "and pod that grant it"),
        Row("users.extra_user_groups.<group>", UNMAPPED,
            "pods have none of this machine's Unix groups: mount what the group gave access to as a volume "
            "(singleuser.storage.extraVolumes)"
            + (f"; set here: {', '.join(sorted(users['extra_user_groups']))}" if users["extra_user_groups"] else "")),
        Row("users.removal.home", UNMAPPED,
            "a removed user's volume (PVC claim-<name>) stays: archive or delete it with kubectl"),
        Row("users.removal.account", UNMAPPED, "there are no Unix accounts to lock or delete"),
    ]


def _memory_guarantee(limit: str) -> str | None:
    """The chart reserves 1G a server by default; Kubernetes refuses a reservation above
    the limit, so a smaller limit reserves itself."""
    default = chart_defaults()["singleuser"]["memory"]["guarantee"]
    needed = schema.memory_bytes(limit)
    return limit if needed is not None and needed < (schema.memory_bytes(default) or 0) else None


def _limits(effective: Settings, out: Export, hub_config: dict, values: dict) -> None:
    limits = effective["limits"]
    singleuser = values["singleuser"]
    if limits["memory"]:
        singleuser["memory"] = {"limit": limits["memory"]}
        if guarantee := _memory_guarantee(limits["memory"]):
            singleuser["memory"]["guarantee"] = guarantee
    if limits["cpu"]:
        singleuser["cpu"] = {"limit": limits["cpu"]}
    if limits["concurrent_spawns"]:
        values["hub"]["concurrentSpawnLimit"] = limits["concurrent_spawns"]
    # Spawner.group_overrides applies in the order of its keys, the last one winning: sorted
    # from the least to the most generous, a member of several groups gets the most
    # generous, as here; one below the global limit is left out (it never applies here).
    overrides = {}
    floor_memory, floor_cpu = schema.memory_bytes(limits["memory"]) or 0, limits["cpu"] or 0
    memory = sorted((schema.memory_bytes(size) or 0, name, size) for name, g in limits["groups"].items()
                    if (size := g.get("memory")))
    for rank, (_, name, size) in enumerate(m for m in memory if m[0] > floor_memory):
        override: dict = {"mem_limit": size}
        if guarantee := _memory_guarantee(size):
            override["mem_guarantee"] = guarantee
        overrides[f"memory-{rank:03d}-{name}"] = {"groups": [name], "spawner_override": override}
    cpu = sorted((cpus, name) for name, g in limits["groups"].items() if (cpus := g.get("cpu")) and cpus > floor_cpu)
    for rank, (cpus, name) in enumerate(cpu):
        overrides[f"cpu-{rank:03d}-{name}"] = {"groups": [name], "spawner_override": {"cpu_limit": cpus}}
    if overrides:
        hub_config.setdefault("KubeSpawner", {})["group_overrides"] = overrides
    groups = ", ".join(sorted(limits["groups"])) or "none set"
    out.rows += [
        Row("limits.memory", MAPPED, "singleuser.memory.limit (and its guarantee, what Kubernetes reserves, "
                                     "no more than the limit)"),
        Row("limits.cpu", MAPPED, "singleuser.cpu.limit"),
        Row("limits.concurrent_spawns", APPROXIMATE,
            "hub.concurrentSpawnLimit: starts beyond it are refused (429), not queued"
            + ("" if limits["concurrent_spawns"] else "; not set here: the chart's default")),
        Row("limits.groups.<group>.memory", MAPPED,
            f"hub.config.KubeSpawner.group_overrides ({groups}); limits a teacher set on the teacher's page live "
            "in the hub's database, not in config.yaml: set them here too"),
        Row("limits.groups.<group>.cpu", MAPPED, f"hub.config.KubeSpawner.group_overrides ({groups})"),
    ]


def _recipe(effective: Settings, out: Export) -> None:
    env = effective["user_environment"]
    # What every server needs (as here), with the chart's JupyterHub instead of this hub's.
    base = [CHART_JUPYTERHUB, *converge.USER_ENV_PACKAGES]
    if env["manager"] == "conda":
        recipe = {"name": "course", "channels": ["conda-forge"],
                  "dependencies": ["python", *env["conda_packages"], "pip", {"pip": [*base, *env["pip_packages"]]}]}
        out.recipe["environment.yml"] = yaml.safe_dump(recipe, sort_keys=False)
        conda_where = f"{IMAGE_DIR}/environment.yml"
    else:
        out.recipe["requirements.txt"] = "\n".join([*base, *env["pip_packages"]]) + "\n"
        conda_where = "not used by a venv user environment, nor here"
    out.recipe["apt.txt"] = (
        "# Debian packages the image needs (one a line): students' servers here could run the\n"
        "# machine's own commands, a pod only what its image holds.\n"
        + "".join(f"{name}\n" for name in env["apt_packages"]))
    recipe_file = f"{IMAGE_DIR}/{next(iter(out.recipe))}"
    out.values["singleuser"]["image"] = {"name": PLACEHOLDER, "tag": PLACEHOLDER}
    out.values["singleuser"]["defaultUrl"] = hub_settings.DEFAULT_URLS[env["default_app"]]
    out.rows += [
        Row("user_environment.manager", APPROXIMATE,
            f"an image built with repo2docker from {recipe_file}; its name goes in singleuser.image"),
        Row("user_environment.default_app", MAPPED, "singleuser.defaultUrl"),
        Row("user_environment.pip_packages", MAPPED, recipe_file),
        Row("user_environment.conda_packages", MAPPED, conda_where),
        Row("user_environment.conda_installer.url", UNMAPPED, "repo2docker brings its own conda"),
        Row("user_environment.conda_installer.sha256", UNMAPPED, "repo2docker brings its own conda"),
        Row("user_environment.apt_packages", MAPPED, f"{IMAGE_DIR}/apt.txt"),
        Row("plugins", UNMAPPED, "a plugin's hooks run in this machine's installer and hub: put the packages it "
            "adds in the image recipe and its hub settings in hub.extraConfig"),
        Row("user_environment.r", UNMAPPED, "put R in the image: r-irkernel in environment.yml, or r-base-core "
            "and r-cran-irkernel in apt.txt"),
        Row("environments.<env>.python", UNMAPPED, "an image holds one environment: build one per environment "
            "and offer them with KubeSpawner's profile_list"),
        Row("environments.<env>.packages", UNMAPPED, "likewise"),
        Row("wheelhouse", UNMAPPED, "build the image where the package index answers (or point pip at a mirror "
            "in the build); the cluster pulls images, not wheels"),
    ]


def _https(effective: Settings, out: Export) -> None:
    https, http = effective["https"], effective["http"]
    le = https["letsencrypt"]
    mode = https["mode"]
    proxy = out.values["proxy"]
    if mode == "letsencrypt":
        proxy["https"] = {"enabled": True, "type": "letsencrypt", "hosts": list(le["domains"]),
                          "letsencrypt": {"contactEmail": le["email"], "acmeServer": letsencrypt.acme_server(le)}}
    elif mode == "manual":
        proxy["https"] = {"enabled": True, "type": "secret",
                          "secret": {"name": TLS_SECRET, "crt": "tls.crt", "key": "tls.key"}}
    else:
        proxy["https"] = {"enabled": False}
    if mode in ("letsencrypt", "manual") and not https["hsts"]:
        proxy["traefik"] = {"hsts": {"maxAge": 0}}
    unused = {"letsencrypt": mode != "letsencrypt", "manual": mode != "manual"}

    def row(key: str, status: str, where: str, part: str = "") -> Row:
        return Row(key, status, where + (f" (https.mode is {mode}: not used)" if unused.get(part) else ""))

    out.rows += [
        Row("http.address", UNMAPPED, "Kubernetes' proxy-public service decides where the hub is reached"),
        Row("http.port", MAPPED if http["port"] == paths.HTTP_PORT else APPROXIMATE,
            "proxy-public serves port 80" + ("" if http["port"] == paths.HTTP_PORT
                                             else f", not {http['port']}: put an ingress or proxy.service.nodePorts "
                                                  "in front")),
        Row("https.mode", UNMAPPED if mode == "selfsigned" else MAPPED,
            "proxy.https" + (": the chart makes no self-signed certificates; use letsencrypt or a secret"
                             if mode == "selfsigned" else "")),
        Row("https.address", UNMAPPED, "Kubernetes' proxy-public service decides where the hub is reached"),
        Row("https.port", MAPPED if https["port"] == paths.HTTPS_PORT else APPROXIMATE,
            "proxy-public serves port 443" + ("" if https["port"] == paths.HTTPS_PORT
                                              else f", not {https['port']}: put an ingress in front")),
        Row("https.hostnames", UNMAPPED, "names of the self-signed certificate, which the chart does not make"),
        Row("https.hsts", MAPPED if https["hsts"] else APPROXIMATE,
            "the chart's traefik sends Strict-Transport-Security" if https["hsts"] else "proxy.traefik.hsts.maxAge 0"),
        row("https.manual.cert", MAPPED, f"the Kubernetes TLS secret {TLS_SECRET} (proxy.https.secret)", "manual"),
        row("https.manual.key", MAPPED, f"the Kubernetes TLS secret {TLS_SECRET} (proxy.https.secret)", "manual"),
        row("https.letsencrypt.email", MAPPED, "proxy.https.letsencrypt.contactEmail", "letsencrypt"),
        row("https.letsencrypt.domains", MAPPED, "proxy.https.hosts", "letsencrypt"),
        row("https.letsencrypt.staging", MAPPED, "proxy.https.letsencrypt.acmeServer", "letsencrypt"),
        row("https.letsencrypt.server", MAPPED, "proxy.https.letsencrypt.acmeServer", "letsencrypt"),
        Row("https.letsencrypt.preflight", UNMAPPED,
            "the chart asks Let's Encrypt at once: point the names at proxy-public's address first"),
    ]


def _steps(effective: Settings, out: Export, values_name: str) -> None:
    https = effective["https"]
    steps = [
        f"Build the students' image from {IMAGE_DIR}/ with repo2docker (add Debian packages to "
        f"{IMAGE_DIR}/apt.txt), push it to a registry your cluster pulls from, and put its name and tag "
        f"in singleuser.image (now {PLACEHOLDER}).",
    ]
    if out.secrets_left_out:
        steps.append(f"Fill in the secrets left out as {PLACEHOLDER}: {', '.join(out.secrets_left_out)} "
                     "(or export again with --with-secrets, and keep that file out of version control).")
    if https["mode"] == "manual":
        steps.append(f"Put the certificate in a secret: kubectl create secret tls {TLS_SECRET} "
                     f"--cert={https['manual']['cert']} --key={https['manual']['key']} --namespace <namespace>")
    if https["mode"] == "letsencrypt":
        steps.append("After the install, point " + ", ".join(https["letsencrypt"]["domains"])
                     + " at the external address of the proxy-public service (kubectl get service proxy-public).")
    steps += [
        "Install the chart: helm upgrade --cleanup-on-fail --install hub jupyterhub/jupyterhub "
        f"--namespace <namespace> --create-namespace --values {values_name}",
        "Users: `sudo hubstead users list` names them. Passwords do not move (no other hub reads Hubstead's "
        "hashes): " + ("each student signs up again at /hub/signup and an admin approves them at /hub/authorize; "
                       "list the class in hub.config.Authenticator.allowed_users so only they can sign up."
                       if effective["auth"]["type"] == "hubstead"
                       else f"they log in with {effective['auth']['type']} as before.")
        + " Make the hub groups again on the admin page (the group limits follow their names).",
        "Homes: `sudo hubstead backup FILE --homes` first. Each student's home /home/jupyter-<name> becomes "
        "their volume (PVC claim-<name>, mounted at /home/jovyan): start their server once, then "
        "kubectl cp /home/jupyter-<name>/. <namespace>/jupyter-<name>:/home/jovyan/ "
        "(the files then belong to the pod's user, uid 1000).",
        f"The course folder {paths.SHARED_DIR} has no counterpart: copy it to a volume many pods can read "
        "(NFS, ReadOnlyMany) and mount it at /home/jovyan/shared with singleuser.storage.extraVolumes and "
        "extraVolumeMounts.",
        "When the new hub serves the class: `sudo hubstead uninstall` here (homes are kept without --purge).",
    ]
    out.steps = steps


def export(effective: Settings, snippets: dict[str, str], with_secrets: bool = False,
           values_name: str = "values.yaml") -> Export:
    """The chart's values for this hub; ``snippets`` are jupyterhub_config.d's files by name."""
    # The hub's own mapping, for what carries over as it is (the machine's secrets are
    # not among those parts).
    here = hub_settings.jupyterhub_settings(effective, {"cli_api_token": "", "traefik_api_password": ""})
    hub_config: dict = {"JupyterHub": {}}
    values: dict = {"hub": {"config": hub_config}, "singleuser": {}, "proxy": {}}
    out = Export(values=values, recipe={})
    if effective["base_url"] != "/":
        values["hub"]["baseUrl"] = effective["base_url"]
    out.rows.append(Row("base_url", MAPPED, "hub.baseUrl"))
    _authentication(effective, with_secrets, out, hub_config)
    _users(effective, out, hub_config, values)
    _limits(effective, out, hub_config, values)
    _recipe(effective, out)
    cull = effective["services"]["cull"]
    values["cull"] = {"enabled": cull["enabled"], "timeout": cull["timeout"], "every": cull["every"],
                      "concurrency": cull["concurrency"], "users": cull["users"], "maxAge": cull["max_age"]}
    out.rows += [Row(f"services.cull.{k}", MAPPED, f"cull.{v}") for k, v in (
        ("enabled", "enabled"), ("timeout", "timeout"), ("every", "every"), ("concurrency", "concurrency"),
        ("users", "users"), ("max_age", "maxAge"))]
    if "tornado_settings" in here["JupyterHub"]:  # hub.csp_frame_ancestors: the hub's pages and each server's
        hub_config["JupyterHub"]["tornado_settings"] = here["JupyterHub"]["tornado_settings"]
        hub_config.setdefault("KubeSpawner", {})["args"] = here["Spawner"]["args"]
    out.rows.append(Row("hub.csp_frame_ancestors", MAPPED,
                        "hub.config.JupyterHub.tornado_settings and hub.config.KubeSpawner.args"))
    out.rows.append(Row("hub.course_link_networks", UNMAPPED,
                        "the teacher's page, which makes and checks course links, is Hubstead's only"))
    _https(effective, out)
    extra = {}
    for name in sorted(snippets):
        text = snippets[name] if with_secrets else _hide_secrets_in_snippet(name, snippets[name], out.secrets_left_out)
        extra[f"hubstead-{Path(name).stem}"] = text
        out.rows.append(Row(f"{paths.JUPYTERHUB_CONFIG_D.name}/{name}", APPROXIMATE,
                            f"hub.extraConfig.hubstead-{Path(name).stem}: review it, Hubstead's classes and this "
                            "machine's paths are not there"))
    if extra:
        values["hub"]["extraConfig"] = extra
    _steps(effective, out, values_name)
    order = {s.key: i for i, s in enumerate(schema.SCHEMA)}  # the schema's order, the snippets last
    out.rows.sort(key=lambda row: order.get(row.key, len(order)))
    validate(values)
    return out


def read_snippets() -> dict[str, str]:
    """The admin's jupyterhub_config.d/*.py, by name (none before the first install)."""
    return {p.name: p.read_text() for p in sorted(paths.JUPYTERHUB_CONFIG_D.glob("*.py"))}


class _Dumper(yaml.SafeDumper):
    pass


# Snippets stay readable code in the values file.
_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def values_text(result: Export, source: Path) -> str:
    return (f"# Zero to JupyterHub values for the jupyterhub chart, written by `hubstead export z2jh` from {source}.\n"
            f"# Fill in each {PLACEHOLDER}; the steps it printed say what else to do.\n"
            + yaml.dump(result.values, Dumper=_Dumper, sort_keys=False, allow_unicode=True))


def write(result: Export, values_path: Path, source: Path, force: bool = False,
          with_secrets: bool = False) -> list[Path]:
    """Write the values and, in IMAGE_DIR beside them, the recipe: each file atomically,
    and none when one is there already (unless ``force``). The paths written."""
    values_path = Path(values_path)
    files = {values_path: values_text(result, source)}
    files |= {values_path.parent / IMAGE_DIR / name: text for name, text in result.recipe.items()}
    if not values_path.parent.is_dir():
        raise ExportError(f"{values_path.parent}: no such directory; give -o a path in an existing directory")
    there = [str(p) for p in files if p.exists()]
    if there and not force:
        raise ExportError(f"{', '.join(there)} already exists; use --force to replace it, or another -o")
    (values_path.parent / IMAGE_DIR).mkdir(exist_ok=True)
    for path, text in files.items():
        # Secrets in clear: the owner alone reads it.
        write_atomic(path, text, mode=0o600 if with_secrets and path == values_path else 0o644)
    return list(files)
