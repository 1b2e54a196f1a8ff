"""Certificate sign-in to the REST API and the UI (RS 7.8 style).

    mtls_trusted_ca                      key-less CA bundle (update_cert /
                                         certificates endpoints)
    mtls_certificate_authentication      the API and cm ports ask for and
                                         accept client certificates
    mtls_client_cert_subject_validation_type / mtls_authorized_subjects
    mtls_crl                             revocation, checked per request
    control_plane_basic_authentication   passwords on or off (with the
                                         admin_lockout guard rails)
    users with auth_method certificate   signed in by certificate_subject_line

Real moatd processes, real TLS clients (requests, http.client, openssl
s_client) with certificates issued here.  Every check runs per request
against the settings of that moment, so the tests change a setting and
look at the very next request, on the same connection where it matters.
"""

import datetime
import json
import os
import ssl

import requests

import certgen
from moatlib import (assert_error, assert_no_private_key, https_request,
                     KeepAlive, make_cluster, openssl_s_client,
                     served_cert_der, tls_client_context, wait_for, write_pair)

CA_NAME = "mtls_trusted_ca"
MTLS_FIELDS = {"mtls_certificate_authentication": False,
               "mtls_client_cert_subject_validation_type": "disabled",
               "mtls_authorized_subjects": [],
               "mtls_crl": "",
               "control_plane_basic_authentication": True}
APPLY_TIMEOUT = 10.0


# -- certificates and CRLs ----------------------------------------------------

# Client certificates and CRLs: certgen's.
issue = certgen.make_client
make_crl = certgen.make_crl


# -- clients ------------------------------------------------------------------

def api(n, method, path, pair=None, body=None, auth=None, port=None):
    """One request on a fresh TLS connection to n's API port (or `port`),
    presenting the client certificate `pair` and, when auth is given, HTTP
    Basic credentials.  The server name is the cluster's FQDN (a joined
    node's certificate need not name its address).  Returns a Resp."""
    r = https_request(n.addr, port or n.port, method, path, body=body,
                      auth=auth, cafile=n.ca, servername=n.fqdn, pair=pair)
    assert_no_private_key(r.text)
    return r


def cm(n, method, path, pair=None, body=None, cookie=None, csrf=None):
    """One request to n's UI (cm) port."""
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if csrf:
        headers["X-CSRF-Token"] = csrf
    kw = dict(cert=pair, verify=n.ca, headers=headers, timeout=30)
    if body is not None:
        kw["json"] = body
    r = requests.request(method, "https://%s:%d%s" % (n.addr, n.cm_port,
                                                      path), **kw)
    assert_no_private_key(r.text)
    return r


def session_cookie(r):
    """"moat_session=<token>" out of a sign-in answer's Set-Cookie."""
    sc = r.headers.get("Set-Cookie") or ""
    assert sc.startswith("moat_session="), \
        "want a moat_session cookie, got Set-Cookie %r" % sc
    return sc.split(";")[0]


def wait_cm(n):
    """Until the cm port completes a TLS handshake."""
    def up():
        try:
            return served_cert_der(n.addr, n.cm_port, n.fqdn, timeout=2)
        except (OSError, ssl.SSLError):
            return None
    assert wait_for(up, APPLY_TIMEOUT, 0.1), \
        "nothing serves TLS on the cm port %s:%d" % (n.addr, n.cm_port)


def cert_ctx(n, pair):
    ctx = tls_client_context(cafile=n.ca)
    ctx.load_cert_chain(*pair)
    return ctx


# -- settings -----------------------------------------------------------------

def ok(r, what):
    assert r.status_code == 200, "%s: want 200, got %d: %s" % (
        what, r.status_code, r.text[:2000])
    assert_no_private_key(r.text)
    return r.json()


def set_ca(n, pem):
    return ok(n.https("PUT", "/v1/cluster/update_cert",
                      {"name": CA_NAME, "certificate": pem}),
              "PUT update_cert mtls_trusted_ca")


def put_cluster(n, body, via="api"):
    r = (n.sock("PUT", "/v1/cluster", body) if via == "sock"
         else n.https("PUT", "/v1/cluster", body))
    return ok(r, "PUT /v1/cluster %s" % json.dumps(body)[:300])


def cluster(n):
    return ok(n.sock("GET", "/v1/cluster"), "GET /v1/cluster")


def add_cert_user(n, email, subject, role="admin"):
    r = n.https("POST", "/v1/users", {"email": email, "role": role,
                                      "auth_method": "certificate",
                                      "certificate_subject_line": subject})
    return ok(r, "POST /v1/users certificate user %s" % email)


def wait_cert_in(n, pair, port=None):
    """Until `pair` signs in on n's API port (sign-in by certificate was
    just turned on); the last answer on failure."""
    last = [None]

    def check():
        try:
            last[0] = api(n, "GET", "/v1/cluster", pair, port=port)
        except (OSError, ssl.SSLError) as ex:
            last[0] = ex
            return False
        return last[0].status_code == 200
    assert wait_for(check, APPLY_TIMEOUT, 0.1), \
        "certificate sign-in to %s:%d never worked: %r %s" % (
            n.addr, port or n.port, last[0],
            getattr(last[0], "text", "")[:1000])


class Setup:
    """A node with mtls_trusted_ca = ca, certificate users alice (admin,
    "CN=alice, O=Example") and vera (db_viewer, "CN=vera, O=Example"),
    and mtls_certificate_authentication on."""

    def __init__(self, n, ca=None):
        self.n = n
        self.ca = ca or certgen.make_ca("moat mtls test CA")
        self.alice = issue(self.ca, "alice", o="Example")
        self.vera = issue(self.ca, "vera", o="Example")
        self.alice_pair = write_pair(n, self.alice, "alice")
        self.vera_pair = write_pair(n, self.vera, "vera")
        set_ca(n, self.ca.cert_pem)
        self.alice_user = add_cert_user(n, "alice@example.com",
                                        "CN=alice, O=Example")
        self.vera_user = add_cert_user(n, "vera@example.com",
                                       "CN=vera, O=Example", role="db_viewer")
        put_cluster(n, {"mtls_certificate_authentication": True})
        wait_cert_in(n, self.alice_pair)


