"""What the machine was last set up with: the one writer and reader of the applied
config (what the roles last converged, which the hub follows for the proxy's sections)
and of the digest of the settings the running hub started with."""

import hashlib
import json
from collections.abc import Mapping
from importlib import metadata

from hubstead import __version__
from hubstead.core import paths
from hubstead.core.files import write_atomic


def hub_software() -> dict:
    """What the hub runs: the version of every package in its environment, and a digest
    of Hubstead's own files (a rebuilt Hubstead of the same version differs in them)."""
    record = metadata.distribution("hubstead").read_text("RECORD") or ""
    # The package's files only: the metadata records where it was installed from.
    own_files = "".join(line for line in record.splitlines(keepends=True) if line.startswith("hubstead/"))
    return {"packages": {d.metadata["Name"]: d.version for d in metadata.distributions()},
            "hubstead": __version__, "hubstead_files": hashlib.sha256(own_files.encode()).hexdigest()}


def hub_config_digest(effective: Mapping[str, object]) -> str:
    """Changes whenever the hub must restart to run with new settings or software."""
    blob = json.dumps({"config": effective, "software": hub_software()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_applied() -> dict | None:
    """The effective config the machine was last converged with (None: never)."""
    try:
        return json.loads(paths.APPLIED_CONFIG.read_text())
    except FileNotFoundError:
        return None


def save_applied(effective: Mapping[str, object]) -> None:
    write_atomic(paths.APPLIED_CONFIG, json.dumps(effective, indent=1, sort_keys=True) + "\n")


def write_hub_digest(effective: Mapping[str, object]) -> None:
    """Record that the hub runs with ``effective`` (after a converge or a restart): the hub
    role restarts the hub only when the digest it is given differs from this one."""
    write_atomic(paths.HUB_CONFIG_DIGEST, hub_config_digest(effective) + "\n")
