"""Client identities for the node, signed by the sim's CA (kwokctl's ``pki/ca.key``).

The kubelet authenticates as ``system:node:<node>`` in ``system:nodes`` (so the Node
authorizer and NodeRestriction admission treat it as a real kubelet) and kube-proxy as
``system:kube-proxy`` (bound to ``system:node-proxier`` by the default RBAC policy).
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from labctl.core.errors import LabctlError
from labctl.localcluster.realnode.layout import Layout

VALIDITY = datetime.timedelta(days=365)


def _load_ca(pki: Path) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    try:
        with warnings.catch_warnings():  # kwokctl's CA has a non-positive serial: harmless here
            warnings.simplefilter("ignore")
            cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise LabctlError(f"cannot read the sim's CA in {pki} (ca.crt, ca.key): {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise LabctlError(f"the sim's CA key {pki / 'ca.key'} is neither RSA nor EC")
    return cert, key


def issue_client_cert(pki: Path, common_name: str, groups: list[str], cert: Path, key: Path) -> None:
    """Write a client cert/key pair for ``common_name`` (organisations = ``groups``)."""
    ca_cert, ca_key = _load_ca(pki)
    private = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))


def _server(layout: Layout) -> str:
    try:
        config = yaml.safe_load(layout.kubeconfig.read_text())
        return str(config["clusters"][0]["cluster"]["server"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        raise LabctlError(f"cannot read the API server address from {layout.kubeconfig}") from None


def write_kubeconfig(layout: Layout, path: Path, user: str, cert: Path, key: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sim",
                "cluster": {"server": _server(layout), "certificate-authority": str(layout.pki / "ca.crt")},
            }
        ],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": user}}],
        "current-context": "sim",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def ensure_identities(layout: Layout) -> tuple[Path, Path]:
    """The kubelet's and kube-proxy's kubeconfigs, issuing their certs once."""
    pki = layout.path("pki")
    made = []
    for who, cn, groups in (
        ("kubelet", f"system:node:{layout.node_name}", ["system:nodes"]),
        ("kube-proxy", "system:kube-proxy", []),
    ):
        cert, key, kubeconfig = pki / f"{who}.crt", pki / f"{who}.key", layout.path(f"{who}.kubeconfig")
        if not (cert.exists() and key.exists()):
            issue_client_cert(layout.pki, cn, groups, cert, key)
        if not kubeconfig.exists():
            write_kubeconfig(layout, kubeconfig, cn, cert, key)
        made.append(kubeconfig)
    return made[0], made[1]