def refused(r, why, what):
    """401 unauthorized whose description contains `why`."""
    body = assert_error(r, 401, "unauthorized")
    assert why in body["description"], \
        "%s: description should say %r, got %r" % (what, why,
                                                    body["description"])
    return body


# -- mtls_trusted_ca ----------------------------------------------------------

def test_defaults(node):
    """A new cluster: the five fields at their defaults, no trusted CA."""
    c = cluster(node)
    for k, v in MTLS_FIELDS.items():
        assert k in c, "GET /v1/cluster lacks %s: %s" % (k, sorted(c))
        assert c[k] == v, "%s: want default %r, got %r" % (k, v, c[k])
    certs = ok(node.https("GET", "/v1/cluster/certificates"),
               "GET certificates")
    assert CA_NAME + "_cert" not in certs, certs.keys()
    assert_error(node.https("GET", "/v1/cluster/certificates/" + CA_NAME),
                 404, "unknown_certificate")
    assert_error(node.https("DELETE", "/v1/cluster/certificates/" + CA_NAME),
                 404, "unknown_certificate")
    users = ok(node.https("GET", "/v1/users"), "GET /v1/users")
    assert [u.get("auth_method") for u in users] == ["regular"], users


def test_trusted_ca_set_describe_delete(node):
    """update_cert without a key stores the CA bundle; it shows in the
    certificate list and its description; DELETE removes it; the
    certificates endpoint takes it on its own too."""
    n = node
    root = certgen.make_ca("moat mtls root A")
    other = certgen.make_ca("moat mtls root B")
    bundle = root.cert_pem + other.cert_pem
    j = set_ca(n, bundle)
    assert j["name"] == CA_NAME, j
    fps = [c.get("fingerprint_sha256") for c in j["certificates"]]
    assert fps == [root.fingerprint, other.fingerprint], \
        "want both CAs described in order, got %r" % j["certificates"]
    assert [c.get("subject") for c in j["certificates"]] and \
        all("moat mtls root" in str(c.get("subject"))
            for c in j["certificates"]), j["certificates"]
    assert "nodes" in j, j

    certs = ok(n.https("GET", "/v1/cluster/certificates"), "GET certificates")
    got = certgen.load_pem_chain(certs.get(CA_NAME + "_cert", ""))
    assert [certgen.fingerprint(c) for c in got] == fps, \
        "GET /v1/cluster/certificates should hold the bundle as %s_cert: %r"\
        % (CA_NAME, certs.get(CA_NAME + "_cert"))

    d = ok(n.https("GET", "/v1/cluster/certificates/" + CA_NAME), "describe")
    assert d["name"] == CA_NAME and d["in_use"] is False, d
    assert [c["fingerprint_sha256"] for c in d["certificates"]] == fps, d
    assert [certgen.fingerprint(c) for c in
            certgen.load_pem_chain(d["certificate"])] == fps, d

    r = n.https("DELETE", "/v1/cluster/certificates/" + CA_NAME)
    ok(r, "DELETE mtls_trusted_ca")
    assert_error(n.https("GET", "/v1/cluster/certificates/" + CA_NAME),
                 404, "unknown_certificate")
    assert CA_NAME + "_cert" not in ok(
        n.https("GET", "/v1/cluster/certificates"), "GET certificates")

    # The plural endpoint, as the only entry.
    r = n.https("PUT", "/v1/cluster/certificates",
                {"certificates": [{"name": CA_NAME,
                                   "certificate": root.cert_pem}]})
    j = ok(r, "PUT /v1/cluster/certificates mtls_trusted_ca")
    assert "nodes" in j, j
    entries = [c for c in j["certificates"] if c.get("name") == CA_NAME]
    assert len(entries) == 1, j
    assert [c["fingerprint_sha256"] for c in entries[0]["certificates"]] == \
        [root.fingerprint], j
    d = ok(n.https("GET", "/v1/cluster/certificates/" + CA_NAME), "describe")
    assert [c["fingerprint_sha256"] for c in d["certificates"]] == \
        [root.fingerprint], d


def test_trusted_ca_refuses_bad_input(node):
    """Keys, leaves, expired CAs, garbage, too many CAs, and mixing it
    with other certificates are refused, and nothing is stored."""
    n = node
    root = certgen.make_ca("moat mtls root")
    leaf = certgen.make_leaf(root, cn="not a CA")
    past = certgen.utcnow() - datetime.timedelta(days=30)
    expired = certgen.make_ca("moat expired root", not_before=past,
                              not_after=past + datetime.timedelta(days=2))
    put = lambda body: n.https("PUT", "/v1/cluster/update_cert", body)

    assert_error(put({"name": CA_NAME, "certificate": root.cert_pem,
                      "key": root.key_pem}), 400, "invalid_schema")
    assert_error(put({"name": CA_NAME, "certificate": leaf.cert_pem}),
                 400, "invalid_certificate")
    assert_error(put({"name": CA_NAME,
                      "certificate": root.cert_pem + leaf.cert_pem}),
                 400, "invalid_certificate")
    assert_error(put({"name": CA_NAME, "certificate": expired.cert_pem}),
                 406, "certificate_expired")
    assert_error(put({"name": CA_NAME,
                      "certificate": "not a certificate at all"}),
                 400, "invalid_pem")
    many = "".join(certgen.make_ca("moat root %d" % i).cert_pem
                   for i in range(17))
    assert_error(put({"name": CA_NAME, "certificate": many}),
                 400, "invalid_pem")
    # A CA with its key pasted in the PEM text is refused too.
    assert_error(put({"name": CA_NAME,
                      "certificate": root.cert_pem + root.key_pem}),
                 400, "invalid_pem")
    # Not alongside other certificates.
    api_leaf = certgen.make_leaf(root, sans=["DNS:" + n.fqdn])
    assert_error(n.https("PUT", "/v1/cluster/certificates", {"certificates": [
        {"name": CA_NAME, "certificate": root.cert_pem},
        {"name": "api", "certificate": api_leaf.cert_pem,
         "key": api_leaf.key_pem}]}), 400, "invalid_schema")

    assert_error(n.https("GET", "/v1/cluster/certificates/" + CA_NAME),
                 404, "unknown_certificate")
    # 16 CAs is the most, and fine.
    set_ca(n, "".join(certgen.make_ca("moat root %d" % i).cert_pem
                      for i in range(16)))


