"""What Hubstead reads from a certificate, and the error HTTPS problems raise."""

import datetime
import socket
import ssl

from cryptography import x509

from hubstead.core.errors import HubsteadError


class TLSError(HubsteadError, RuntimeError):
    """HTTPS can't be set up as configured; the message says what to fix."""


def cert_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)] + \
        [str(n) for n in san.get_values_for_type(x509.IPAddress)]


def days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400


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
