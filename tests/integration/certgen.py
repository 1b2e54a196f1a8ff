"""Certificate factory for the integration tests.

Everything returns PEM text (str) so that it can be put straight into a JSON
body or a file.  Built on python3-cryptography (Debian 12 ships 38.x, which
still signs with SHA-1 but warns; the warning is filtered in pytest.ini).
"""

import datetime
import hashlib
import ipaddress
import warnings

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING

KEY_TYPES = ("ec256", "ec384", "ec521", "ec224", "secp256k1",
             "rsa1024", "rsa2048", "rsa3072", "ed25519")

_HASHES = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def utcnow():
    return datetime.datetime.utcnow().replace(microsecond=0)


def make_key(key_type="ec256"):
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ec521":
        return ec.generate_private_key(ec.SECP521R1())
    if key_type == "ec224":
        return ec.generate_private_key(ec.SECP224R1())
    if key_type == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537,
                                        key_size=int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError("unknown key type %r" % key_type)


def key_to_pem(key, password=None, fmt="pkcs8"):
    """PEM of a private key.  password -> encrypted PKCS#8."""
    enc = (serialization.BestAvailableEncryption(password.encode())
           if password else serialization.NoEncryption())
    f = (serialization.PrivateFormat.PKCS8 if fmt == "pkcs8"
         else serialization.PrivateFormat.TraditionalOpenSSL)
    return key.private_bytes(serialization.Encoding.PEM, f, enc).decode()


def cert_to_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def cert_to_der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def fingerprint_der(der):
    """sha256 fingerprint the way `openssl x509 -fingerprint -sha256` prints it."""
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def fingerprint(cert_or_pem):
    """Fingerprint of a cryptography cert, or of the FIRST cert of a PEM text."""
    if isinstance(cert_or_pem, (str, bytes)):
        cert_or_pem = load_pem_chain(cert_or_pem)[0]
    return fingerprint_der(cert_to_der(cert_or_pem))


def load_pem_chain(text):
    """All certificates in a PEM text, in order."""
    if isinstance(text, str):
        text = text.encode()
    out = []
    marker = b"-----BEGIN CERTIFICATE-----"
    end = b"-----END CERTIFICATE-----"
    pos = 0
    while True:
        i = text.find(marker, pos)
        if i < 0:
            break
        j = text.find(end, i)
        if j < 0:
            break
        j += len(end)
        out.append(x509.load_pem_x509_certificate(text[i:j] + b"\n"))
        pos = j
    return out


def load_key(pem, password=None):
    if isinstance(pem, str):
        pem = pem.encode()
    return serialization.load_pem_private_key(
        pem, password=password.encode() if password else None)


def public_key_der(key_or_cert):
    pub = key_or_cert.public_key()
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(cn, org="moat tests"):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _general_names(sans):
    out = []
    for s in sans:
        if s.startswith("DNS:"):
            out.append(x509.DNSName(s[4:]))
        elif s.startswith("IP:"):
            out.append(x509.IPAddress(ipaddress.ip_address(s[3:])))
        else:
            try:
                out.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                out.append(x509.DNSName(s))
    return out


