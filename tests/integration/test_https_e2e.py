"""HTTPS on a booted target, every mode through `hubstead config set` + `apply`; Let's
Encrypt against Debian's Pebble ACME server on loopback (never the real one). Each test
can run alone: the mode it starts from is set up by a fixture."""

import re
import socket
import ssl
import time

import pytest
import requests
from cryptography import x509
from hubclient import HubSession
from pebble import Pebble

from hubstead.core import paths

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

DOMAIN = "hub.example.test"

MAKE_CERT = """
import datetime, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
def key_pem(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "manual.example.test")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("manual.example.test")]), critical=False)
        .sign(key, hashes.SHA256()))
(out / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
(out / "privkey.pem").write_bytes(key_pem(key))
(out / "other.key").write_bytes(key_pem(other))
"""


def config(hub, *args, check=True):
    return hub.tb.run("hubstead", "config", *args, check=check, timeout=600)


def served(port=443, server_name=None, cafile=None) -> x509.Certificate:
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname=server_name) as tls_sock:
        return x509.load_der_x509_certificate(tls_sock.getpeercert(binary_form=True))


def names(cert):
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | \
        {str(n) for n in san.get_values_for_type(x509.IPAddress)}


def traefik_pid(host):
    return host.service(paths.PROXY_UNIT).systemd_properties["MainPID"]


@pytest.fixture(scope="module")
def running_server(hub, host):
    """A student's server started over plain HTTP: its API token and its process."""
    hub.tb.run("hubstead", "users", "add", "student1", "--password-stdin", input="student-pass-1\n")
    student = HubSession()
    assert student.login("student1", "student-pass-1").status_code == 302
    student.start_server("student1")
    return student.token("student1"), host.service("jupyter-student1").systemd_properties["MainPID"]


@pytest.fixture(scope="module")
def selfsigned(hub, running_server):
    """Self-signed HTTPS applied while a server runs: apply's output."""
    config(hub, "set", "https.mode", "selfsigned")
    config(hub, "set", "https.hostnames", f"[{DOMAIN}]")
    return config(hub, "apply").stdout


@pytest.fixture(scope="module")
def manual_cert(hub):
    """A certificate and its key in /etc/ssl/hub, and a key of another certificate."""
    hub.tb.run(str(paths.HUB_ENV / "bin" / "python"), "-c", MAKE_CERT, "/etc/ssl/hub")


def test_selfsigned_serves_a_certificate_with_the_right_names(hub, host, selfsigned):
    assert "by roles proxy, hub" in selfsigned
    cert = served()
    assert {DOMAIN, "127.0.0.1", "localhost"} <= names(cert)
    r = requests.get("https://127.0.0.1/hub/login", verify=False, timeout=30)
    assert r.status_code == 200 and "Strict-Transport-Security" not in r.headers  # not for self-signed
    assert host.file(str(paths.TLS_DIR / "selfsigned.key")).mode == 0o600
    status = hub.tb.run("hubstead", "cert", "status").stdout
    assert re.search(r"mode:\s+selfsigned", status) and DOMAIN in status


def test_the_running_server_is_reachable_over_https(host, running_server, selfsigned):
    token, pid = running_server
    r = requests.get("https://127.0.0.1/user/student1/api/status", verify=False, timeout=30,
                     headers={"Authorization": f"token {token}"})
    assert r.status_code == 200
    assert host.service("jupyter-student1").systemd_properties["MainPID"] == pid


def test_http_redirects_to_https(selfsigned):
    r = requests.get("http://127.0.0.1/hub/login?next=x", allow_redirects=False, timeout=30)
    assert r.status_code in (301, 308)
    assert r.headers["Location"] == "https://127.0.0.1/hub/login?next=x"


def test_tls_12_is_the_minimum(host, selfsigned):
    tls12 = ssl._create_unverified_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", 443), timeout=10) as sock, tls12.wrap_socket(sock) as s:
        assert s.version() == "TLSv1.2"
    assert 'minVersion = "VersionTLS12"' in host.file(str(paths.TLS_RULES_FILE)).content_string


def test_manual_with_a_key_that_does_not_match_is_refused_and_nothing_changes(hub, host, selfsigned, manual_cert):
    before = host.file(str(paths.TLS_RULES_FILE)).sha256sum
    served_before = served().serial_number
    config(hub, "set", "https.mode", "manual")
    config(hub, "set", "https.manual.cert", "/etc/ssl/hub/fullchain.pem")
    config(hub, "set", "https.manual.key", "/etc/ssl/hub/other.key")
    r = config(hub, "apply", check=False)
    assert r.returncode == 1
    assert "https.manual.key: /etc/ssl/hub/other.key does not belong to the certificate" in r.stderr
    assert host.file(str(paths.TLS_RULES_FILE)).sha256sum == before
    assert served().serial_number == served_before


