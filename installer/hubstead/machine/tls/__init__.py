"""HTTPS: certificates for traefik in each mode, and the checks that explain failures.

Modes (``https.mode``): ``off``; ``selfsigned`` (a key and certificate made here, with
the machine's addresses and ``https.hostnames`` as names); ``manual`` (the admin's
certificate chain and key, checked before use); ``letsencrypt`` (certbot, whose http-01
challenge traefik routes to 127.0.0.1 (paths.ACME_CHALLENGE_PORT), after a preflight that finds what would make
the ACME server refuse, before asking it).

traefik reads certificates from ``tls.toml`` in its watched rules directory; every
write here is atomic, so a new certificate is served without a restart.
"""


from hubstead.config.model import Settings
from hubstead.core import paths
from hubstead.machine.tls import letsencrypt, manual, rules, selfsigned


def prepare(effective: Settings) -> None:
    """Before the roles run: check everything, then put the certificate in place, so
    traefik's HTTPS entrypoint never comes up without one. Raises TLSError (and changes
    nothing) when HTTPS can't be set up as configured."""
    https = effective["https"]
    mode = https["mode"]
    if mode == "off":
        rules.write_http_rules(acme=False, redirect=False, https_port=https["port"])
    elif mode == "selfsigned":
        selfsigned.ensure_selfsigned(selfsigned.selfsigned_names(effective))
        rules.serve(selfsigned.SELFSIGNED_CERT, selfsigned.SELFSIGNED_KEY)
    elif mode == "manual":
        rules.serve(*manual.check_manual(https["manual"]["cert"], https["manual"]["key"]))
    elif mode == "letsencrypt":
        le = https["letsencrypt"]
        email = letsencrypt.check_letsencrypt_settings(le)
        if letsencrypt.needs_certificate(le):
            redirect_on = paths.HTTP_RULES_FILE.exists() and "to-https" in paths.HTTP_RULES_FILE.read_text()
            rules.write_http_rules(acme=True, redirect=redirect_on, https_port=https["port"])
            if le["preflight"]:
                letsencrypt.preflight(le["domains"], effective["http"]["port"])
            letsencrypt.obtain(le, email)
        else:
            letsencrypt.deploy(letsencrypt.lineage())


def finish(effective: Settings) -> None:
    """After the roles ran: redirect port 80 to HTTPS (keeping the ACME route), or clean up."""
    https = effective["https"]
    mode = https["mode"]
    rules.write_http_rules(acme=mode == "letsencrypt", redirect=mode != "off", https_port=https["port"])
    if mode == "off":
        paths.TLS_RULES_FILE.unlink(missing_ok=True)
        rules.forget_served()