def san_strings(cert):
    """SANs of a cert as ["DNS:..", "IP:.."] (the api.md format)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    out = []
    for g in ext.value:
        if isinstance(g, x509.DNSName):
            out.append("DNS:" + g.value)
        elif isinstance(g, x509.IPAddress):
            out.append("IP:" + str(g.value))
        else:
            out.append(str(g))
    return out


def service_sans(fqdn, ips=("127.0.0.1",)):
    return ["DNS:" + fqdn, "DNS:*." + fqdn] + ["IP:" + ip for ip in ips]


def _sign_alg(issuer_key, hash_name):
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        return None
    return _HASHES[hash_name]()


class Issued:
    """A certificate with its key (and its issuer, to build chains)."""

    def __init__(self, cert, key, issuer=None):
        self.cert = cert
        self.key = key
        self.issuer = issuer

    @property
    def cert_pem(self):
        return cert_to_pem(self.cert)

    @property
    def key_pem(self):
        return key_to_pem(self.key)

    @property
    def der(self):
        return cert_to_der(self.cert)

    @property
    def fingerprint(self):
        return fingerprint_der(self.der)

    def chain(self, *more):
        """PEM of this cert followed by `more` (Issued objects)."""
        return self.cert_pem + "".join(m.cert_pem for m in more)

    def combined_pem(self):
        """cert followed by key in one file (what `certificate set` accepts)."""
        return self.cert_pem + self.key_pem

    def __repr__(self):
        return "<Issued %s %s>" % (self.cert.subject.rfc4514_string(),
                                   self.fingerprint[:11])


def _build(subject, issuer_name, pub, signer_key, serial=None, not_before=None,
           not_after=None, ca=False, path_len=None, sans=None, eku=None,
           key_usage=None, hash_name="sha256", ski_of=None, aki_from=None):
    nb = not_before or utcnow() - datetime.timedelta(minutes=5)
    na = not_after or nb + datetime.timedelta(days=365)
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer_name)
         .public_key(pub)
         .serial_number(serial or x509.random_serial_number())
         .not_valid_before(nb)
         .not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len),
                        critical=True))
    if key_usage is not None:
        b = b.add_extension(key_usage, critical=True)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(_general_names(sans)),
                            critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(pub),
                        critical=False)
    if aki_from is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_from),
            critical=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return b.sign(signer_key, _sign_alg(signer_key, hash_name))


_CA_KU = x509.KeyUsage(digital_signature=True, content_commitment=False,
                       key_encipherment=False, data_encipherment=False,
                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False)


def _leaf_ku(key):
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                         data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


def make_ca(cn="moat test root CA", key_type="ec256", days=3650,
            hash_name="sha256", not_before=None, not_after=None):
    key = make_key(key_type)
    name = _name(cn)
    nb = not_before or utcnow() - datetime.timedelta(days=1)
    na = not_after or nb + datetime.timedelta(days=days)
    cert = _build(name, name, key.public_key(), key, not_before=nb,
                  not_after=na, ca=True, key_usage=_CA_KU, hash_name=hash_name)
    return Issued(cert, key, None)


def make_intermediate(issuer, cn="moat test intermediate CA", key_type="ec256",
                      days=1825, hash_name="sha256", not_before=None,
                      not_after=None, key=None):
    key = key or make_key(key_type)
    nb = not_before or utcnow() - datetime.timedelta(days=1)
    na = not_after or nb + datetime.timedelta(days=days)
    cert = _build(_name(cn), issuer.cert.subject, key.public_key(), issuer.key,
                  not_before=nb, not_after=na, ca=True, path_len=0,
                  key_usage=_CA_KU, hash_name=hash_name,
                  aki_from=issuer.key.public_key())
    return Issued(cert, key, issuer)


DEFAULT_EKU = (SERVER_AUTH, CLIENT_AUTH)


def make_leaf(issuer=None, sans=(), cn=None, key_type="ec256", eku=DEFAULT_EKU,
              days=365, not_before=None, not_after=None, hash_name="sha256",
              expired=False, not_yet_valid=False, key=None, key_usage=True):
    """A leaf certificate.

    issuer=None makes it self-signed.  eku=None leaves the extension out.
    expired / not_yet_valid move the validity window to the past / future.
    """
    key = key or make_key(key_type)
    now = utcnow()
    if expired:
        not_before = now - datetime.timedelta(days=30)
        not_after = now - datetime.timedelta(days=1)
    elif not_yet_valid:
        not_before = now + datetime.timedelta(days=1)
        not_after = now + datetime.timedelta(days=366)
    nb = not_before or now - datetime.timedelta(minutes=5)
    na = not_after or nb + datetime.timedelta(days=days)
    if cn is None:
        dns = [s[4:] for s in sans if s.startswith("DNS:") and "*" not in s]
        cn = dns[0] if dns else "moat test leaf"
    subject = _name(cn)
    if issuer is None:
        signer_key, issuer_name, aki = key, subject, None
    else:
        signer_key, issuer_name = issuer.key, issuer.cert.subject
        aki = issuer.key.public_key()
    cert = _build(subject, issuer_name, key.public_key(), signer_key,
                  not_before=nb, not_after=na, ca=False, sans=list(sans),
                  eku=eku, key_usage=_leaf_ku(key) if key_usage else None,
                  hash_name=hash_name, aki_from=aki)
    return Issued(cert, key, issuer)


def verify_issued_by(cert, issuer_cert):
    """True if `cert` carries a valid signature by `issuer_cert`'s key and
    names it as issuer.  (cryptography 38 has no verify_directly_issued_by.)"""
    if cert.issuer != issuer_cert.subject:
        return False
    pub = issuer_cert.public_key()
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes,
                       padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def key_description(cert):
    """("EC", 256) / ("RSA", 2048) / ("ED25519", None) of a cert's key."""
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return "EC", pub.curve.key_size, pub.curve.name
    if isinstance(pub, rsa.RSAPublicKey):
        return "RSA", pub.key_size, None
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "ED25519", None, None
    return type(pub).__name__, None, None


def escape_newlines(text):
    """What `sed -z 's/\\n/\\\\n/g'` does: every newline becomes backslash-n."""
    return text.replace("\n", "\\n")


def make_client(ca, cn, o=None, ous=(), l=None, st=None, c=None, sans=(),
                expired=False):
    """A client certificate (EKU clientAuth) from ca with exactly this
    subject (make_leaf sets only CN and a fixed O); sans: DNS names."""
    attrs = []
    if c is not None:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, c))
    if st is not None:
        attrs.append(x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, st))
    if l is not None:
        attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, l))
    if o is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    for ou in ous:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    key = make_key("ec256")
    now = utcnow()
    if expired:
        nb, na = now - datetime.timedelta(days=30), \
            now - datetime.timedelta(days=1)
    else:
        nb, na = now - datetime.timedelta(minutes=5), \
            now + datetime.timedelta(days=30)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name(attrs))
         .issuer_name(ca.cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(nb)
         .not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]),
                        critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca.key.public_key()), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(s) for s in sans]), critical=False)
    cert = b.sign(ca.key, hashes.SHA256())
    return Issued(cert, key, ca)


def make_crl(ca, revoked=()):
    """PEM of a CRL signed by ca revoking the certificates `revoked`."""
    now = utcnow()
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(ca.cert.subject)
         .last_update(now - datetime.timedelta(minutes=5))
         .next_update(now + datetime.timedelta(days=7))
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca.key.public_key()), critical=False)
         .add_extension(x509.CRLNumber(1), critical=False))
    for leaf in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(leaf.cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1))
            .build())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crl = b.sign(ca.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM).decode()
