"""``letsencrypt``: certbot with the http-01 challenge, which traefik routes to
127.0.0.1 (paths.ACME_CHALLENGE_PORT), after a preflight that finds what would make the
ACME server refuse, before asking it."""

import http.server
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509

from hubstead.config.model import LetsEncrypt
from hubstead.core import paths
from hubstead.machine.health import public_hosts
from hubstead.machine.tls.certificates import TLSError, cert_names
from hubstead.machine.tls.rules import serve

CERT_NAME = "hubstead"  # certbot's lineage name
ROUTE_LOAD_SECONDS = 5  # for traefik to load a rules file just written


def _certbot_dirs() -> list[str]:
    return ["--config-dir", str(paths.LETSENCRYPT_CONFIG_DIR), "--work-dir", str(paths.LETSENCRYPT_WORK_DIR),
            "--logs-dir", str(paths.LETSENCRYPT_LOGS_DIR)]


def lineage() -> Path:
    return paths.LETSENCRYPT_CONFIG_DIR / "live" / CERT_NAME


def check_letsencrypt_settings(le: LetsEncrypt) -> str:
    """The contact address, once the settings certbot needs are there."""
    missing = [k for k in ("email", "domains") if not le[k]]
    if missing:
        raise TLSError(f"https.mode letsencrypt needs https.letsencrypt.{missing[0]}: e.g. "
                       + ("sudo hubstead config set https.letsencrypt.email you@example.edu"
                          if missing[0] == "email" else
                          "sudo hubstead config set https.letsencrypt.domains '[hub.example.edu]'"))
    return str(le["email"])


class _ProbeResponder(http.server.BaseHTTPRequestHandler):
    """Answers the preflight's probe where certbot will answer the real challenge."""

    token = ""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = self.token.encode() if self.path.endswith("/" + self.token) else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def preflight(domains: list[str], http_port: int) -> None:
    """Before asking the ACME server: each domain resolves, and http://domain/ reaches
    this machine's challenge route. All problems are reported at once, each with a fix."""
    token = secrets.token_urlsafe(16)
    handler = type("Probe", (_ProbeResponder,), {"token": token})
    try:
        server = http.server.HTTPServer(("127.0.0.1", paths.ACME_CHALLENGE_PORT), handler)
    except OSError as e:
        raise TLSError(
            f"port {paths.ACME_CHALLENGE_PORT} on 127.0.0.1 is busy ({e}); is certbot already running?") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight, as the ACME server comes
    problems, here = [], ", ".join(public_hosts())
    try:
        for domain in domains:
            try:
                addresses = sorted({str(a[4][0])
                                    for a in socket.getaddrinfo(domain, http_port, type=socket.SOCK_STREAM)})
            except socket.gaierror as e:
                problems.append(f"{domain} does not resolve ({e.strerror}): add a DNS A record for it "
                                f"pointing to this machine's public address ({here}), wait for it to "
                                "propagate, then run `sudo hubstead config apply` again")
                continue
            port = "" if http_port == paths.HTTP_PORT else f":{http_port}"
            url = f"http://{domain}{port}/.well-known/acme-challenge/{token}"
            try:
                answer = _probe(opener, url)
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                problems.append(f"{domain} resolves to {', '.join(addresses)} but http://{domain}{port}/ "
                                f"is not reachable ({reason}): open port {http_port} to the internet "
                                "(cloud firewall / security group), and check the name points to this "
                                f"machine ({here}); if it does and this machine just can't reach its "
                                "own public address, set https.letsencrypt.preflight false")
                continue
            if answer != token:
                problems.append(f"{domain} resolves to {', '.join(addresses)}, which answered ({answer[:40]!r}) "
                                f"but is not this Hubstead: point the name at this machine ({here})")
    finally:
        server.shutdown()
        server.server_close()
    if problems:
        raise TLSError("Let's Encrypt preflight failed, nothing was asked of the ACME server:\n  "
                       + "\n  ".join(problems))


def _probe(opener, url: str) -> str:
    """What ``url`` answers. traefik loads the challenge route written just before a
    moment later: until then it answers 404, which is tried again for a few seconds."""
    deadline = time.monotonic() + ROUTE_LOAD_SECONDS
    while True:
        try:
            with opener.open(url, timeout=10) as resp:
                return resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            if e.code != 404 or time.monotonic() > deadline:
                return f"HTTP {e.code}"
        time.sleep(0.2)


def _lineage_domains() -> list[str]:
    cert = lineage() / "cert.pem"
    if not cert.exists():
        return []
    return cert_names(x509.load_pem_x509_certificate(cert.read_bytes()))


def _renewal_server() -> str | None:
    conf = paths.LETSENCRYPT_CONFIG_DIR / "renewal" / f"{CERT_NAME}.conf"
    if not conf.exists():
        return None
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "server":
            return value.strip()
    return None


def acme_server(le: LetsEncrypt) -> str:
    if le["server"]:
        return le["server"]
    staging = "acme-staging-v02" if le["staging"] else "acme-v02"
    return f"https://{staging}.api.letsencrypt.org/directory"


def needs_certificate(le: LetsEncrypt) -> bool:
    """No certificate yet, or one for other domains or from another ACME server."""
    return sorted(_lineage_domains()) != sorted(le["domains"]) or _renewal_server() != acme_server(le)


def obtain(le: LetsEncrypt, email: str) -> None:
    """certbot certonly, answering http-01 on the loopback ACME port behind traefik; its deploy
    hook (`hubstead cert deploy`) writes tls.toml."""
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "certbot"), "certonly", "--standalone", "--non-interactive", "--agree-tos",
           "--email", email, "--no-eff-email", "--cert-name", CERT_NAME,
           "--http-01-address", "127.0.0.1", "--http-01-port", str(paths.ACME_CHALLENGE_PORT),
           "--server", acme_server(le), "--deploy-hook", f"{bin_dir / 'hubstead'} cert deploy",
           *_certbot_dirs()]
    for domain in le["domains"]:
        cmd += ["-d", domain]
    paths.LETSENCRYPT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = [line.strip() for line in (result.stderr + result.stdout).splitlines()
                  if line.strip().startswith(("Detail:", "Type:", "Domain:", "An unexpected error", "Error"))]
        raise TLSError("certbot could not get a certificate from "
                       f"{acme_server(le)}:\n  " + "\n  ".join(detail or result.stderr.strip().splitlines()[-5:])
                       + f"\n  full log: {paths.LETSENCRYPT_LOGS_DIR / 'letsencrypt.log'}")


def renew(force: bool = False) -> str:
    cmd = [str(Path(sys.executable).parent / "certbot"), "renew", "--non-interactive",
           "--no-random-sleep-on-renew", *_certbot_dirs()]
    if force:
        cmd.append("--force-renewal")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise TLSError(f"certbot renew failed:\n{result.stderr.strip()}")
    return result.stdout


def deploy(lineage_dir: Path) -> None:
    """certbot's deploy hook: serve the (new) certificate from ``lineage_dir``."""
    serve(lineage_dir / "fullchain.pem", lineage_dir / "privkey.pem")




def renewed_lineage_from_env() -> Path:
    """certbot passes the lineage of a deploy hook in $RENEWED_LINEAGE."""
    value = os.environ.get("RENEWED_LINEAGE")
    return Path(value) if value else lineage()
