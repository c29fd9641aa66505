import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubstead import config
from hubstead.core import paths
from hubstead.machine import tls
from hubstead.machine.tls import certificates, letsencrypt, manual, rules, selfsigned


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "TLS_DIR", tmp_path / "tls")
    monkeypatch.setattr(paths, "TLS_RULES_FILE", tmp_path / "rules" / "tls.toml")
    monkeypatch.setattr(paths, "HTTP_RULES_FILE", tmp_path / "rules" / "http.toml")
    monkeypatch.setattr(paths, "SERVED_TLS_DIR", tmp_path / "served")
    (tmp_path / "served").mkdir()
    monkeypatch.setattr(selfsigned, "SELFSIGNED_CERT", tmp_path / "tls" / "selfsigned.crt")
    monkeypatch.setattr(selfsigned, "SELFSIGNED_KEY", tmp_path / "tls" / "selfsigned.key")
    monkeypatch.setattr(selfsigned, "public_hosts", lambda: ["192.0.2.10"])
    (tmp_path / "rules").mkdir()
    return tmp_path


def make_cert(tmp_path, name="hub.example.edu", days=30, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=60))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}-{days}.crt", tmp_path / f"{name}-{days}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_selfsigned_has_the_names_and_a_private_key():
    names = selfsigned.selfsigned_names(config.validate({"https": {"hostnames": ["hub.example.edu"]}}))
    assert names == ["hub.example.edu", "192.0.2.10", "localhost", "127.0.0.1"]
    assert selfsigned.ensure_selfsigned(names) is True
    cert = x509.load_pem_x509_certificate(selfsigned.SELFSIGNED_CERT.read_bytes())
    assert sorted(certificates.cert_names(cert)) == sorted(names)
    assert stat.S_IMODE(selfsigned.SELFSIGNED_KEY.stat().st_mode) == 0o600
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().key_size >= 256


def test_selfsigned_is_kept_until_the_names_change():
    assert selfsigned.ensure_selfsigned(["a.example.edu", "127.0.0.1"]) is True
    assert selfsigned.ensure_selfsigned(["127.0.0.1", "a.example.edu"]) is False
    assert selfsigned.ensure_selfsigned(["b.example.edu", "127.0.0.1"]) is True


def test_manual_certificate_that_matches_is_accepted(tmp_path):
    manual.check_manual(*make_cert(tmp_path))


def test_manual_key_that_does_not_match_is_refused(tmp_path):
    cert, _ = make_cert(tmp_path, "a.example.edu")
    _, other_key = make_cert(tmp_path, "b.example.edu")
    with pytest.raises(certificates.TLSError, match="does not belong to the certificate"):
        manual.check_manual(cert, other_key)


def test_manual_expired_certificate_is_refused(tmp_path):
    with pytest.raises(certificates.TLSError, match="expired on"):
        manual.check_manual(*make_cert(tmp_path, days=-1))


@pytest.mark.parametrize("cert, key, message", [
    (None, "/etc/k.pem", "needs https.manual.cert and https.manual.key"),
    ("/etc/nonexistent/c.pem", "/etc/nonexistent/k.pem", "/etc/nonexistent/c.pem does not exist"),
])
def test_manual_paths_are_checked(cert, key, message):
    with pytest.raises(certificates.TLSError, match=message):
        manual.check_manual(cert, key)


def test_http_rules_route_acme_and_redirect():
    rules.write_http_rules(acme=True, redirect=True, https_port=8443)
    text = paths.HTTP_RULES_FILE.read_text()
    assert f'url = "http://127.0.0.1:{paths.ACME_CHALLENGE_PORT}"' in text
    assert "PathPrefix(`/.well-known/acme-challenge/`)" in text
    assert 'scheme = "https"' in text and 'port = "8443"' in text
    rules.write_http_rules(acme=False, redirect=True, https_port=443)
    text = paths.HTTP_RULES_FILE.read_text()
    assert f":{paths.ACME_CHALLENGE_PORT}" not in text and "[http.routers.acme-challenge]" not in text
    assert "port =" not in text
    rules.write_http_rules(acme=False, redirect=False, https_port=443)
    assert not paths.HTTP_RULES_FILE.exists()


