"""HTTPS: certificates for traefik in each mode, and the checks that explain failures.

Modes (``https.mode``): ``off``; ``selfsigned`` (a key and certificate made here, with
the machine's addresses and ``https.hostnames`` as names); ``manual`` (the admin's
certificate chain and key, checked before use); ``letsencrypt`` (certbot, whose http-01
challenge traefik routes to 127.0.0.1 (paths.ACME_CHALLENGE_PORT), after a preflight that finds what would make
the ACME server refuse, before asking it).

traefik reads certificates from ``tls.toml`` in its watched rules directory; every
write here is atomic, so a new certificate is served without a restart.
"""

import datetime
import hashlib
import http.server
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import paths
from .errors import HubsteadError
from .files import write_atomic
from .health import public_hosts
from .render import render

SELFSIGNED_CERT = paths.TLS_DIR / "selfsigned.crt"
SELFSIGNED_KEY = paths.TLS_DIR / "selfsigned.key"
SELFSIGNED_DAYS = 825
RENEW_SELFSIGNED_DAYS = 30
CERT_NAME = "hubstead"  # certbot's lineage name


class TLSError(HubsteadError, RuntimeError):
    """HTTPS can't be set up as configured; the message says what to fix."""


# ------------------------------------------------------------------ the files

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
    _forget_served(keep=(served_cert, served_key))


def _forget_served(keep: tuple[Path, ...] = ()) -> None:
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


# ----------------------------------------------------------------- selfsigned

def selfsigned_names(effective: dict) -> list[str]:
    """The configured names, then this machine's addresses and loopback."""
    names = [*effective["https"]["hostnames"], *public_hosts(), "localhost", "127.0.0.1"]
    return list(dict.fromkeys(names))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _cert_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)] + \
        [str(n) for n in san.get_values_for_type(x509.IPAddress)]


def _days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400


def ensure_selfsigned(names: list[str]) -> bool:
    """Make the key and certificate unless the current ones have exactly ``names`` and
    are not about to expire. Returns True when new ones were made."""
    if SELFSIGNED_CERT.exists() and SELFSIGNED_KEY.exists():
        current = x509.load_pem_x509_certificate(SELFSIGNED_CERT.read_bytes())
        if sorted(_cert_names(current)) == sorted(str(_san(n).value) for n in names) \
                and _days_left(current) > RENEW_SELFSIGNED_DAYS:
            return False
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELFSIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths.TLS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_atomic(SELFSIGNED_KEY, key_pem.decode(), mode=0o600)
    write_atomic(SELFSIGNED_CERT, cert.public_bytes(serialization.Encoding.PEM).decode(), mode=0o644)
    return True


# --------------------------------------------------------------------- manual

def check_manual(cert_path: str | None, key_path: str | None) -> None:
    """Refuse a certificate traefik could not serve: missing, not PEM,
    not matching its key, expired."""
    if not cert_path or not key_path:
        raise TLSError("https.mode manual needs https.manual.cert and https.manual.key: "
                       "sudo hubstead config set https.manual.cert /etc/ssl/hub/fullchain.pem (and .key)")
    for key, path in (("https.manual.cert", cert_path), ("https.manual.key", key_path)):
        if not Path(path).is_file():
            raise TLSError(f"{key}: {path} does not exist")
    try:
        chain = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
    except ValueError as e:
        raise TLSError(f"https.manual.cert: {cert_path} is not a PEM certificate ({e})") from None
    try:
        private_key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise TLSError(f"https.manual.key: {key_path} is not an unencrypted PEM private key ({e})") from None
    leaf = chain[0]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.PEM, spki) != \
            private_key.public_key().public_bytes(serialization.Encoding.PEM, spki):
        raise TLSError(f"https.manual.key: {key_path} does not belong to the certificate in {cert_path} "
                       f"({leaf.subject.rfc4514_string()}); use the key the certificate was issued for")
    if _days_left(leaf) <= 0:
        raise TLSError(f"https.manual.cert: {cert_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")


# ---------------------------------------------------------------- letsencrypt

def _certbot_dirs() -> list[str]:
    return ["--config-dir", str(paths.LETSENCRYPT_CONFIG_DIR), "--work-dir", str(paths.LETSENCRYPT_WORK_DIR),
            "--logs-dir", str(paths.LETSENCRYPT_LOGS_DIR)]


def lineage() -> Path:
    return paths.LETSENCRYPT_CONFIG_DIR / "live" / CERT_NAME


def check_letsencrypt_settings(le: dict) -> None:
    missing = [k for k in ("email", "domains") if not le[k]]
    if missing:
        raise TLSError(f"https.mode letsencrypt needs https.letsencrypt.{missing[0]}: e.g. "
                       + ("sudo hubstead config set https.letsencrypt.email you@example.edu"
                          if missing[0] == "email" else
                          "sudo hubstead config set https.letsencrypt.domains '[hub.example.edu]'"))


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
                with opener.open(url, timeout=10) as resp:
                    answer = resp.read().decode(errors="replace")
            except urllib.error.HTTPError as e:
                answer = f"HTTP {e.code}"
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


