"""The Pebble helper: ACME directory, issuing roots, mock DNS, clean stop, and a real http-01 issuance."""

import os
import socket
import struct
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from pebble import DNS_ADDR, Pebble

pytestmark = pytest.mark.integration

CERTBOT_INSTALL_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pebble_pids() -> list[str]:
    """Any pebble or pebble-challtestsrv on the machine (the fixed ports allow only one Pebble at a time)."""
    out = subprocess.run(["pgrep", "-f", "^/usr/bin/pebble"], capture_output=True, text=True)
    return out.stdout.split()


def _resolve_a(name: str) -> list[str]:
    """Ask the mock DNS for A records (a minimal DNS client: the host may have no dig)."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query, DNS_ADDR)
        reply = s.recv(4096)
    answers, pos, ips = struct.unpack(">H", reply[6:8])[0], len(query), []
    for _ in range(answers):
        while reply[pos] and reply[pos] < 0xC0:  # skip the owner name: labels...
            pos += reply[pos] + 1
        pos += 2 if reply[pos] >= 0xC0 else 1  # ...ending in a compression pointer or the root label
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1:
            ips.append(socket.inet_ntoa(reply[pos:pos + rdlen]))
        pos += rdlen
    return ips


@pytest.fixture
def acme(tmp_path):
    with Pebble(tmp_path / "pebble", http_port=_free_port()) as p:
        yield p


def test_directory_and_roots(acme):
    directory = acme.directory()
    assert {"newAccount", "newOrder", "newNonce"} <= directory.keys()
    root = x509.load_pem_x509_certificate(acme.roots_pem().encode())
    assert "Pebble" in root.subject.rfc4514_string()
    assert "BEGIN CERTIFICATE" in acme.ca_cert_pem


def test_mock_dns(acme):
    assert _resolve_a("anything.example.test") == ["127.0.0.1"]
    acme.add_dns_a("other.example.test", "127.0.0.7")
    assert _resolve_a("other.example.test") == ["127.0.0.7"]
    acme.remove_dns("other.example.test")
    assert _resolve_a("other.example.test") == ["127.0.0.1"]


def test_stop_leaves_nothing_running(tmp_path):
    acme = Pebble(tmp_path / "pebble", http_port=_free_port())
    acme.start()
    assert len(_pebble_pids()) == 2
    acme.stop()
    assert _pebble_pids() == []
    acme.stop()


@pytest.fixture(scope="module")
def certbot(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("certbot-venv")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([venv / "bin/pip", "install", "-q", "certbot"], check=True, capture_output=True,
                       timeout=CERTBOT_INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"installing certbot took more than {CERTBOT_INSTALL_TIMEOUT} s")
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot install certbot from the package index: {(e.stderr or b'').decode()[-500:]}")
    return str(venv / "bin/certbot")


def test_real_http01_issuance(certbot, tmp_path):
    # Pebble's validation authority must connect where certbot's standalone server listens.
    port = _free_port()
    with Pebble(tmp_path / "pebble", http_port=port) as acme:
        le = tmp_path / "le"
        result = subprocess.run(
            [certbot, "certonly", "--standalone", "--http-01-address", "127.0.0.1",
             "--http-01-port", str(port),
             "--server", acme.directory_url, "--agree-tos", "-m", "admin@example.test", "--no-eff-email",
             "--non-interactive", "--config-dir", le / "config", "--work-dir", le / "work",
             "--logs-dir", le / "logs", "-d", "test.example.test"],
            env=dict(os.environ, REQUESTS_CA_BUNDLE=str(acme.ca_cert_path)),
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr + acme.log_tail()
        assert "Attempting to validate w/ HTTP" in (acme.workdir / "pebble.log").read_text()
        roots = x509.load_pem_x509_certificates(acme.roots_pem().encode())

    live = le / "config/live/test.example.test"
    leaf, *chain = x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes())
    assert "Pebble" in leaf.issuer.rfc4514_string()
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(x509.DNSName("test.example.test"))
    verifier.verify(leaf, chain)
