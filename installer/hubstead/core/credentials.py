"""Machine secrets Hubstead generates once and keeps in the root-only state dir.

They are created by Python before any converge, so they never pass through ansible
(its artifacts and logs never see them) nor any command line.
"""

import secrets as _random
from pathlib import Path

from hubstead.core import paths
from hubstead.core.files import write_atomic

FILES = {
    "traefik_api_password": paths.TRAEFIK_API_SECRET,
    "cli_api_token": paths.CLI_API_TOKEN,
}


def ensure(files: dict = FILES) -> None:
    for path in files.values():
        path = Path(path)
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, _random.token_hex(32))


def load(files: dict = FILES) -> dict:
    return {name: Path(path).read_text().strip() for name, path in files.items()}