# -- cluster fields -----------------------------------------------------------

def test_cluster_fields_validation(node):
    """Each field's checks, the consistency rules between them, and the
    values GET /v1/cluster shows once set."""
    n = node
    put = lambda body: n.https("PUT", "/v1/cluster", body)
    before = cluster(n)

    # true needs the trusted CA first.
    assert_error(put({"mtls_certificate_authentication": True}),
                 400, "invalid_configuration")
    for field in ("mtls_certificate_authentication",
                  "control_plane_basic_authentication"):
        for bad in ("true", 1, None, []):
            assert_error(put({field: bad}), 400, "invalid_schema")
    for bad in ("full", "", 3, None):
        assert_error(put({"mtls_client_cert_subject_validation_type": bad}),
                     400, "invalid_schema")
    for typ in ("san_cn", "full_subject"):
        assert_error(put({"mtls_client_cert_subject_validation_type": typ}),
                     400, "invalid_configuration")
        assert_error(put({"mtls_client_cert_subject_validation_type": typ,
                          "mtls_authorized_subjects": []}),
                     400, "invalid_configuration")
    for bad in ({"CN": "x"}, [{"O": "Example"}], [{"CN": "x", "OU": "u"}],
                [{"CN": "x", "XX": "y"}], ["CN=x"], [{"CN": ""}],
                [{"CN": 5}]):
        assert_error(put({"mtls_authorized_subjects": bad}),
                     400, "invalid_schema")
    assert_error(put({"mtls_crl": "-----BEGIN X509 CRL-----\ngarbage\n"
                                  "-----END X509 CRL-----\n"}),
                 400, "invalid_pem")
    assert_error(put({"mtls_crl": 5}), 400, "invalid_schema")
    # Passwords off while certificates are off would lock everyone out.
    assert_error(put({"control_plane_basic_authentication": False}),
                 409, "admin_lockout")
    assert cluster(n) == before, "a refused change changed GET /v1/cluster"

    ca = certgen.make_ca("moat mtls CA")
    crl = make_crl(ca)
    subjects = [{"CN": "alice", "O": "Example", "OU": ["ops", "dev"],
                 "L": "Paris", "ST": "IDF", "C": "FR"}, {"CN": "bob"}]
    put_cluster(n, {"mtls_client_cert_subject_validation_type":
                    "full_subject", "mtls_authorized_subjects": subjects,
                    "mtls_crl": crl})
    c = cluster(n)
    assert c["mtls_client_cert_subject_validation_type"] == "full_subject", c
    assert c["mtls_authorized_subjects"] == subjects, c
    assert c["mtls_crl"].strip() == crl.strip(), c["mtls_crl"]
    assert c["mtls_certificate_authentication"] is False
    assert c["control_plane_basic_authentication"] is True
    # Emptying the subjects while a type needs them is refused.
    assert_error(put({"mtls_authorized_subjects": []}),
                 400, "invalid_configuration")
    put_cluster(n, {"mtls_crl": "",
                    "mtls_client_cert_subject_validation_type": "disabled",
                    "mtls_authorized_subjects": []})
    c = cluster(n)
    for k, v in MTLS_FIELDS.items():
        assert c[k] == v, "%s: want %r back, got %r" % (k, v, c[k])


# -- users --------------------------------------------------------------------

def test_certificate_users(node):
    """Certificate users: created without a password, listed with their
    auth_method and subject line; every inconsistent body is refused."""
    n = node
    alice = add_cert_user(n, "alice@example.com", "CN=alice, O=Example")
    assert alice.get("auth_method") == "certificate", alice
    assert alice.get("certificate_subject_line") == "CN=alice, O=Example", \
        alice
    users = {u["email"]: u for u in ok(n.https("GET", "/v1/users"),
                                       "GET /v1/users")}
    assert users["alice@example.com"]["auth_method"] == "certificate", users
    assert users["alice@example.com"]["certificate_subject_line"] == \
        "CN=alice, O=Example", users
    assert users[n.email]["auth_method"] == "regular", users
    assert "certificate_subject_line" not in users[n.email], users
    for u in users.values():
        assert "password" not in u and "password_hash" not in u, u

    post = lambda body: n.https("POST", "/v1/users", body)
    base = {"email": "x@example.com", "role": "admin"}
    for what, body in (
            ("certificate user with a password",
             dict(base, auth_method="certificate", password="Xx1-long-pass-ok",
                  certificate_subject_line="CN=x")),
            ("certificate user without subject line",
             dict(base, auth_method="certificate")),
            ("subject line without CN",
             dict(base, auth_method="certificate",
                  certificate_subject_line="O=Example, OU=ops")),
            ("subject line that does not parse",
             dict(base, auth_method="certificate",
                  certificate_subject_line="just some words")),
            ("subject line with an empty value",
             dict(base, auth_method="certificate",
                  certificate_subject_line="CN=, O=x")),
            ("unknown auth_method",
             dict(base, auth_method="ldap", certificate_subject_line="CN=x")),
            ("regular user without password",
             dict(base, auth_method="regular")),
            ("regular user (default) without password", dict(base)),
            ("subject line on a regular user",
             dict(base, password="Xx1-long-pass-ok",
                  certificate_subject_line="CN=x"))):
        r = post(body)
        assert r.status_code == 400 and \
            r.json().get("error_code") == "invalid_schema", \
            "%s: want 400 invalid_schema, got %d %s" % (what, r.status_code,
                                                       r.text[:500])
    # The same subject, written otherwise: attribute order, spaces and
    # the case of attribute names do not matter.
    for line in ("O=Example,CN=alice", "  o = Example ,  cn=alice "):
        assert_error(post({"email": "alice2@example.com", "role": "admin",
                           "auth_method": "certificate",
                           "certificate_subject_line": line}),
                     409, "email_already_exists")
    # A different subject is another user.
    add_cert_user(n, "alice2@example.com", "CN=alice, O=Example, OU=ops",
                  role="db_viewer")
    # auth_method cannot change, either way.
    assert_error(n.https("PUT", "/v1/users/%d" % alice["uid"],
                         {"auth_method": "regular"}), 400, "invalid_schema")
    admin_uid = users[n.email]["uid"]
    assert_error(n.https("PUT", "/v1/users/%d" % admin_uid,
                         {"auth_method": "certificate",
                          "certificate_subject_line": "CN=z"}),
                 400, "invalid_schema")
    # A password for a certificate user is refused too.
    assert_error(n.https("PUT", "/v1/users/%d" % alice["uid"],
                         {"password": "Xx1-long-pass-ok"}),
                 400, "invalid_schema")
    # Changing a certificate user's subject line to another's: refused.
    assert_error(n.https("PUT", "/v1/users/%d" % alice["uid"],
                         {"certificate_subject_line":
                          "OU=ops,O=Example,CN=alice"}),
                 409, "email_already_exists")
    after = {u["email"]: u for u in ok(n.https("GET", "/v1/users"), "users")}
    assert sorted(after) == sorted([n.email, "alice@example.com",
                                    "alice2@example.com"]), after
    assert after["alice@example.com"] == users["alice@example.com"], after