def _lineage_domains() -> list[str]:
    cert = lineage() / "cert.pem"
    if not cert.exists():
        return []
    return _cert_names(x509.load_pem_x509_certificate(cert.read_bytes()))


def _renewal_server() -> str | None:
    conf = paths.LETSENCRYPT_CONFIG_DIR / "renewal" / f"{CERT_NAME}.conf"
    if not conf.exists():
        return None
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "server":
            return value.strip()
    return None


def acme_server(le: dict) -> str:
    if le["server"]:
        return le["server"]
    staging = "acme-staging-v02" if le["staging"] else "acme-v02"
    return f"https://{staging}.api.letsencrypt.org/directory"


def needs_certificate(le: dict) -> bool:
    """No certificate yet, or one for other domains or from another ACME server."""
    return sorted(_lineage_domains()) != sorted(le["domains"]) or _renewal_server() != acme_server(le)


def obtain(le: dict) -> None:
    """certbot certonly, answering http-01 on the loopback ACME port behind traefik; its deploy
    hook (`hubstead cert deploy`) writes tls.toml."""
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "certbot"), "certonly", "--standalone", "--non-interactive", "--agree-tos",
           "--email", le["email"], "--no-eff-email", "--cert-name", CERT_NAME,
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


# ------------------------------------------------------------------ the steps

def prepare(effective: dict) -> None:
    """Before the roles run: check everything, then put the certificate in place, so
    traefik's HTTPS entrypoint never comes up without one. Raises TLSError (and changes
    nothing) when HTTPS can't be set up as configured."""
    https = effective["https"]
    mode = https["mode"]
    if mode == "off":
        write_http_rules(acme=False, redirect=False, https_port=https["port"])
    elif mode == "selfsigned":
        ensure_selfsigned(selfsigned_names(effective))
        serve(SELFSIGNED_CERT, SELFSIGNED_KEY)
    elif mode == "manual":
        check_manual(https["manual"]["cert"], https["manual"]["key"])
        serve(Path(https["manual"]["cert"]), Path(https["manual"]["key"]))
    elif mode == "letsencrypt":
        le = https["letsencrypt"]
        check_letsencrypt_settings(le)
        if needs_certificate(le):
            redirect_on = paths.HTTP_RULES_FILE.exists() and "to-https" in paths.HTTP_RULES_FILE.read_text()
            write_http_rules(acme=True, redirect=redirect_on, https_port=https["port"])
            if le["preflight"]:
                preflight(le["domains"], effective["http"]["port"])
            obtain(le)
        else:
            deploy(lineage())


def finish(effective: dict) -> None:
    """After the roles ran: redirect port 80 to HTTPS (keeping the ACME route), or clean up."""
    https = effective["https"]
    mode = https["mode"]
    write_http_rules(acme=mode == "letsencrypt", redirect=mode != "off", https_port=https["port"])
    if mode == "off":
        paths.TLS_RULES_FILE.unlink(missing_ok=True)
        _forget_served()


# --------------------------------------------------------------------- status

def served_certificate(host: str, port: int, server_name: str | None) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we report on the certificate, whoever signed it
    with socket.create_connection((host, port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname=server_name) as tls_sock:
        der = tls_sock.getpeercert(binary_form=True)
    if der is None:
        raise TLSError(f"{host}:{port} served no certificate")
    return x509.load_der_x509_certificate(der)


def _timer_next(unit: str) -> str:
    if not shutil.which("systemctl"):
        return "unknown"
    out = subprocess.run(["systemctl", "list-timers", "--all", "--no-legend", unit],
                         capture_output=True, text=True).stdout.split()
    return " ".join(out[:4]) if out and out[0] != "-" else "not scheduled"


def status(effective: dict) -> dict:
    https = effective["https"]
    info = {"mode": https["mode"]}
    if https["mode"] == "off":
        return info
    names = https["letsencrypt"]["domains"] or https["hostnames"] or [None]
    try:
        cert = served_certificate(https["address"] or "127.0.0.1", https["port"], names[0])
    except OSError as e:
        info["served"] = f"nothing answers on port {https['port']} ({e})"
        return info
    info.update({
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": ", ".join(_cert_names(cert)),
        "expires": f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({_days_left(cert):.0f} days)",
    })
    if https["mode"] == "letsencrypt":
        renew_from = cert.not_valid_after_utc - datetime.timedelta(days=30)
        info["renewal"] = (f"certbot renews from {renew_from:%Y-%m-%d} on; "
                           f"next check: {_timer_next(paths.CERTBOT_TIMER)}")
    elif https["mode"] == "selfsigned":
        info["renewal"] = f"regenerated by `hubstead config apply` within {RENEW_SELFSIGNED_DAYS} days of expiry"
    return info


def renewed_lineage_from_env() -> Path:
    """certbot passes the lineage of a deploy hook in $RENEWED_LINEAGE."""
    value = os.environ.get("RENEWED_LINEAGE")
    return Path(value) if value else lineage()
