"""Certificates and secret files for pyimgenc's servers (with :mod:`cryptography`).

* :func:`write_secret` — a file readable by its owner only (created 0600); :func:`restrict`
  makes an existing one so; :func:`read_secret` refuses one that others may read;
* :func:`issue` — an ECDSA P-256 certificate signed by a given key (System A's private CA);
* :func:`self_signed_certificate` — a server certificate and key for a verifier (System C)
  that clients then pin (``VerifierClient(url, ca=cert)``).
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def read_secret(path: str | Path) -> bytes:
    """The bytes of a secret file, refused if anyone but its owner may read or write it.

    Raises:
        FileNotFoundError: no such file.
        PermissionError: the file is group- or world-accessible (the message says how to fix it).
    """
    path = Path(path)
    mode = path.stat().st_mode
    if os.name == "posix" and mode & 0o077:
        raise PermissionError(f"{path} is a secret but readable or writable by others (mode {mode & 0o777:o}); "
                              f"fix it with: chmod 600 {path}")
    return path.read_bytes()


def restrict(path: str | Path) -> None:
    """Make an existing file readable by its owner only (0600)."""
    os.chmod(path, 0o600)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def san(names) -> x509.SubjectAlternativeName:
    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def issue(ca_key, ca_name, cn: str, names, usages, now, key=None) -> tuple[bytes, bytes]:
    """A certificate for ``cn``/``names`` signed by ``ca_key``, and its key's PEM (a fresh P-256 key unless given)."""
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def self_signed_certificate(out: str | Path, names=("localhost", "127.0.0.1"), cn: str = "pyimgenc verifier"
                            ) -> tuple[str, str]:
    """Write ``server.crt`` and ``server.key`` (0600) into ``out``; returns their paths.

    The certificate names ``names`` (host names or IP addresses) and signs itself; clients
    check the server against this very file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [names] if isinstance(names, str) else list(names)
    key = ec.generate_private_key(ec.SECP256R1())
    cert, pem_key = issue(key, name(cn), cn, names, [ExtendedKeyUsageOID.SERVER_AUTH],
                          datetime.datetime.now(datetime.timezone.utc), key=key)
    (out / "server.crt").write_bytes(cert)
    write_secret(out / "server.key", pem_key)
    return str(out / "server.crt"), str(out / "server.key")