def test_certificate_user_has_no_password(node):
    """A certificate user cannot sign in with HTTP Basic, whatever the
    password (the empty one included)."""
    n = node
    add_cert_user(n, "alice@example.com", "CN=alice, O=Example")
    for pw in ("", "Adm1n-password-0k", "alice"):
        r = n.https("GET", "/v1/cluster", auth=("alice@example.com", pw))
        assert_error(r, 401, "unauthorized")
    # The admin still signs in (the failures above did not lock it out).
    ok(n.https("GET", "/v1/cluster"), "admin Basic")


# -- signing in ---------------------------------------------------------------

def test_certificate_signs_in_with_its_role(node):
    """alice (admin) and vera (db_viewer) sign in by certificate alone;
    the role applies."""
    s = Setup(node)
    n = node
    j = ok(api(n, "GET", "/v1/cluster", s.alice_pair), "alice GET cluster")
    assert j["mtls_certificate_authentication"] is True, j
    d = ok(api(n, "GET", "/v1/cluster/certificates/" + CA_NAME, s.alice_pair),
           "describe")
    assert d["in_use"] is True, d
    # The admin may change the cluster and manage users.
    ok(api(n, "PUT", "/v1/cluster", s.alice_pair,
           body={"mtls_crl": make_crl(s.ca)}), "alice PUT cluster")
    ok(api(n, "GET", "/v1/users", s.alice_pair), "alice GET users")
    # The viewer reads, and may not change anything.
    ok(api(n, "GET", "/v1/cluster", s.vera_pair), "vera GET cluster")
    assert_error(api(n, "PUT", "/v1/cluster", s.vera_pair,
                     body={"mtls_crl": ""}), 403, "forbidden")
    assert_error(api(n, "GET", "/v1/users", s.vera_pair), 403, "forbidden")
    # Without any credential: 401.
    assert_error(api(n, "GET", "/v1/cluster"), 401, "unauthorized")


def test_subject_line_matches_as_a_set(node):
    """A full subject (C, ST, L, O, 2 OUs, CN) signs in as the user whose
    subject line names the same pairs in another order, with other
    spacing and attribute names in another case."""
    n = node
    s = Setup(n)
    full = issue(s.ca, "carol", o="Example", ous=("ops", "dev"), l="Paris",
                 st="IDF", c="FR")
    pair = write_pair(n, full, "carol")
    # Not a user yet: refused, and the description quotes the subject.
    r = api(n, "GET", "/v1/cluster", pair)
    body = refused(r, "no user has certificate_subject_line",
                   "unknown subject")
    for part in ("CN=carol", "O=Example", "OU=ops", "OU=dev", "C=FR"):
        assert part in body["description"], \
            "the description should quote the subject (%s): %r" % (
                part, body["description"])
    add_cert_user(n, "carol@example.com",
                  "ou=dev ,  L=Paris,cn=carol, OU=ops,c=FR, o=Example, st=IDF",
                  role="db_viewer")
    ok(api(n, "GET", "/v1/cluster", pair), "carol by set-equal subject")
    # A subset of the pairs is another subject.
    partial = issue(s.ca, "carol", o="Example", ous=("ops", "dev"))
    refused(api(n, "GET", "/v1/cluster", write_pair(n, partial, "partial")),
            "no user has certificate_subject_line", "subset subject")