def test_traefik_serves_copies_its_group_may_read_and_only_the_current_ones(tmp_path):
    # traefik runs as its own user: it can't read root's 0600 key, so it gets a 0640
    # copy (the directory's setgid gives it traefik's group).
    first = make_cert(tmp_path, "a.example.edu")
    rules.serve(*map(Path, first))
    text = paths.TLS_RULES_FILE.read_text()
    served = sorted(paths.SERVED_TLS_DIR.iterdir())
    assert [p.suffix for p in served] == [".crt", ".key"]
    assert f'certFile = "{served[0]}"' in text and f'keyFile = "{served[1]}"' in text
    assert served[1].read_text() == Path(first[1]).read_text()
    assert {stat.S_IMODE(p.stat().st_mode) for p in [*served, paths.TLS_RULES_FILE]} == {0o640}
    assert 'minVersion = "VersionTLS12"' in text
    # A renewed certificate gets new names, so tls.toml changes and traefik loads it;
    # the old copies are gone.
    rules.serve(*map(Path, make_cert(tmp_path, "a.example.edu", days=90)))
    assert paths.TLS_RULES_FILE.read_text() != text
    assert not set(served) & set(paths.SERVED_TLS_DIR.iterdir())
    assert len(list(paths.SERVED_TLS_DIR.iterdir())) == 2


def test_letsencrypt_needs_email_and_domains():
    with pytest.raises(certificates.TLSError, match="needs https.letsencrypt.email"):
        letsencrypt.check_letsencrypt_settings({"email": None, "domains": ["hub.example.edu"]})
    with pytest.raises(certificates.TLSError, match="needs https.letsencrypt.domains"):
        letsencrypt.check_letsencrypt_settings({"email": "a@example.edu", "domains": []})


def test_preflight_explains_a_name_that_does_not_resolve():
    with pytest.raises(certificates.TLSError) as e:
        letsencrypt.preflight(["no-such-host.invalid"], http_port=paths.ACME_CHALLENGE_PORT)
    message = str(e.value)
    assert "nothing was asked of the ACME server" in message
    assert "no-such-host.invalid does not resolve" in message and "add a DNS A record" in message


def test_preflight_passes_when_the_name_reaches_the_challenge_port():
    # Straight to the probe responder (no proxy in between): what traefik's route gives.
    letsencrypt.preflight(["localhost"], http_port=paths.ACME_CHALLENGE_PORT)


def test_acme_server_choice():
    le = {"server": None, "staging": False}
    assert letsencrypt.acme_server(le) == "https://acme-v02.api.letsencrypt.org/directory"
    assert "staging" in letsencrypt.acme_server({**le, "staging": True})
    assert letsencrypt.acme_server({**le, "server": "https://localhost:14000/dir"}) == "https://localhost:14000/dir"


def test_preflight_can_be_turned_off_where_the_machine_cannot_reach_itself(monkeypatch):
    calls = []
    monkeypatch.setattr(letsencrypt, "preflight", lambda *a: calls.append("preflight"))
    monkeypatch.setattr(letsencrypt, "obtain", lambda le, email: calls.append("obtain"))
    monkeypatch.setattr(letsencrypt, "needs_certificate", lambda le: True)
    base = {"mode": "letsencrypt", "letsencrypt": {"email": "a@example.edu", "domains": ["hub.example.edu"]}}
    tls.prepare(config.validate({"https": base}))
    assert calls == ["preflight", "obtain"]
    calls.clear()
    base["letsencrypt"]["preflight"] = False
    tls.prepare(config.validate({"https": base}))
    assert calls == ["obtain"]
