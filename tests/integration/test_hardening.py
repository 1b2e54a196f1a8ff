"""Hardening (issue 11): each bad input gets a clear error and changes
nothing.

    - weak cipher settings are refused (NULL, anonymous, RC4, 3DES, a
      security level below 2), good ones accepted; a NULL-cipher client
      never gets an unencrypted answer from a database endpoint
    - the default TLS 1.2 lists are AEAD only, on the API, UI and data ports
    - RSA keys above 8192 bits are refused (every handshake signs with it)
    - certificates are stored as parsed and re-encoded: trailing junk is
      dropped, a key field holding more than one key is refused
    - a hostname_mismatch description stays short for 10,000 SANs
    - the EC leaves the cluster CA issues only sign (no keyEncipherment)
    - sign-in: a NUL in the password, emails without case, bounded user
      names, a per-user lockout, an address back-off that failures from
      other addresses cannot flush, and no forged lines in the log
"""

import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import certgen
from moatlib import (ADMIN_EMAIL, assert_error, assert_no_private_key,
                     CERT_NAMES, dns_name, https_request, key_body_fragment,
                     make_bdb, openssl_s_client, Resp, resp_ping, TIME_SCALE,
                     tls_client_context, wait_for)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
# A test-only key, generated once with `openssl genrsa 8320` (generating
# one takes about half a minute).
RSA8320_KEY = os.path.join(DATA, "rsa8320_key.pem")

AEAD_DEFAULTS = {"ECDHE-%s-%s" % (a, c)
                 for a in ("ECDSA", "RSA")
                 for c in ("AES128-GCM-SHA256", "AES256-GCM-SHA384",
                           "CHACHA20-POLY1305")}
CBC_SUITES = ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA")
GOOD_SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"
CIPHER_FIELDS = ("control_cipher_suites", "data_cipher_list")


# -- helpers ------------------------------------------------------------------

def request(n, method, path, body=None, auth=None, authz=None, source=None,
            timeout=60):
    """One HTTPS request to n's API port on a fresh connection, verified
    against ca.pem, from an optional source address, with either
    credentials (auth) or a ready-made Authorization value (authz)."""
    return https_request(n.addr, n.port, method, path, body=body, auth=auth,
                         authz=authz, source=source, cafile=n.ca,
                         servername=n.fqdn, timeout=timeout)


def raw_basic(user, password):
    """Authorization value built from bytes (a NUL stays a NUL)."""
    return "Basic " + base64.b64encode(user + b":" + password).decode()


