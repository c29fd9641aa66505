"""The files traefik reads: tls.toml with the served certificate (copies its group may
read) and http.toml with the ACME challenge route and the redirect to HTTPS."""

import hashlib
from pathlib import Path

from hubstead.core import paths
from hubstead.core.files import write_atomic
from hubstead.machine.render import render


def serve(cert_file: Path, key_file: Path) -> None:
    """Have traefik serve this certificate and key. traefik is not root: it gets copies
    its group may read, named after the certificate, so tls.toml changes with every new
    certificate and traefik loads it (a file it knows by name is not read again)."""
    cert_pem, key_pem = Path(cert_file).read_text(), Path(key_file).read_text()
    name = hashlib.sha256(cert_pem.encode()).hexdigest()[:16]
    served_cert, served_key = paths.SERVED_TLS_DIR / f"{name}.crt", paths.SERVED_TLS_DIR / f"{name}.key"
    write_atomic(served_cert, cert_pem, mode=paths.PROXY_FILE_MODE)
    write_atomic(served_key, key_pem, mode=paths.PROXY_FILE_MODE)
    write_atomic(paths.TLS_RULES_FILE, render("tls.toml.j2", cert_file=served_cert, key_file=served_key),
                 mode=paths.PROXY_FILE_MODE)
    forget_served(keep=(served_cert, served_key))


def forget_served(keep: tuple[Path, ...] = ()) -> None:
    for old in paths.SERVED_TLS_DIR.iterdir():
        if old not in keep:
            old.unlink()


def write_http_rules(acme: bool, redirect: bool, https_port: int) -> None:
    if not acme and not redirect:
        paths.HTTP_RULES_FILE.unlink(missing_ok=True)
        return
    write_atomic(paths.HTTP_RULES_FILE, render(
        "http.toml.j2", acme=acme, redirect=redirect, https_port=https_port,
        https_scheme_port=paths.HTTPS_PORT, acme_port=paths.ACME_CHALLENGE_PORT), mode=paths.PROXY_FILE_MODE)