def test_no_certificate_asked_until_enabled(node):
    """The trusted CA alone does not sign anyone in: the API port asks for
    client certificates only while mtls_certificate_authentication is
    true (openssl s_client names the acceptable CAs only then)."""
    n = node
    ca = certgen.make_ca("moat mtls acceptable CA")
    alice = issue(ca, "alice", o="Example")
    pair = write_pair(n, alice, "alice")
    set_ca(n, ca.cert_pem)
    add_cert_user(n, "alice@example.com", "CN=alice, O=Example")
    assert_error(api(n, "GET", "/v1/cluster", pair), 401, "unauthorized")
    p = openssl_s_client(n.addr, n.port, servername=n.fqdn)
    assert "moat mtls acceptable CA" not in p.stdout, \
        "the API port asks for certificates while sign-in is off:\n" + \
        p.stdout[-3000:]

    put_cluster(n, {"mtls_certificate_authentication": True})
    wait_cert_in(n, pair)
    p = openssl_s_client(n.addr, n.port, servername=n.fqdn)
    out = p.stdout
    assert "Acceptable client certificate CA names" in out, out[-3000:]
    names = out.split("Acceptable client certificate CA names", 1)[1]
    assert "moat mtls acceptable CA" in names.split("---", 1)[0], \
        "the trusted CA's subject should be among the acceptable CA " \
        "names:\n" + names[:2000]

    put_cluster(n, {"mtls_certificate_authentication": False})
    assert wait_for(lambda: api(n, "GET", "/v1/cluster", pair).status_code
                    == 401, APPLY_TIMEOUT, 0.1), \
        "certificate still signs in after mtls_certificate_authentication " \
        "false"
    p = openssl_s_client(n.addr, n.port, servername=n.fqdn)
    assert "moat mtls acceptable CA" not in p.stdout, p.stdout[-3000:]


def test_refusals_say_why(node):
    """Each reason a certificate is refused, in the description."""
    n = node
    s = Setup(n)
    stranger_ca = certgen.make_ca("moat stranger CA")
    untrusted = issue(stranger_ca, "alice", o="Example")
    refused(api(n, "GET", "/v1/cluster", write_pair(n, untrusted, "u")),
            "does not chain to mtls_trusted_ca", "another CA's certificate")
    expired = issue(s.ca, "alice", o="Example", expired=True)
    refused(api(n, "GET", "/v1/cluster", write_pair(n, expired, "x")),
            "expired", "expired certificate")
    nobody = issue(s.ca, "nobody", o="Example")
    body = refused(api(n, "GET", "/v1/cluster", write_pair(n, nobody, "n")),
                   "no user has certificate_subject_line", "no such user")
    assert "CN=nobody" in body["description"], body
    put_cluster(n, {"mtls_client_cert_subject_validation_type": "full_subject",
                    "mtls_authorized_subjects": [{"CN": "vera",
                                                  "O": "Example"}]})
    refused(api(n, "GET", "/v1/cluster", s.alice_pair),
            "not among mtls_authorized_subjects", "subject not authorized")
    ok(api(n, "GET", "/v1/cluster", s.vera_pair), "vera is authorized")
    put_cluster(n, {"mtls_crl": make_crl(s.ca, [s.vera])})
    refused(api(n, "GET", "/v1/cluster", s.vera_pair), "revoked",
            "revoked certificate")
    # None of that touched passwords.
    ok(n.https("GET", "/v1/cluster"), "admin Basic")


def test_basic_credentials_win_over_the_certificate(node):
    """Credentials sent are used instead of the certificate: vera's
    certificate with the admin's password acts as the admin; alice's
    certificate with a wrong password is refused."""
    n = node
    s = Setup(n)
    ok(api(n, "PUT", "/v1/cluster", s.vera_pair, auth=n.creds,
           body={"mtls_crl": ""}), "vera's certificate + admin Basic")
    assert_error(api(n, "GET", "/v1/cluster", s.alice_pair,
                     auth=(n.email, "wrong-password-here")),
                 401, "unauthorized")
    assert_error(api(n, "GET", "/v1/users", s.vera_pair,
                     auth=("vera@example.com", "anything-at-all")),
                 401, "unauthorized")


def test_crl_applies_to_an_open_connection(node):
    """On one keep-alive TLS connection signed in by certificate: a CRL
    revoking it makes the very next request 401; clearing it lets the
    next one in, on the same connection."""
    n = node
    s = Setup(n)
    c = KeepAlive(n.addr, n.port, cert_ctx(n, s.alice_pair), n.fqdn)
    try:
        r = c.request("GET", "/v1/cluster")
        assert r.status_code == 200, r
        put_cluster(n, {"mtls_crl": make_crl(s.ca, [s.alice])}, via="sock")
        r = c.request("GET", "/v1/cluster")
        refused(r, "revoked", "the next request on the same connection")
        put_cluster(n, {"mtls_crl": make_crl(s.ca, [s.vera])}, via="sock")
        r = c.request("GET", "/v1/cluster")
        assert r.status_code == 200, "a CRL not naming alice: %r" % r
        put_cluster(n, {"mtls_crl": make_crl(s.ca, [s.alice])}, via="sock")
        refused(c.request("GET", "/v1/users"), "revoked", "revoked again")
        put_cluster(n, {"mtls_crl": ""}, via="sock")
        r = c.request("GET", "/v1/cluster")
        assert r.status_code == 200, "mtls_crl cleared: %r" % r
        assert c.open and c.requests == 5, "the connection was replaced"
    finally:
        c.close()


def test_authorized_subjects_apply_to_an_open_connection(node):
    """Same with mtls_authorized_subjects, through one requests.Session
    (keep-alive): each request is judged by the subjects of its moment."""
    n = node
    s = Setup(n)
    sess = requests.Session()
    sess.trust_env = False
    sess.verify = n.ca
    sess.cert = s.alice_pair

    def get():
        r = sess.get(n.url("/v1/cluster"), timeout=30)
        assert_no_private_key(r.text)
        return r
    try:
        ok(get(), "first")
        put_cluster(n, {"mtls_client_cert_subject_validation_type": "san_cn",
                        "mtls_authorized_subjects": [{"CN": "vera"}]},
                    via="sock")
        refused(get(), "not among mtls_authorized_subjects", "alice removed")
        put_cluster(n, {"mtls_authorized_subjects": [{"CN": "vera"},
                                                     {"CN": "ALICE"}]},
                    via="sock")
        ok(get(), "alice back (san_cn: CN without case)")
        put_cluster(n, {"mtls_client_cert_subject_validation_type":
                        "full_subject",
                        "mtls_authorized_subjects": [{"CN": "alice",
                                                      "O": "Other"}]},
                    via="sock")
        refused(get(), "not among mtls_authorized_subjects", "O differs")
        put_cluster(n, {"mtls_authorized_subjects": [{"CN": "alice",
                                                      "O": "Example"}]},
                    via="sock")
        ok(get(), "full subject matches")
        put_cluster(n, {"mtls_client_cert_subject_validation_type":
                        "disabled"}, via="sock")
        ok(get(), "subject checks disabled")
        pm = sess.adapters["https://"].poolmanager
        opened = sum(pm.pools[k].num_connections for k in pm.pools.keys())
        assert opened == 1, "want every request on one connection, " \
            "%d were opened" % opened
    finally:
        sess.close()


