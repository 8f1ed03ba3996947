"""The agent's TLS material: a local CA, a server certificate and the CLI's client certificate.

Created on the agent's first start under ROOT/agent/ (keys 0600, root-owned).
Clients are trusted one certificate at a time: the agent's trust store holds
exactly the files in ROOT/agent/trusted/ (partial-chain verification), so
`prodng agent trust rm` really revokes a client (on the agent's next start).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from prodng.config import Paths
from prodng.container.state import check_name, write_atomic
from prodng.errors import InvalidRequest, NotFound

VALID_DAYS = 825


@dataclass(frozen=True)
class Files:
    directory: Path

    ca = property(lambda self: self.directory / "ca.pem")
    ca_key = property(lambda self: self.directory / "ca.key")
    server = property(lambda self: self.directory / "server.pem")
    server_key = property(lambda self: self.directory / "server.key")
    client = property(lambda self: self.directory / "client.pem")
    client_key = property(lambda self: self.directory / "client.key")
    trusted = property(lambda self: self.directory / "trusted")


def files(paths: Paths) -> Files:
    return Files(paths.root / "agent")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomic(path, pem, mode=0o600)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    if server_names:
        alt: list[x509.GeneralName] = []
        for host in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


LOOPBACK = ("localhost", "127.0.0.1", "::1")  # names every agent answers to (agent/server.py adds its address)


def ensure(paths: Paths, server_names: tuple[str, ...] = LOOPBACK) -> Files:
    """Create the CA, server and client credentials once; later calls change nothing."""
    f = files(paths)
    f.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    f.trusted.mkdir(mode=0o700, exist_ok=True)
    if f.ca.exists() and f.server.exists() and f.client.exists():
        return f
    ca_key = _key()
    # Names of this root's own: OpenSSL finds an issuer by its name, and a client certificate made by another
    # root's CA of the same name failed its signature check against ours ("trust add" of it never worked).
    unique = os.urandom(4).hex()
    ca = _issue(f"prodng local CA {unique}", ca_key, None, ca_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _issue("prodng agent", server_key, ca, ca_key, server_names=server_names)
    client = _issue(f"prodng cli {unique}", client_key, ca, ca_key, client=True)
    for path, key in ((f.ca_key, ca_key), (f.server_key, server_key), (f.client_key, client_key)):
        _write_key(path, key)
    write_atomic(f.server, _pem(server) + _pem(ca), mode=0o644)
    write_atomic(f.client, _pem(client), mode=0o644)
    write_atomic(f.trusted / "prodng-cli.pem", _pem(client), mode=0o644)
    write_atomic(f.ca, _pem(ca), mode=0o644)  # last: its presence means the set is complete
    return f


def fingerprint(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def trust_list(paths: Paths) -> list[dict[str, object]]:
    f = files(paths)
    rows = []
    for path in sorted(f.trusted.glob("*.pem")) if f.trusted.is_dir() else []:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        rows.append(
            {
                "name": path.stem,
                "subject": cert.subject.rfc4514_string(),
                "fingerprint": fingerprint(path.read_bytes()),
                "expires": cert.not_valid_after_utc.isoformat(),
            }
        )
    return rows


def trust_add(paths: Paths, name: str, pem_path: str) -> dict[str, object]:
    check_name(name)
    try:
        pem = Path(pem_path).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as err:
        raise InvalidRequest(f"not a PEM certificate: {pem_path} ({err})") from None
    f = files(paths)
    f.trusted.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(f.trusted / f"{name}.pem", _pem(cert), mode=0o644)
    return {"name": name, "fingerprint": fingerprint(pem)}


def trust_rm(paths: Paths, name: str) -> dict[str, object]:
    target = files(paths).trusted / f"{check_name(name)}.pem"
    if not target.exists():
        raise NotFound(f"no trusted client certificate named {name}")
    target.unlink()
    return {"name": name, "removed": True}


def server_context(paths: Paths) -> ssl.SSLContext:
    """TLS 1.2+, a client certificate required, trusted only if its file is in trusted/."""
    f = ensure(paths)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f.server, f.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    trusted = b"".join(p.read_bytes() for p in sorted(f.trusted.glob("*.pem")))
    if trusted:
        ctx.load_verify_locations(cadata=trusted.decode())
    return ctx


def client_context(
    paths: Paths, cert: str | None = None, key: str | None = None, cafile: str | None = None
) -> ssl.SSLContext:
    f = files(paths)
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile or str(f.ca))
        ctx.load_cert_chain(cert or f.client, key or f.client_key)
    except (OSError, ssl.SSLError) as err:
        raise InvalidRequest(
            f"cannot load TLS credentials: {err}",
            hint=f"the agent creates them in {f.directory} on first start; or pass --cert/--key/--cacert",
        ) from None
    return ctx


def is_private(path: Path) -> bool:
    st = os.stat(path)
    return st.st_uid == 0 and st.st_mode & 0o077 == 0