def test_manual_with_the_right_key_is_served_with_hsts(hub, manual_cert):
    config(hub, "set", "https.mode", "manual")
    config(hub, "set", "https.manual.cert", "/etc/ssl/hub/fullchain.pem")
    config(hub, "set", "https.manual.key", "/etc/ssl/hub/privkey.pem")
    config(hub, "apply")
    assert "manual.example.test" in names(served())
    r = requests.get("https://127.0.0.1/hub/login", verify=False, timeout=30)
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.fixture(scope="module")
def pebble(hub, tmp_path_factory):
    """Pebble on the host's loopback: its validation connects to port 80, which is the
    target's traefik (the target shares the host network)."""
    server = Pebble(tmp_path_factory.mktemp("pebble"), http_port=80)
    server.start()
    try:
        hub.tb.run("sh", "-c", f"echo '127.0.0.1 {DOMAIN}' >> /etc/hosts")
        hub.tb.run("sh", "-c", "cat > /usr/local/share/ca-certificates/pebble-test-ca.crt && update-ca-certificates",
                   input=server.ca_cert_pem)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def letsencrypt(hub, pebble, tmp_path_factory):
    """Let's Encrypt mode applied against Pebble: the file with Pebble's roots, to verify with."""
    for key, value in (("https.letsencrypt.email", "admin@example.test"),
                       ("https.letsencrypt.domains", f"[{DOMAIN}]"),
                       ("https.letsencrypt.server", pebble.directory_url),
                       ("https.mode", "letsencrypt")):
        config(hub, "set", key, value)
    config(hub, "apply")
    roots = tmp_path_factory.mktemp("pebble-roots") / "pebble-roots.pem"
    roots.write_text(pebble.roots_pem())
    return str(roots)


def test_letsencrypt_issues_through_the_proxy_with_the_real_challenge(hub, host, letsencrypt):
    cert = served(server_name=DOMAIN, cafile=letsencrypt)  # the chain verifies to Pebble's root
    assert DOMAIN in names(cert)
    assert "Pebble" in cert.issuer.rfc4514_string()
    assert host.service(paths.CERTBOT_TIMER).systemd_properties["UnitFileState"] == "enabled"
    status = hub.tb.run("hubstead", "cert", "status").stdout
    assert "Pebble" in status and "certbot renews from" in status


def test_port_80_redirects_except_the_acme_challenge(letsencrypt):
    r = requests.get("http://127.0.0.1/hub/", allow_redirects=False, timeout=30)
    assert r.status_code in (301, 308) and r.headers["Location"].startswith("https://")
    r = requests.get("http://127.0.0.1/.well-known/acme-challenge/x", allow_redirects=False, timeout=30)
    assert r.status_code not in (301, 308)


def test_forced_renewal_is_served_without_a_restart(hub, host, letsencrypt):
    serial = served(server_name=DOMAIN, cafile=letsencrypt).serial_number
    pid = traefik_pid(host)
    hub.tb.run("hubstead", "cert", "renew", "--force", timeout=300)
    deadline = time.monotonic() + 20
    while served(server_name=DOMAIN, cafile=letsencrypt).serial_number == serial:
        assert time.monotonic() < deadline, "the renewed certificate was not served"
        time.sleep(0.5)
    assert traefik_pid(host) == pid


def test_a_domain_that_does_not_resolve_fails_in_preflight_and_the_hub_keeps_serving(hub, letsencrypt):
    serial = served(server_name=DOMAIN, cafile=letsencrypt).serial_number
    config(hub, "set", "https.letsencrypt.domains", "[nowhere.invalid]")
    r = config(hub, "apply", check=False)
    assert r.returncode == 1
    assert "nothing was asked of the ACME server" in r.stderr
    assert "nowhere.invalid does not resolve" in r.stderr and "add a DNS A record" in r.stderr
    assert requests.get("https://127.0.0.1/hub/login", verify=False, timeout=30).status_code == 200
    assert served(server_name=DOMAIN, cafile=letsencrypt).serial_number == serial
    config(hub, "set", "https.letsencrypt.domains", f"[{DOMAIN}]")


def test_back_to_plain_http(hub, host, letsencrypt):
    config(hub, "set", "https.mode", "off")
    config(hub, "apply")
    r = requests.get("http://127.0.0.1/hub/login", allow_redirects=False, timeout=30)
    assert r.status_code == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 443), timeout=5).close()
    assert not host.service(paths.CERTBOT_TIMER).exists  # removed, so not enabled either