def test_trusted_ca_change_applies(node):
    """A bundle of two CAs lets both CAs' certificates in; replacing it
    with the second alone refuses the first's at the next request; the
    CA cannot be deleted while sign-in by certificate is on."""
    n = node
    s = Setup(n)
    ca2 = certgen.make_ca("moat mtls second CA")
    bob = issue(ca2, "bob", o="Example")
    bob_pair = write_pair(n, bob, "bob")
    add_cert_user(n, "bob@example.com", "CN=bob, O=Example", role="db_viewer")
    refused(api(n, "GET", "/v1/cluster", bob_pair),
            "does not chain to mtls_trusted_ca", "bob before his CA")
    set_ca(n, s.ca.cert_pem + ca2.cert_pem)
    assert wait_for(lambda: api(n, "GET", "/v1/cluster", bob_pair).status_code
                    == 200, APPLY_TIMEOUT, 0.1), "bob's CA was added"
    ok(api(n, "GET", "/v1/cluster", s.alice_pair), "alice still in")
    set_ca(n, ca2.cert_pem)
    refused(api(n, "GET", "/v1/cluster", s.alice_pair),
            "does not chain to mtls_trusted_ca", "alice's CA removed")
    ok(api(n, "GET", "/v1/cluster", bob_pair), "bob")
    assert_error(n.https("DELETE", "/v1/cluster/certificates/" + CA_NAME),
                 400, "invalid_configuration")
    assert ok(n.https("GET", "/v1/cluster/certificates/" + CA_NAME),
              "describe")["in_use"] is True


def test_certificate_from_an_intermediate_ca(node):
    """Trusted: the root alone.  A certificate issued by an intermediate
    signs in when the client sends the intermediate along; without it,
    it does not chain."""
    n = node
    s = Setup(n)
    inter = certgen.make_intermediate(s.ca, cn="moat mtls intermediate")
    dave = issue(inter, "dave", o="Example")
    add_cert_user(n, "dave@example.com", "CN=dave, O=Example",
                  role="db_viewer")
    alone = write_pair(n, dave, "dave")
    chain = os.path.join(n.tmp, "dave-chain.crt")
    with open(chain, "w") as f:
        f.write(dave.cert_pem + inter.cert_pem)
    j = ok(api(n, "GET", "/v1/cluster", (chain, alone[1])),
           "dave with his chain")
    assert j["mtls_certificate_authentication"] is True
    refused(api(n, "GET", "/v1/cluster", alone),
            "does not chain to mtls_trusted_ca", "dave without the chain")


# -- passwords off ------------------------------------------------------------

def test_basic_off_needs_a_certificate_admin(node):
    """control_plane_basic_authentication false is refused (409
    admin_lockout) until certificates sign in and a certificate admin
    exists."""
    n = node
    ca = certgen.make_ca("moat mtls CA")
    set_ca(n, ca.cert_pem)
    off = {"control_plane_basic_authentication": False}
    assert_error(n.https("PUT", "/v1/cluster", off), 409, "admin_lockout")
    add_cert_user(n, "vera@example.com", "CN=vera", role="db_viewer")
    put_cluster(n, {"mtls_certificate_authentication": True})
    body = assert_error(n.https("PUT", "/v1/cluster", off), 409,
                        "admin_lockout")
    assert "admin" in body["description"], body
    # Both at once, without a certificate admin: still refused.
    put_cluster(n, {"mtls_certificate_authentication": False})
    assert_error(n.https("PUT", "/v1/cluster",
                         dict(off, mtls_certificate_authentication=True)),
                 409, "admin_lockout")
    assert cluster(n)["control_plane_basic_authentication"] is True
    add_cert_user(n, "alice@example.com", "CN=alice", role="admin")
    put_cluster(n, dict(off, mtls_certificate_authentication=True))
    c = cluster(n)
    assert c["control_plane_basic_authentication"] is False, c
    assert c["mtls_certificate_authentication"] is True, c


