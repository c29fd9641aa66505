"""Pebble (Let's Encrypt's ACME test CA) and its mock DNS, on the host's loopback, for integration tests.

    with Pebble(tmp_path / "pebble") as acme:
        # an ACME client trusts acme.ca_cert_pem and uses --server acme.directory_url;
        # pebble's validation authority fetches http://NAME:http_port/.well-known/acme-challenge/...
        # with NAME resolved by pebble-challtestsrv to dns_ipv4 (127.0.0.1 unless told otherwise)
        roots = acme.roots_pem()   # what issued certificates chain up to

nspawn targets share the host's network, so a target's port 80 is the host's 127.0.0.1:80. The ports are
fixed (pebble's clients expect :14000), so only one Pebble can run at a time. Stdlib + cryptography only.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
ACME_ADDR = ("127.0.0.1", 14000)
MANAGEMENT_ADDR = ("127.0.0.1", 15000)
DNS_ADDR = ("127.0.0.1", 8053)
CHALLTESTSRV_MANAGEMENT_ADDR = ("127.0.0.1", 8055)
START_TIMEOUT = 30
STOP_TIMEOUT = 10


def _addr(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def _listening(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(addr) == 0


def _ensure_installed() -> None:
    if Path(PEBBLE).is_file() and Path(CHALLTESTSRV).is_file():
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "pebble"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*allowed: str) -> x509.KeyUsage:
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: flag in allowed for flag in flags})


def _make_https_certs(workdir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and the localhost certificate pebble serves its ACME and management APIs with.

    The Debian package ships no test certificates (only a config that points at them).
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hubstead test CA for pebble's HTTPS")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem"
    ca_path.write_bytes(_pem(ca))
    cert_path.write_bytes(_pem(cert))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class Pebble:
    directory_url = f"https://localhost:{ACME_ADDR[1]}/dir"

    def __init__(self, workdir: Path, dns_ipv4: str = "127.0.0.1", http_port: int = 80):
        self.workdir = Path(workdir)
        self.dns_ipv4 = dns_ipv4
        self.http_port = http_port  # where pebble's validation authority connects for http-01
        self.ca_cert_path = self.workdir / "ca.pem"  # written by start()
        self._procs: dict[str, subprocess.Popen] = {}
        self._http: urllib.request.OpenerDirector | None = None

    @property
    def ca_cert_pem(self) -> str:
        """The CA of pebble's own HTTPS certificate: what an ACME client must trust to talk to pebble."""
        return self.ca_cert_path.read_text()

    def start(self) -> None:
        _ensure_installed()
        busy = [_addr(a) for a in (ACME_ADDR, MANAGEMENT_ADDR, DNS_ADDR, CHALLTESTSRV_MANAGEMENT_ADDR)
                if _listening(a)]
        if busy:
            # Most likely a pebble left over by an earlier run (see `pgrep -a pebble`).
            raise RuntimeError(f"cannot start pebble: already in use: {', '.join(busy)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca_path, cert_path, key_path = _make_https_certs(self.workdir)
        # Everything is on loopback: ignore the host's proxy settings, and trust only our CA, whatever the
        # host's CA settings say.
        self._http = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(ca_path))))
        config = self.workdir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": _addr(ACME_ADDR),
            "managementListenAddress": _addr(MANAGEMENT_ADDR),
            "certificate": str(cert_path),
            "privateKey": str(key_path),
            "httpPort": self.http_port,
            "tlsPort": 5001,  # tls-alpn-01 is not used
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}, indent=2))
        try:
            # The mock DNS comes first, so that pebble never asks the host's resolver. It answers every A
            # query with dns_ipv4 and no AAAA query, so that the validation authority does not try ::1.
            self._spawn("challtestsrv", [
                CHALLTESTSRV, "-dns01", _addr(DNS_ADDR), "-http01", "", "-https01", "", "-tlsalpn01", "",
                "-management", _addr(CHALLTESTSRV_MANAGEMENT_ADDR),
                "-defaultIPv4", self.dns_ipv4, "-defaultIPv6", "",
            ], {})
            # No artificial validation delays and no rejected nonces, but validation stays real: not
            # PEBBLE_VA_ALWAYS_VALID, and no reuse of an earlier valid authorization (pebble's default is
            # 50 %), so that every order, renewals included, goes through a real http-01 challenge.
            self._spawn("pebble", [PEBBLE, "-config", str(config), "-dnsserver", _addr(DNS_ADDR)],
                        {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"})
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            # Own session, hence own process group: stop() signals the group, and a Ctrl-C on the test run
            # does not reach it before stop() does.
            self._procs[name] = subprocess.Popen(
                cmd, cwd=self.workdir, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            dead = [name for name, proc in self._procs.items() if proc.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during startup:\n{self.log_tail()}")
            try:
                if _listening(CHALLTESTSRV_MANAGEMENT_ADDR):
                    self._get(f"https://127.0.0.1:{ACME_ADDR[1]}/dir")
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"pebble not ready after {START_TIMEOUT} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _get(self, url: str) -> str:
        with self._http.open(urllib.request.Request(url), timeout=10) as r:
            return r.read().decode()

    def directory(self) -> dict:
        return json.loads(self._get(f"https://127.0.0.1:{ACME_ADDR[1]}/dir"))

    def roots_pem(self) -> str:
        """The current root and intermediate (new at every start): a CA bundle to verify issued certificates.

        The root comes first, so that x509.load_pem_x509_certificate() on it gives the root.
        """
        base = f"https://127.0.0.1:{MANAGEMENT_ADDR[1]}"
        return self._get(f"{base}/roots/0") + self._get(f"{base}/intermediates/0")

    def _challtestsrv(self, endpoint: str, payload: dict) -> None:
        url = f"http://{_addr(CHALLTESTSRV_MANAGEMENT_ADDR)}/{endpoint}"
        req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
        with self._http.open(req, timeout=10):
            pass  # urllib raises HTTPError for anything but 2xx

    def add_dns_a(self, host: str, ip: str) -> None:
        """Make the mock DNS answer `ip` for `host` instead of dns_ipv4."""
        self._challtestsrv("add-a", {"host": host, "addresses": [ip]})

    def remove_dns(self, host: str) -> None:
        """Undo add_dns_a(host): `host` resolves to dns_ipv4 again."""
        self._challtestsrv("clear-a", {"host": host})

    def stop(self) -> None:
        """SIGTERM both process groups, SIGKILL what is left after STOP_TIMEOUT. Idempotent."""
        procs, self._procs = self._procs, {}
        for proc in procs.values():
            self._signal(proc, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # pgid == pid: see _spawn
        except ProcessLookupError:
            pass  # already gone

    def log_tail(self, n: int = 40) -> str:
        parts = []
        for name in ("challtestsrv", "pebble"):
            log = self.workdir / f"{name}.log"
            if log.is_file():
                lines = log.read_text(errors="replace").splitlines()[-n:]
                parts.append(f"--- {log} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def __enter__(self) -> Pebble:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
