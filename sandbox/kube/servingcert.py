"""The API server's TLS: a cluster CA and a serving certificate, made at start.

A real API server serves only HTTPS (port 6443), and client-go sends credentials
only over TLS (clientcmd's ClientConfig reads the user's token only when
`IsConfigTransportTLS`), so the sandbox's token-authenticated API is HTTPS too. As
kubeadm does: a self-signed CA `kubernetes` and a serving certificate whose SANs
are the address clients use and the in-cluster names of the `kubernetes` Service
(cmd/kubeadm/app/phases/certs/certlist.go `KubeadmCertAPIServer`). The kubeconfig
carries the CA (`certificate-authority-data`). EC P-256 keys: made in a millisecond.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = timedelta(days=365)  # kubeadm's leaf certificates
SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)


@dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(hosts: Sequence[str], now: datetime) -> ServingCertificate:
    """A CA and a serving certificate for `hosts` plus the `kubernetes` Service's names."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("kubernetes"))
        .issuer_name(_name("kubernetes"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + 10 * VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys([*hosts, *SERVICE_NAMES]))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return ServingCertificate(
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def server_context(certificate: ServingCertificate, scratch: Path) -> ssl.SSLContext:
    """An SSL context serving the certificate (the key touches disk only for the load, 0600)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    scratch.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=scratch, prefix=".apiserver-", suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(certificate.cert_pem + certificate.key_pem)
        context.load_cert_chain(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return context


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """What a raw-HTTP client of the API server verifies it with (the kubeconfig's CA)."""
    return ssl.create_default_context(cadata=ca_pem.decode())