def test_basic_off_and_recovery(node):
    """Passwords off: Basic and the UI's password sign-in get 401, the
    certificate admin works, every change that would lock the admins out
    is refused, and the control socket turns passwords back on."""
    n = node
    s = Setup(n)
    wait_cm(n)
    ok(api(n, "PUT", "/v1/cluster", s.alice_pair,
           body={"control_plane_basic_authentication": False}),
       "alice turns passwords off")
    r = n.https("GET", "/v1/cluster")
    refused(r, "control_plane_basic_authentication", "Basic while off")
    # Not even a certificate shown along with the password lets Basic in.
    refused(api(n, "GET", "/v1/cluster", s.alice_pair, auth=n.creds),
            "control_plane_basic_authentication", "Basic + certificate")
    r = cm(n, "POST", "/ui/session", body={"email": n.email,
                                           "password": n.password})
    assert_error(r, 401, "unauthorized")
    assert "moat_session" not in (r.headers.get("Set-Cookie") or "")
    ok(api(n, "GET", "/v1/users", s.alice_pair), "alice")

    alice_uid = s.alice_user["uid"]
    assert_error(api(n, "DELETE", "/v1/users/%d" % alice_uid, s.alice_pair),
                 409, "admin_lockout")
    assert_error(api(n, "PUT", "/v1/users/%d" % alice_uid, s.alice_pair,
                     body={"role": "db_viewer"}), 409, "admin_lockout")
    assert_error(api(n, "PUT", "/v1/cluster", s.alice_pair,
                     body={"mtls_certificate_authentication": False}),
                 409, "admin_lockout")
    # Through the socket too: the rule is about the cluster, not the caller.
    assert_error(n.sock("DELETE", "/v1/users/%d" % alice_uid),
                 409, "admin_lockout")
    # A second certificate admin makes the first one removable.
    r = api(n, "POST", "/v1/users", s.alice_pair,
            body={"email": "bob@example.com", "role": "admin",
                  "auth_method": "certificate",
                  "certificate_subject_line": "CN=bob"})
    bob_uid = ok(r, "alice creates bob")["uid"]
    ok(api(n, "PUT", "/v1/users/%d" % bob_uid, s.alice_pair,
           body={"role": "db_viewer"}), "demote bob (alice remains)")
    assert_error(api(n, "PUT", "/v1/users/%d" % alice_uid, s.alice_pair,
                     body={"role": "db_viewer"}), 409, "admin_lockout")
    c = cluster(n)
    assert c["control_plane_basic_authentication"] is False
    assert c["mtls_certificate_authentication"] is True
    users = {u["email"]: u for u in ok(n.sock("GET", "/v1/users"), "users")}
    assert users["alice@example.com"]["role"] == "admin", users

    # Recovery: the local control socket needs no password.
    put_cluster(n, {"control_plane_basic_authentication": True}, via="sock")
    ok(n.https("GET", "/v1/cluster"), "Basic after recovery")
    r = cm(n, "POST", "/ui/session", body={"email": n.email,
                                           "password": n.password})
    ok(r, "UI password sign-in after recovery")
    ok(api(n, "GET", "/v1/cluster", s.alice_pair), "alice still in")
    # With passwords back, the last certificate admin may go.
    ok(n.https("DELETE", "/v1/users/%d" % alice_uid), "delete alice")


def test_trusted_ca_delete_is_a_lockout_while_basic_off(node):
    """With passwords off, DELETE mtls_trusted_ca would lock every admin
    out: 409 admin_lockout (400 invalid_configuration is for passwords
    on), and the CA stays."""
    # DISCREPANCY (C side): moatd answers 400 invalid_configuration here.
    # mtls_ca_delete() (src/moatd/control/mtls.c) calls json_decref(doc)
    # and only then reads control_plane_basic_authentication from doc
    # (a use after free), so the 409 admin_lockout branch is not taken.
    n = node
    s = Setup(n)
    put_cluster(n, {"control_plane_basic_authentication": False}, via="sock")
    r = api(n, "DELETE", "/v1/cluster/certificates/" + CA_NAME, s.alice_pair)
    assert_error(r, 409, "admin_lockout")
    assert_error(n.sock("DELETE", "/v1/cluster/certificates/" + CA_NAME),
                 409, "admin_lockout")
    d = ok(n.sock("GET", "/v1/cluster/certificates/" + CA_NAME), "describe")
    assert d["in_use"] is True, d
    ok(api(n, "GET", "/v1/cluster", s.alice_pair), "alice still in")


# -- the UI -------------------------------------------------------------------

def test_ui_certificate_session(node):
    """POST /ui/session {"certificate": true} on the cm port opens a
    session for the certificate's user; it ends once mtls_crl revokes the
    certificate."""
    n = node
    s = Setup(n)
    wait_cm(n)
    assert_error(cm(n, "POST", "/ui/session", body={"certificate": True}),
                 401, "unauthorized")
    stranger = issue(certgen.make_ca("moat stranger CA"), "alice",
                     o="Example")
    assert_error(cm(n, "POST", "/ui/session", write_pair(n, stranger, "st"),
                    body={"certificate": True}), 401, "unauthorized")

    r = cm(n, "POST", "/ui/session", s.alice_pair, body={"certificate": True})
    j = ok(r, "UI certificate sign-in")
    assert j.get("email") == "alice@example.com", j
    assert j.get("role") == "admin", j
    assert isinstance(j.get("csrf_token"), str) and j["csrf_token"], j
    cookie = session_cookie(r)
    g = ok(cm(n, "GET", "/ui/session", s.alice_pair, cookie=cookie),
           "GET /ui/session")
    assert g.get("email") == "alice@example.com", g
    # A change through the session (CSRF token) works as admin.
    ok(cm(n, "PUT", "/v1/cluster", s.alice_pair, cookie=cookie,
          csrf=j["csrf_token"], body={"mtls_crl": make_crl(s.ca)}),
       "PUT /v1/cluster through the UI session")

    # The viewer gets a viewer's session.
    r = cm(n, "POST", "/ui/session", s.vera_pair, body={"certificate": True})
    assert ok(r, "vera UI sign-in").get("role") == "db_viewer"

    put_cluster(n, {"mtls_crl": make_crl(s.ca, [s.alice])}, via="sock")
    assert_error(cm(n, "GET", "/ui/session", s.alice_pair, cookie=cookie),
                 401, "unauthorized")
    # Ended for good: clearing the CRL does not bring that session back.
    put_cluster(n, {"mtls_crl": ""}, via="sock")
    assert_error(cm(n, "GET", "/ui/session", s.alice_pair, cookie=cookie),
                 401, "unauthorized")
    ok(cm(n, "POST", "/ui/session", s.alice_pair, body={"certificate": True}),
       "sign in again once the CRL is cleared")


