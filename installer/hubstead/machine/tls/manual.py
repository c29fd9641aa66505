"""``manual``: the admin's certificate chain and key, checked before use."""

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hubstead.machine.tls.certificates import TLSError, days_left


def check_manual(cert_path: str | None, key_path: str | None) -> tuple[Path, Path]:
    """The certificate chain and key to serve; TLSError for one traefik could not serve:
    missing, not PEM, not matching its key, expired."""
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
    if days_left(leaf) <= 0:
        raise TLSError(f"https.manual.cert: {cert_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    return Path(cert_path), Path(key_path)
