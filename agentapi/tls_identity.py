"""The agent's TLS certificate for https public URLs.

`AGENT_TLS_CERT` / `AGENT_TLS_KEY` name PEM files to use. Without them the agent makes a
self-signed certificate once (EC P-256, a year) for localhost, 127.0.0.1, ::1 and the public host,
kept in `AGENT_DATA_DIR/tls/`, and makes a new one when it expires or the public host changes.
Clients must trust it or skip verification (`curl -k`), as with any self-signed certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

_VALIDITY = dt.timedelta(days=365)


def https_context() -> ssl.SSLContext:
    cert, key = settings.AGENT_TLS_CERT, settings.AGENT_TLS_KEY
    if not cert:
        cert, key = _self_signed(Path(settings.DATA_DIR) / "tls", _names(settings.AGENT_PUBLIC_HOST))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _names(public_host: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if public_host and public_host not in names:
        names.append(public_host)
    return names


def _self_signed(folder: Path, names: list[str]) -> tuple[str, str]:
    cert_path, key_path = folder / "agent.crt", folder / "agent.key"
    if cert_path.exists() and key_path.exists() and _still_good(cert_path, names):
        return str(cert_path), str(key_path)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1])])
    now = dt.datetime.now(dt.UTC)
    alternative_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def _still_good(cert_path: Path, names: list[str]) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    present = {str(v) for v in alternative.get_values_for_type(x509.DNSName)}
    present |= {str(v) for v in alternative.get_values_for_type(x509.IPAddress)}
    fresh = certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=1)
    return fresh and {_normal(name) for name in names} <= present


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name