def ui_sign_in(n, email, password, source=None):
    """POST /ui/session on the UI (cm) port, as the UI's page does."""
    ctx = ssl.create_default_context(cafile=n.ca)
    raw = socket.create_connection((n.addr, n.cm_port), timeout=30,
                                   source_address=(source, 0) if source
                                   else None)
    conn = http.client.HTTPSConnection(n.addr, n.cm_port, context=ctx,
                                       timeout=30)
    try:
        conn.sock = ctx.wrap_socket(raw, server_hostname=n.fqdn)
        conn.auto_open = 0
        conn.request("POST", "/ui/session",
                     body=json.dumps({"email": email, "password": password}),
                     headers={"Host": n.addr, "Connection": "close",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()
        raw.close()


def policy(n):
    r = n.sock("GET", "/v1/cluster")
    assert r.status_code == 200, r.text
    return r.json()


def s_client(addr, port, servername, *args):
    p = openssl_s_client(addr, port, *args, servername=servername)
    return p.returncode == 0 and "BEGIN CERTIFICATE" in p.stdout, p


def tls12_list(cipher_list):
    """The TLS <= 1.2 suites `openssl ciphers -v` expands a list to:
    [(name, mac)]."""
    p = subprocess.run(["openssl", "ciphers", "-v", cipher_list],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] != "TLSv1.3":
            out.append((f[0], [x for x in f if x.startswith("Mac=")][0]))
    return out


def update_cert(n, name, cert_pem, key_pem, via="sock"):
    body = {"name": name, "certificate": cert_pem, "key": key_pem}
    if via == "sock":
        return n.sock("PUT", "/v1/cluster/update_cert", body)
    return n.https("PUT", "/v1/cluster/update_cert", body)


def leaf_for(n, ca, **kw):
    kw.setdefault("sans", certgen.service_sans(n.fqdn, (n.addr,)))
    return certgen.make_leaf(ca, **kw)


def key_usage(cert):
    return cert.extensions.get_extension_for_class(x509.KeyUsage)


def users(n):
    r = n.sock("GET", "/v1/users")
    assert r.status_code == 200, r.text
    return sorted(r.json(), key=lambda u: u["uid"])


def create_user(n, email, password, role="cluster_viewer", name=None):
    body = {"email": email, "password": password, "role": role}
    if name is not None:
        body["name"] = name
    r = n.session.post(n.url("/v1/users"), json=body, timeout=60)
    assert r.status_code in (200, 201), r.text
    return r.json()


def events(n, type_):
    r = n.session.get(n.url("/v1/logs"), timeout=30)
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e.get("type") == type_]


# -- 1. weak cipher settings --------------------------------------------------

@pytest.fixture(scope="module")
def db_port(db_ro_node):
    """A TLS database on the module's read-only node."""
    return make_bdb(db_ro_node, tls=True)["port"]


# (value, what the description must name)
WEAK_LISTS = [
    ("ALL:@SECLEVEL=0", ["@SECLEVEL=0"]),
    ("ECDHE-ECDSA-NULL-SHA", ["ECDHE-ECDSA-NULL-SHA", "NULL"]),
    ("aNULL", ["anonymous"]),
    ("ADH-AES256-GCM-SHA384", ["ADH-AES256-GCM-SHA384", "anonymous"]),
    ("RC4-SHA", ["RC4"]),
    ("RC4", ["RC4"]),
    ("DES-CBC3-SHA", ["DES"]),
    ("ALL", ["anonymous"]),
    ("ECDHE+AESGCM:@SECLEVEL=1", ["@SECLEVEL=1"]),
    (GOOD_SUITE + ":@SECLEVEL=0", ["@SECLEVEL=0"]),
]


@pytest.mark.parametrize("field", CIPHER_FIELDS)
@pytest.mark.parametrize("value,named", WEAK_LISTS,
                         ids=[v for v, _ in WEAK_LISTS])
def test_weak_cipher_list_refused(db_ro_node, db_port, field, value, named):
    n = db_ro_node
    before = n.snapshot()
    for r in (n.sock("PUT", "/v1/cluster", {field: value}),
              n.https("PUT", "/v1/cluster", {field: value})):
        body = assert_error(r, 400, "invalid_cipher_list")
        d = body["description"]
        for word in named:
            assert word in d, "description does not name %r: %r" % (word, d)
    assert n.snapshot() == before


def test_null_cipher_client_gets_nothing(db_ro_node, db_port):
    """After the NULL attempt (refused above, and again here), a TLS 1.2
    client that offers only ECDHE-ECDSA-NULL-SHA never gets a PONG."""
    n = db_ro_node
    assert_error(n.sock("PUT", "/v1/cluster",
                        {"data_cipher_list": "ECDHE-ECDSA-NULL-SHA"}),
                 400, "invalid_cipher_list")
    assert "NULL" not in policy(n)["data_cipher_list"]

    def refusals():
        return len(re.findall(r"db:\d+: TLS handshake failed: .*no shared "
                              r"cipher", n.log))
    seen = refusals()
    got = null_client_ping(n, db_port, "ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0")
    assert not isinstance(got, bytes), "answered over a NULL cipher: %r" % got
    assert isinstance(got, ssl.SSLError), repr(got)
    # The client did offer the suite; the endpoint found none in common.
    assert wait_for(lambda: refusals() > seen, 5), n.log[-2000:]
    # The same client with an AEAD suite gets the PONG.
    assert null_client_ping(n, db_port, GOOD_SUITE) == b"+PONG\r\n"


def null_client_ping(n, port, ciphers):
    """PING over TLS 1.2 offering only `ciphers`: the answer (bytes), or
    the exception the handshake raised."""
    ctx = tls_client_context(max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(ciphers)
    try:
        with socket.create_connection((n.addr, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=dns_name(n, port)) as t:
                return resp_ping(t)
    except (ssl.SSLError, OSError) as ex:
        return ex


@pytest.mark.parametrize("value", ["ECDHE+AESGCM",
                                   GOOD_SUITE + ":@SECLEVEL=2"])
def test_good_cipher_list_accepted(node, value):
    n = node
    for field in CIPHER_FIELDS:
        r = n.sock("PUT", "/v1/cluster", {field: value})
        assert r.status_code == 200, r.text
        assert r.json()[field] == value
        assert policy(n)[field] == value
    ok, p = s_client(n.addr, n.port, n.fqdn, "-tls1_2", "-cipher", GOOD_SUITE)
    assert ok, p.stdout + p.stderr


# -- 2. default TLS 1.2 lists: AEAD only -------------------------------------

def test_default_tls12_lists_are_aead_only(db_ro_node, db_port):
    n = db_ro_node
    pol = policy(n)
    for field in CIPHER_FIELDS:
        names = set(pol[field].split(":"))
        assert names == AEAD_DEFAULTS, (field, pol[field])
        assert "CBC" not in pol[field]
        expanded = tls12_list(pol[field])
        assert expanded, pol[field]
        assert all(mac == "Mac=AEAD" for _, mac in expanded), expanded
    ports = [("api", n.port, n.fqdn), ("cm", n.cm_port, n.fqdn),
             ("db", db_port, dns_name(n, db_port))]
    for what, port, sni in ports:
        for suite in CBC_SUITES:
            ok, p = s_client(n.addr, port, sni, "-tls1_2", "-cipher", suite)
            assert not ok, "%s port negotiated CBC suite %s:\n%s" % (
                what, suite, p.stdout)
        ok, p = s_client(n.addr, port, sni, "-tls1_2", "-cipher", GOOD_SUITE)
        assert ok, "%s port: %s\n%s" % (what, p.stdout, p.stderr)
        assert GOOD_SUITE in p.stdout


# -- 3-5. certificates --------------------------------------------------------

@pytest.fixture(scope="module")
def hard_ca():
    return certgen.make_ca("hardening test CA")


class _PublicOnly:
    """Stands in for a private key where make_leaf only needs the public
    half (the issuer signs): loading an 8320-bit private key with
    cryptography checks it, which takes about ten seconds."""

    def __init__(self, pub):
        self.pub = pub

    def public_key(self):
        return self.pub


def test_rsa_above_8192_bits_refused(ro_node, hard_ca):
    n = ro_node
    with open(RSA8320_KEY) as f:
        key_pem = f.read()
    p = subprocess.run(["openssl", "pkey", "-pubout"], input=key_pem,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    pub = serialization.load_pem_public_key(p.stdout.encode())
    assert pub.key_size == 8320
    leaf = leaf_for(n, hard_ca, key=_PublicOnly(pub))
    before = n.snapshot()
    for via in ("sock", "https"):
        r = update_cert(n, "api", leaf.cert_pem, key_pem, via)
        body = assert_error(r, 400, "weak_key")
        assert "8192" in body["description"], body
        assert "8320" in body["description"], body
        assert key_body_fragment(key_pem) not in r.text
    assert n.snapshot() == before


def test_rsa_4096_accepted(node, hard_ca):
    n = node
    leaf = leaf_for(n, hard_ca, key_type="rsa4096")
    r = update_cert(n, "api", leaf.cert_pem, leaf.key_pem, "https")
    assert r.status_code == 200, r.text
    assert r.json()["fingerprint_sha256"] == leaf.fingerprint
    info = n.cert_info("api")
    assert (info["key_type"], info["key_bits"]) == ("RSA", 4096)
    assert n.served_fp() == leaf.fingerprint


JUNK = "\ntrailing junk that must not be served\n"


def test_trailing_junk_after_certificate_dropped(node, hard_ca):
    n = node
    for name in ("api", "proxy"):
        leaf = leaf_for(n, hard_ca)
        r = update_cert(n, name, leaf.cert_pem + JUNK, leaf.key_pem)
        assert r.status_code == 200, r.text
        assert r.json()["fingerprint_sha256"] == leaf.fingerprint
        r = n.sock("GET", "/v1/cluster/certificates")
        assert r.status_code == 200, r.text
        pem = r.json()["%s_cert" % name]
        assert "junk" not in pem, pem
        assert certgen.fingerprint(pem) == leaf.fingerprint
        assert pem.rstrip().endswith("-----END CERTIFICATE-----"), pem
        with open(n.cert_file(name)) as f:
            on_disk = f.read()
        assert "junk" not in on_disk, on_disk
        assert certgen.fingerprint(on_disk) == leaf.fingerprint
        with open(n.key_file(name)) as f:
            key = certgen.load_key(f.read())
        assert certgen.public_key_der(key) == certgen.public_key_der(leaf.cert)
    assert "junk" not in n.log


def _two_keys(leaf):
    return leaf.key_pem + certgen.key_to_pem(certgen.make_key())


def _key_then_junk(leaf):
    return leaf.key_pem + JUNK


def _key_then_cert(leaf):
    return leaf.key_pem + leaf.cert_pem


@pytest.mark.parametrize("make_key_field", [_two_keys, _key_then_junk,
                                            _key_then_cert],
                         ids=["two_keys", "key_then_junk", "key_then_cert"])
def test_key_field_with_more_than_one_key_refused(ro_node, hard_ca,
                                                  make_key_field):
    n = ro_node
    leaf = leaf_for(n, hard_ca)
    key_field = make_key_field(leaf)
    before = n.snapshot()
    for via in ("sock", "https"):
        r = update_cert(n, "api", leaf.cert_pem, key_field, via)
        assert_error(r, 400, "invalid_pem")
        assert key_body_fragment(leaf.key_pem) not in r.text
    r = n.sock("PUT", "/v1/cluster/certificates", {"certificates": [
        {"name": "api", "certificate": leaf.cert_pem, "key": key_field}]})
    assert_error(r, 400, "invalid_pem")
    assert n.snapshot() == before


def test_ten_thousand_sans_short_error(ro_node, hard_ca):
    n = ro_node
    sans = ["DNS:h%05d.elsewhere.example" % i for i in range(10000)]
    leaf = certgen.make_leaf(hard_ca, sans=sans, cn="h00000.elsewhere.example")
    before = n.snapshot()
    for via in ("sock", "https"):
        body = assert_error(update_cert(n, "api", leaf.cert_pem, leaf.key_pem,
                                        via), 400, "hostname_mismatch")
        d = body["description"]
        assert len(d) < 2000, "description of %d characters" % len(d)
        m = re.search(r"and (\d+) more", d)
        assert m, d
        assert 9900 <= int(m.group(1)) < 10000, d
        assert "h00000.elsewhere.example" in d, d
    assert n.snapshot() == before


# -- 6. issued EC leaves sign only --------------------------------------------

def _check_sign_only(pem, what):
    cert = certgen.load_pem_chain(pem)[0]
    assert certgen.key_description(cert)[0] == "EC", what
    ext = key_usage(cert)
    ku = ext.value
    assert ku.digital_signature is True, what
    assert ku.key_encipherment is False, what
    assert ku.data_encipherment is False and ku.key_agreement is False, what
    assert ku.key_cert_sign is False, what
    assert ext.critical, what


def test_issued_ec_leaves_sign_only(node):
    n = node
    r = n.session.get(n.url("/v1/cluster/certificates"), timeout=30)
    assert r.status_code == 200, r.text
    pems = r.json()
    for name in CERT_NAMES:
        assert n.cert_info(name)["issued_by_cluster_ca"] is True
        _check_sign_only(pems["%s_cert" % name], name)
        with open(n.cert_file(name)) as f:
            _check_sign_only(f.read(), name + " file")
    _check_sign_only(ssl.DER_cert_to_PEM_cert(n.served_der()), "served api")

    old = n.cert_info("proxy")["fingerprint_sha256"]
    r = n.sock("POST", "/v1/cluster/certificates/rotate", {"name": "proxy"})
    assert r.status_code == 200, r.text
    new = n.cert_info("proxy")["fingerprint_sha256"]
    assert new != old
    r = n.session.get(n.url("/v1/cluster/certificates"), timeout=30)
    pem = r.json()["proxy_cert"]
    assert certgen.fingerprint(pem) == new
    _check_sign_only(pem, "rotated proxy")
    with open(n.cert_file("proxy")) as f:
        _check_sign_only(f.read(), "rotated proxy file")


# -- 7. sign-in -----------------------------------------------------------------

def test_password_with_nul_refused(node):
    n = node
    pw = n.password.encode()
    r = request(n, "GET", "/v1/cluster",
                authz=raw_basic(n.email.encode(), pw + b"\x00anything"))
    assert_error(r, 401, "unauthorized")
    # The prefix before the NUL is the right password: still refused, as a
    # plain wrong password would be, and the right one works.
    r = request(n, "GET", "/v1/cluster", authz=raw_basic(n.email.encode(),
                                                          pw + b"\x00"))
    assert_error(r, 401, "unauthorized")
    r = request(n, "GET", "/v1/cluster", authz=raw_basic(n.email.encode(), pw))
    assert r.status_code == 200, r.text
    # The UI's sign-in (JSON) cannot carry one either.
    for bad in (n.password + "\u0000anything", n.password + "\u0000"):
        r = ui_sign_in(n, n.email, bad)
        assert r.status_code in (400, 401), r.text
    assert ui_sign_in(n, n.email, n.password).status_code == 200


def test_emails_compare_without_case(node):
    n = node
    before = users(n)
    for email in (ADMIN_EMAIL.upper(), "Admin@Example.COM"):
        r = n.session.post(n.url("/v1/users"), json={
            "email": email, "password": "another-pass-1",
            "role": "admin"}, timeout=60)
        assert_error(r, 409, "email_already_exists")
    assert users(n) == before
    r = request(n, "GET", "/v1/cluster", auth=(ADMIN_EMAIL.upper(),
                                               n.password))
    assert r.status_code == 200, r.text
    # A user created in mixed case signs in in any case; changing another
    # user's email to the admin's, differently cased, is refused too.
    u = create_user(n, "Mixed.Case@Example.com", "mixed-case-pass-1")
    for e in ("mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM"):
        r = request(n, "GET", "/v1/cluster", auth=(e, "mixed-case-pass-1"))
        assert r.status_code == 200, (e, r.text)
    r = n.session.put(n.url("/v1/users/%d" % u["uid"]),
                      json={"email": ADMIN_EMAIL.upper()}, timeout=60)
    assert_error(r, 409, "email_already_exists")


def test_user_name_bounded(node):
    n = node
    u = create_user(n, "named@example.com", "named-password-1", name="Named")
    before = users(n)
    path = "/v1/users/%d" % u["uid"]
    for name in ("x" * 100000, "x" * 257, "two\nlines", "cr\rhere",
                 "esc\x1b[31m"):
        r = n.session.post(n.url("/v1/users"), json={
            "email": "other@example.com", "password": "other-password-1",
            "role": "cluster_viewer", "name": name}, timeout=60)
        assert_error(r, 400, "invalid_schema")
        assert len(r.text) < 2000, len(r.text)
        r = n.session.put(n.url(path), json={"name": name}, timeout=60)
        assert_error(r, 400, "invalid_schema")
        assert len(r.text) < 2000, len(r.text)
    assert users(n) == before
    long_ok = "N" * 256
    v = create_user(n, "long@example.com", "long-password-1", name=long_ok)
    assert v["name"] == long_ok
    r = n.session.put(n.url(path), json={"name": "é" * 100 + "Z" * 56},
                      timeout=60)
    assert r.status_code == 200, r.text
    r = n.session.get(n.url(path), timeout=30)
    assert r.json()["name"] == "é" * 100 + "Z" * 56


def test_per_user_lockout(node):
    n = node
    email, pw = "locked@example.com", "locked-password-1"
    u = create_user(n, email, pw)
    for i in range(5):
        r = request(n, "GET", "/v1/cluster", auth=(email, "wrong-pass-%d" % i),
                    source="127.0.0.%d" % (10 + i))
        assert_error(r, 401, "unauthorized")
    # The right password, from an address that never failed.
    r = request(n, "GET", "/v1/cluster", auth=(email, pw), source="127.0.0.20")
    body = assert_error(r, 429, "too_many_failed_logins")
    assert "minute" in body["description"], body
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) > 60, r.headers
    # The lock is the user's, whatever the case of the name.
    r = request(n, "GET", "/v1/cluster", auth=(email.upper(), pw),
                source="127.0.0.21")
    assert_error(r, 429, "too_many_failed_logins")
    ev = events(n, "user_locked")
    assert [e for e in ev if e.get("user") == email], ev
    # Another user is not affected, from any address.
    for src in (None, "127.0.0.10", "127.0.0.20"):
        r = request(n, "GET", "/v1/cluster", auth=n.creds, source=src)
        assert r.status_code == 200, (src, r.text)
    # An admin's new password ends the lock at once.
    new_pw = "unlocked-password-2"
    r = n.session.put(n.url("/v1/users/%d" % u["uid"]),
                      json={"password": new_pw}, timeout=60)
    assert r.status_code == 200, r.text
    r = request(n, "GET", "/v1/cluster", auth=(email, new_pw),
                source="127.0.0.22")
    assert r.status_code == 200, r.text
    assert_no_private_key(n.log)
    assert pw not in n.log and new_pw not in n.log


def test_address_backoff_cannot_be_flushed(node):
    """Five failures block 127.0.0.30; one failure from each of 300 other
    addresses (more than the 256 entries the table used to keep, oldest
    evicted first) must not push that block out.

    The 300 failures carry a NUL in the password: refused before any hash
    is computed (each still counts against its address, checked at the
    end), so that all 300 fit in the 4 s of the first delay; wrong
    passwords would each cost an argon2 hash (about 12 s for 300 here)."""
    n = node
    blocked = "127.0.0.30"
    for i in range(5):
        r = request(n, "GET", "/v1/cluster",
                    auth=("nobody-%d@example.com" % i, "wrong-password-1"),
                    source=blocked)
        assert_error(r, 401, "unauthorized")
    r = request(n, "GET", "/v1/cluster", auth=n.creds, source=blocked)
    assert_error(r, 429, "too_many_failed_logins")
    # A slow (sanitizer) build: lengthen the block first (each failure
    # after it ran out doubles the delay), so that the 300 fit in it.
    extra = 5
    while int(r.headers["Retry-After"]) < 3 * TIME_SCALE:
        time.sleep(int(r.headers["Retry-After"]) + 0.3)
        r = request(n, "GET", "/v1/cluster", source=blocked,
                    auth=("nobody-%d@example.com" % extra, "wrong-password-1"))
        assert_error(r, 401, "unauthorized")
        extra += 1
        r = request(n, "GET", "/v1/cluster", auth=n.creds, source=blocked)
        assert_error(r, 429, "too_many_failed_logins")
    until = time.monotonic() + int(r.headers["Retry-After"]) - 0.5

    others = ["127.0.%d.%d" % (1 + i // 250, 1 + i % 250) for i in range(300)]

    def fail_from(i, src=None):
        r = request(n, "GET", "/v1/cluster", source=src or others[i],
                    authz=raw_basic(b"flush-%d@example.com" % i,
                                    b"wrong-password-1\x00x"))
        return r.status_code if r.status_code != 401 else 401

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as ex:
        results = list(ex.map(fail_from, range(len(others))))
    took = time.monotonic() - t0
    assert results == [401] * len(others), [x for x in results if x != 401][:5]
    assert time.monotonic() < until, (
        "the 300 failures took %.1f s, longer than the back-off: "
        "inconclusive" % took)
    r = request(n, "GET", "/v1/cluster", auth=n.creds, source=blocked)
    body = assert_error(r, 429, "too_many_failed_logins")
    assert blocked in body["description"], body
    # The admin was never locked: from another address it signs in.
    r = request(n, "GET", "/v1/cluster", auth=n.creds, source="127.0.0.31")
    assert r.status_code == 200, r.text
    # Each of those failures did count against its address: four more
    # from the first one make five, and it is held back.
    for _ in range(4):
        assert fail_from(0) == 401
    r = request(n, "GET", "/v1/cluster", auth=n.creds, source=others[0])
    assert_error(r, 429, "too_many_failed_logins")


def test_user_name_cannot_forge_log_lines(node):
    n = node
    # (Basic auth ends the name at the first colon: the forged line
    # mimics "2026 moatd audit" without one.)
    forged = "2026 moatd audit"
    name = "mallory@example.com\n" + forged + " forged sign-in ok\x1b[2K\r"
    r = request(n, "GET", "/v1/cluster", auth=(name, "wrong-password-1"),
                source="127.0.0.40")
    assert_error(r, 401, "unauthorized")
    assert wait_for(lambda: "mallory@example.com?" + forged in n.log, 5), \
        n.log[-3000:]
    # The UI's sign-in takes the name as JSON: a colon is no problem there.
    forged_ui = "2026 moatd audit: forged"
    r = ui_sign_in(n, "trudy@example.com\n" + forged_ui +
                   " sign-in ok\x1b[2K\r\u2028", "wrong-password-1",
                   source="127.0.0.41")
    assert_error(r, 401, "unauthorized")
    assert wait_for(lambda: "trudy@example.com?" + forged_ui in n.log, 5), \
        n.log[-3000:]
    with open(n.log_path, "rb") as f:
        log = f.read()
    # Read as bytes: a text read would take a lone CR for a line break.
    assert b"\r" not in log and b"\x1b" not in log, log[-3000:]
    assert not [l for l in log.split(b"\n")
                if l.startswith(forged.encode())], log[-3000:]
    ev = [e for e in events(n, "failed_sign_in")
          if e.get("peer") in ("127.0.0.40", "127.0.0.41")]
    assert ev, events(n, "failed_sign_in")
    for e in ev:
        assert all(0x20 <= ord(c) < 0x7f for c in e["user"]), e


def test_an_error_about_cut_unicode_still_answers_json(node):
    """An error message that quotes a client's text cut at a fixed length
    may end inside a UTF-8 character: the answer is still JSON with an
    error_code and a description (the bytes it cannot carry are '?')."""
    n = node
    field = "a" * 63 + "\u00e9\u00e9"
    r = n.https("PUT", "/v1/ocsp", {field: 1})
    body = assert_error(r, 400, "invalid_schema")
    assert body["description"].startswith("unknown field"), body
