"""``selfsigned``: a key and a certificate made here, named after the machine."""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubstead.config.model import Settings
from hubstead.core import paths
from hubstead.core.files import write_atomic
from hubstead.machine.health import public_hosts
from hubstead.machine.tls.certificates import cert_names, days_left

SELFSIGNED_CERT = paths.TLS_DIR / "selfsigned.crt"
SELFSIGNED_KEY = paths.TLS_DIR / "selfsigned.key"
SELFSIGNED_DAYS = 825
RENEW_SELFSIGNED_DAYS = 30


def selfsigned_names(effective: Settings) -> list[str]:
    """The configured names, then this machine's addresses and loopback."""
    names = [*effective["https"]["hostnames"], *public_hosts(), "localhost", "127.0.0.1"]
    return list(dict.fromkeys(names))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def ensure_selfsigned(names: list[str]) -> bool:
    """Make the key and certificate unless the current ones have exactly ``names`` and
    are not about to expire. Returns True when new ones were made."""
    if SELFSIGNED_CERT.exists() and SELFSIGNED_KEY.exists():
        current = x509.load_pem_x509_certificate(SELFSIGNED_CERT.read_bytes())
        if sorted(cert_names(current)) == sorted(str(_san(n).value) for n in names) \
                and days_left(current) > RENEW_SELFSIGNED_DAYS:
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