def test_ui_password_session_ends_when_basic_off(node):
    n = node
    s = Setup(n)
    wait_cm(n)
    r = cm(n, "POST", "/ui/session", body={"email": n.email,
                                           "password": n.password})
    ok(r, "UI password sign-in")
    cookie = session_cookie(r)
    ok(cm(n, "GET", "/ui/session", cookie=cookie), "password session")
    put_cluster(n, {"control_plane_basic_authentication": False}, via="sock")
    assert_error(cm(n, "GET", "/ui/session", cookie=cookie),
                 401, "unauthorized")
    put_cluster(n, {"control_plane_basic_authentication": True}, via="sock")
    assert_error(cm(n, "GET", "/ui/session", cookie=cookie),
                 401, "unauthorized")
    # A certificate session is not affected by passwords going off.
    r = cm(n, "POST", "/ui/session", s.alice_pair, body={"certificate": True})
    ok(r, "certificate sign-in")
    ccookie = session_cookie(r)
    put_cluster(n, {"control_plane_basic_authentication": False}, via="sock")
    ok(cm(n, "GET", "/ui/session", s.alice_pair, cookie=ccookie),
       "certificate session while passwords are off")


# -- two nodes ----------------------------------------------------------------

def test_two_nodes(make_node, etcd1):
    """Configured through node 1, a certificate signs in on node 2 too,
    and passwords off apply there as well."""
    first, second = make_cluster(make_node, etcd1.url, 2)
    s = Setup(first)
    pair2 = write_pair(second, s.alice, "alice")
    wait_cert_in(second, pair2)
    j = ok(api(second, "GET", "/v1/cluster", pair2), "alice on node 2")
    assert j["mtls_certificate_authentication"] is True, j
    vera2 = write_pair(second, s.vera, "vera")
    assert_error(api(second, "PUT", "/v1/cluster", vera2,
                     body={"mtls_crl": ""}), 403, "forbidden")
    ok(api(second, "GET", "/v1/cluster", auth=second.creds),
       "Basic on node 2 while passwords are on")

    ok(api(first, "PUT", "/v1/cluster", s.alice_pair,
           body={"control_plane_basic_authentication": False}),
       "passwords off through node 1")

    def basic_refused():
        r = api(second, "GET", "/v1/cluster", auth=second.creds)
        return r.status_code == 401
    assert wait_for(basic_refused, APPLY_TIMEOUT, 0.1), \
        "Basic still works on node 2 after passwords went off"
    refused(api(second, "GET", "/v1/cluster", auth=second.creds),
            "control_plane_basic_authentication", "Basic on node 2")
    ok(api(second, "GET", "/v1/users", pair2), "alice on node 2, Basic off")
    # A CRL set through node 2 applies on node 1.
    ok(api(second, "PUT", "/v1/cluster", pair2,
           body={"mtls_crl": make_crl(s.ca, [s.vera])}), "CRL via node 2")
    refused(api(first, "GET", "/v1/cluster", s.vera_pair), "revoked",
            "vera on node 1")
    # Recovery through node 2's socket.
    put_cluster(second, {"control_plane_basic_authentication": True},
                via="sock")
    assert wait_for(lambda: first.https("GET", "/v1/cluster").status_code
                    == 200, APPLY_TIMEOUT, 0.1), "Basic back on node 1"


# -- nothing leaks ------------------------------------------------------------

def test_no_private_key_in_any_answer(node):
    """Every answer about the trusted CA, the cluster and the users is free
    of private keys (the CA's key was never sent; the cluster's own keys
    must not show either)."""
    n = node
    s = Setup(n)
    put_cluster(n, {"mtls_crl": make_crl(s.ca, [s.vera])})
    texts = []
    for path in ("/v1/cluster", "/v1/cluster/certificates",
                 "/v1/cluster/certificates/" + CA_NAME, "/v1/users",
                 "/v1/users/%d" % s.alice_user["uid"]):
        r = api(n, "GET", path, s.alice_pair)
        ok(r, "GET " + path)
        texts.append(r.text)
        texts.append(n.sock("GET", path).text)
    texts.append(n.https("PUT", "/v1/cluster/update_cert",
                         {"name": CA_NAME, "certificate": s.ca.cert_pem,
                          "key": s.ca.key_pem}).text)
    keys = [s.ca.key_pem, s.alice.key_pem, s.vera.key_pem]
    for name in ("api", "cm"):
        if os.path.exists(n.key_file(name)):
            with open(n.key_file(name)) as f:
                keys.append(f.read())
    assert_no_private_key(*texts, keys=keys)
    assert_no_private_key(n.log, keys=keys)


# -- found by review ------------------------------------------------------------

def test_long_subjects_are_never_cut(node):
    """A subject of several hundred bytes signs in whole; one longer than
    moatd reads is refused, never matched by a prefix (a cut subject
    could be another user's line)."""
    n = node
    s = Setup(n)
    ous = tuple("unit-%02d-%s" % (i, "x" * 40) for i in range(12))
    long_ok = issue(s.ca, "dora", o="Example", ous=ous)
    line = "CN=dora, O=Example, " + ", ".join("OU=" + o for o in ous)
    assert len(line) > 600
    add_cert_user(n, "dora@example.com", line)
    ok(api(n, "GET", "/v1/cluster", write_pair(n, long_ok, "dora")),
       "a 600-byte subject")
    # Over 1100 bytes printed: refused, whatever users there are.
    huge = issue(s.ca, "eve", o="Example",
                 ous=tuple("u%02d-%s" % (i, "y" * 60) for i in range(20)))
    refused(api(n, "GET", "/v1/cluster", write_pair(n, huge, "eve")),
            "longer than", "a subject longer than moatd reads")


def test_an_expired_trusted_ca_is_still_described(node):
    """GET describes the stored bundle even after a CA in it expired (it
    was valid when set): the operator sees what is there and why
    sign-in stopped."""
    dt = datetime
    n = node
    now = certgen.utcnow()
    ca = certgen.make_ca("soon expired CA", not_before=now -
                         dt.timedelta(days=1), not_after=now +
                         dt.timedelta(seconds=3))
    set_ca(n, ca.cert_pem)
    assert wait_for(lambda: certgen.utcnow() > now + dt.timedelta(seconds=4),
                    10, 0.2)
    d = ok(n.https("GET", "/v1/cluster/certificates/mtls_trusted_ca"),
           "describe")
    assert len(d["certificates"]) == 1, d
    assert "soon expired CA" in d["certificates"][0]["subject"], d
