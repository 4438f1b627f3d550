"""TLS for System A's links: a private CA, S1's and S2's certificates, contexts.

``pyimgenc twinserver setup`` makes one private certificate authority (ECDSA P-256, with
:mod:`cryptography`), issues S1's and S2's certificates under it and forgets the CA's
private key.  Every link runs TLS 1.3 with the standard library's :mod:`ssl`:

* user -> S1, user -> S2: the user checks the server's certificate against ``ca.crt``
  (from the public files) and its host name;
* S1 -> S2: both ways — S1 checks S2's certificate, and S2 asks for a client
  certificate and knows S1 by it (:data:`S1_NAME`).  S2 runs the compute-server
  operations (everything but ``open`` and ``fetch``) only for a peer that presented
  S1's certificate: a user, or anyone else who reaches S2, cannot use it to decrypt.

Private keys are written owner-only (mode 0600).  Plaintext TCP is only for loopback
tests, and only when asked for (``--insecure-plaintext``).
"""
from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..pki import VALID_DAYS, issue, name, write_secret

CA_NAME, S1_NAME, S2_NAME = "pyimgenc System A CA", "pyimgenc S1", "pyimgenc S2"
FILES = dict(ca="ca.crt", s1_cert="s1.crt", s1_key="s1-tls.key", s2_cert="s2.crt", s2_key="s2-tls.key")
DEFAULT_NAMES = ("localhost", "127.0.0.1")


def make_pki(out: str | Path, s1_names=DEFAULT_NAMES, s2_names=DEFAULT_NAMES) -> dict:
    """Write ``ca.crt``, ``s1.crt``/``s1-tls.key`` and ``s2.crt``/``s2-tls.key`` into ``out``.

    ``s1_names``/``s2_names`` are the host names or IP addresses users and S1 dial.
    The CA's private key is not kept: re-run setup to re-issue.
    """
    out = Path(out)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(CA_NAME)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (out / FILES["ca"]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, cn, names, usages in (("s1", S1_NAME, s1_names, [ExtendedKeyUsageOID.SERVER_AUTH,
                                                              ExtendedKeyUsageOID.CLIENT_AUTH]),
                                   ("s2", S2_NAME, s2_names, [ExtendedKeyUsageOID.SERVER_AUTH])):
        cert, key = issue(ca_key, ca_name, cn, names, usages, now)
        (out / FILES[f"{who}_cert"]).write_bytes(cert)
        write_secret(out / FILES[f"{who}_key"], key)
    return {k: str(out / v) for k, v in FILES.items()}


def _base(purpose) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def server_context(d: str | Path, who: str) -> ssl.SSLContext:
    """S1's or S2's server side; S2 also asks for (but does not require) a client certificate."""
    d = Path(d)
    ctx = _base(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / FILES[f"{who}_cert"], d / FILES[f"{who}_key"])
    if who == "s2":
        ctx.load_verify_locations(d / FILES["ca"])
        ctx.verify_mode = ssl.CERT_OPTIONAL          # users have none; S1 has its own
    return ctx


def client_context(ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None) -> ssl.SSLContext:
    """A client that checks the server against ``ca`` (and its host name); S1 adds its certificate."""
    ctx = _base(ssl.Purpose.SERVER_AUTH)
    ctx.load_verify_locations(ca)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def peer_role(sock) -> str | None:
    """``"s1"`` when the peer of a TLS socket presented S1's certificate (checked against the CA)."""
    getpeercert = getattr(sock, "getpeercert", None)
    cert = getpeercert() if getpeercert is not None else None
    if not cert:
        return None
    cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return "s1" if cn == [S1_NAME] else None
