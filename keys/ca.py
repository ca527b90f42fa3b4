"""The ministry's certificates: root CSCA, document signers (DSCs) and the trust-list signing key.

DSCs carry the DCC extended key usage OIDs that limit which certificate types they may sign
(test, vaccination, recovery); a DSC with none of them may sign every type, as the DCC
specification says.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Literal, overload

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from keys.errors import InvalidDscTypes, UnsupportedAlgorithm

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# DCC key-usage OIDs (eHealth Network, DCC technical specifications volume 1, section 5.4.1).
TYPE_OIDS: dict[str, x509.ObjectIdentifier] = {
    "t": x509.ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.1"),
    "v": x509.ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.2"),
    "r": x509.ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.3"),
}
ALL_TYPES = ("v", "t", "r")
COUNTRY = "VN"
ORGANISATION = "Ministry of Health of Viet Nam"


@overload
def generate_key(alg: Literal["ES256"] = "ES256") -> ec.EllipticCurvePrivateKey: ...
@overload
def generate_key(alg: str) -> PrivateKey: ...
def generate_key(alg: str = "ES256") -> PrivateKey:
    """A fresh signing key: ECDSA P-256 for ES256 (the default), RSA 2048 for PS256."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "PS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise UnsupportedAlgorithm(f"unsupported algorithm {alg!r}: use ES256 or PS256")


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    """The COSE algorithm name a key signs with: ES256 or PS256."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UnsupportedAlgorithm(f"ECDSA keys must be on P-256, not {key.curve.name}")
        return "ES256"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "PS256"
    raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}: use ECDSA P-256 or RSA")


def _name(common_name: str, country: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _validity(not_before: dt.datetime | None, days: int) -> tuple[dt.datetime, dt.datetime]:
    start = not_before or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return start, start + dt.timedelta(days=days)


def make_csca(key: PrivateKey, *, country: str = COUNTRY, common_name: str = "CSCA Viet Nam",
              not_before: dt.datetime | None = None, days: int = 3650) -> x509.Certificate:
    """The self-signed ministry root (CSCA): a CA that may sign only DSCs (path length 0)."""
    start, end = _validity(not_before, days)
    name = _name(common_name, country)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def make_dsc(csca_cert: x509.Certificate, csca_key: PrivateKey, dsc_public_key: PublicKey, *,
             types: Iterable[str] = ALL_TYPES, common_name: str = "DSC Viet Nam",
             not_before: dt.datetime | None = None, days: int = 730,
             not_after: dt.datetime | None = None) -> x509.Certificate:
    """A document signer certificate under the CSCA, limited to `types` (v/t/r) by extended key usage."""
    wanted = list(dict.fromkeys(types))
    unknown = [t for t in wanted if t not in TYPE_OIDS]
    if unknown or not wanted:
        raise InvalidDscTypes(wanted)
    algorithm_of(dsc_public_key)  # refuse keys HC1 cannot use before signing anything
    start, end = _validity(not_before, days)
    end = not_after or end
    country = csca_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value
    csca_ski = csca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, str(country)))
        .issuer_name(csca_cert.subject)
        .public_key(dsc_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(dsc_public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(csca_ski), critical=False)
        .add_extension(x509.ExtendedKeyUsage([TYPE_OIDS[t] for t in wanted]), critical=False)
    )
    return builder.sign(csca_key, hashes.SHA256())


def dsc_types(cert: x509.Certificate) -> list[str]:
    """The certificate types (v/t/r) a DSC may sign, from its extended key usage; all if it has none."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return list(ALL_TYPES)
    types = [t for t in ALL_TYPES if TYPE_OIDS[t] in eku]
    # A DSC whose EKU names none of the DCC OIDs is not restricted by this mechanism.
    return types or list(ALL_TYPES)


def kid_of(cert: x509.Certificate) -> bytes:
    """The DCC key identifier: the first 8 bytes of SHA-256 over the DSC's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()[:8]


def signer_id(public_key: PublicKey) -> bytes:
    """The trust-list signer id: the first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:8]


def generate_trust_list_key() -> ec.EllipticCurvePrivateKey:
    """The key that signs trust bundles: always ECDSA P-256, as the bundle format fixes."""
    return ec.generate_private_key(ec.SECP256R1())


def anchor_pem(trust_list_key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The PEM public key units pin at provisioning to check trust bundles."""
    public = trust_list_key.public_key() if isinstance(trust_list_key, ec.EllipticCurvePrivateKey) else trust_list_key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
