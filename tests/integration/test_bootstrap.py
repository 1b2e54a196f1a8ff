"""Cluster creation: the RS create_cluster call, the certificates it makes,
the files it writes, and that all of it survives a restart."""

import datetime
import os
import stat

import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import certgen
from moatlib import (ADMIN_EMAIL, ADMIN_PASSWORD, CERT_NAMES, FP_RE, ISO_RE,
                     assert_error, assert_no_private_key, create_body)

NOT_BOOTSTRAPPED = [
    ("GET", "/v1/cluster"),
    ("GET", "/v1/nodes"),
    ("GET", "/v1/users"),
    ("GET", "/v1/cluster/certificates"),
    ("GET", "/v1/cluster/certificates/api"),
    ("PUT", "/v1/cluster"),
    ("PUT", "/v1/cluster/update_cert"),
    ("POST", "/v1/cluster/certificates/rotate"),
]


def test_endpoints_503_before_create(fresh_node):
    n = fresh_node
    for method, path in NOT_BOOTSTRAPPED:
        body = {} if method != "GET" else None
        for auth in (None, (ADMIN_EMAIL, ADMIN_PASSWORD)):
            r = n.https(method, path, body, auth=auth, verify=False)
            assert_error(r, 503, "cluster_not_bootstrapped")
        r = n.sock(method, path, body)
        assert_error(r, 503, "cluster_not_bootstrapped")


def test_create_via_loopback_https(fresh_node):
    n = fresh_node
    url = n.url("/v1/bootstrap/create_cluster")

    def post(body):
        # The pre-cluster certificate is a throw-away: verify=False.
        return requests.post(url, json=body, verify=False, timeout=30)

    # Refusals first; none of them creates anything.
    bad = [
        (create_body("not a fqdn", ADMIN_EMAIL, ADMIN_PASSWORD), "invalid_fqdn"),
        (create_body("-bad-.moat.test", ADMIN_EMAIL, ADMIN_PASSWORD),
         "invalid_fqdn"),
        (create_body(n.fqdn, ADMIN_EMAIL, "short7c"), "invalid_password"),
        ({"action": "create_cluster", "cluster": {"name": n.fqdn}},
         "invalid_schema"),
        ({"action": "create_cluster", "cluster": {"name": 5},
          "credentials": {"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}},
         "invalid_schema"),
    ]
    for body, code in bad:
        assert_error(post(body), 400, code)
        assert_error(n.https("GET", "/v1/cluster", auth=None, verify=False),
                     503, "cluster_not_bootstrapped")
    assert not os.path.exists(n.ca)

    # The RS body, verbatim.
    body = {"action": "create_cluster",
            "cluster": {"name": n.fqdn},
            "credentials": {"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}}
    r = post(body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["node_uid"] == 1
    assert got["cluster"]["name"] == n.fqdn
    assert "password" not in r.text
    assert_no_private_key(r.text)

    # Second create: 409, through HTTPS and through the socket.
    assert_error(post(body), 409, "cluster_already_exists")
    assert_error(n.sock("POST", "/v1/bootstrap/create_cluster", body), 409,
                 "cluster_already_exists")

    # From now on the API port serves the cluster certificate: ca.pem verifies it.
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=n.creds,
                     timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == n.fqdn


def _check_service_cert(cert, ca_cert, fqdn, ip):
    assert certgen.verify_issued_by(cert, ca_cert), "not issued by cluster CA"
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert cn and cn[0].value == fqdn
    sans = certgen.san_strings(cert)
    for want in ("DNS:" + fqdn, "DNS:*." + fqdn, "IP:" + ip):
        assert want in sans, (want, sans)
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert pub.curve.name == "secp256r1"
    life = cert.not_valid_after - cert.not_valid_before
    assert datetime.timedelta(days=360) <= life <= datetime.timedelta(days=370)
    now = datetime.datetime.utcnow()
    assert cert.not_valid_before <= now <= cert.not_valid_after
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value \
        if _has_ext(cert, x509.BasicConstraints) else None
    assert bc is None or not bc.ca


def _has_ext(cert, cls):
    try:
        cert.extensions.get_extension_for_class(cls)
        return True
    except x509.ExtensionNotFound:
        return False


def _eku(cert):
    try:
        return set(cert.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def test_certificates_created(ro_node):
    n = ro_node
    cdir = n.certs_dir
    for f in ["ca.pem", "chain_certs.pem"] + \
             ["%s_cert.pem" % c for c in CERT_NAMES] + \
             ["%s_key.pem" % c for c in CERT_NAMES]:
        assert os.path.isfile(os.path.join(cdir, f)), f
    for c in CERT_NAMES:
        mode = stat.S_IMODE(os.stat(n.key_file(c)).st_mode)
        assert mode == 0o600, "%s_key.pem mode %o" % (c, mode)
    mode = stat.S_IMODE(os.stat(n.sock_path).st_mode)
    assert mode == 0o600, "moatd.sock mode %o" % mode

    with open(n.ca) as f:
        ca_pem = f.read()
    ca_cert = certgen.load_pem_chain(ca_pem)[0]
    assert ca_cert.extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca
    assert certgen.verify_issued_by(ca_cert, ca_cert), "CA is not self-signed"
    assert isinstance(ca_cert.public_key(), ec.EllipticCurvePublicKey)
    assert ca_cert.public_key().curve.name == "secp256r1"

    listing = n.session.get(n.url("/v1/cluster/certificates"), timeout=30)
    assert listing.status_code == 200, listing.text
    assert_no_private_key(listing.text)
    pems = listing.json()

    fps = set()
    for c in CERT_NAMES:
        with open(n.cert_file(c)) as f:
            file_pem = f.read()
        cert = certgen.load_pem_chain(file_pem)[0]
        assert certgen.fingerprint(pems["%s_cert" % c]) == \
            certgen.fingerprint(cert), c
        _check_service_cert(cert, ca_cert, n.fqdn, n.addr)
        key = certgen.load_key(open(n.key_file(c)).read())
        assert certgen.public_key_der(key) == certgen.public_key_der(cert), \
            "%s_key.pem does not match %s_cert.pem" % (c, c)
        eku = _eku(cert)
        if eku is not None:
            assert certgen.SERVER_AUTH in eku, c
            if c == "syncer":
                assert certgen.CLIENT_AUTH in eku
        info = n.session.get(n.url("/v1/cluster/certificates/%s" % c),
                             timeout=30).json()
        assert info["fingerprint_sha256"] == certgen.fingerprint(cert)
        assert FP_RE.match(info["fingerprint_sha256"])
        assert info["issued_by_cluster_ca"] is True
        assert info["key_type"] == "EC" and info["key_bits"] == 256
        assert ISO_RE.match(info["not_after"]) and ISO_RE.match(info["not_before"])
        fps.add(info["fingerprint_sha256"])
    assert len(fps) == 5, "the five certificates should be distinct"

    # The API port serves the api certificate and ca.pem verifies it.
    assert n.served_fp() == certgen.fingerprint(pems["api_cert"])
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=n.creds,
                     timeout=30)
    assert r.status_code == 200
    # The private keys are not in the log.
    assert_no_private_key(n.log)


def test_restart_persistence(node):
    n = node
    before = n.snapshot()
    ca_before = open(n.ca).read()
    listing_before = n.session.get(n.url("/v1/cluster/certificates"),
                                   timeout=30).json()
    n.restart()
    after = n.snapshot()
    assert after["fingerprints"] == before["fingerprints"]
    assert after["served_api"] == before["served_api"]
    assert after["policy"] == before["policy"]
    assert open(n.ca).read() == ca_before
    r = requests.get(n.url("/v1/cluster/certificates"), verify=n.ca,
                     auth=n.creds, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == listing_before
    # Still a cluster: create is refused, the admin still logs in.
    assert_error(n.sock("POST", "/v1/bootstrap/create_cluster",
                        create_body(n.fqdn, ADMIN_EMAIL, ADMIN_PASSWORD)),
                 409, "cluster_already_exists")


def test_nodes(ro_node):
    n = ro_node
    r = n.session.get(n.url("/v1/nodes"), timeout=30)
    assert r.status_code == 200, r.text
    nodes = r.json()
    assert isinstance(nodes, list) and len(nodes) == 1
    node = nodes[0]
    for f in ("uid", "addr", "api_port", "status", "software_version",
              "certificates"):
        assert f in node, f
    assert node["uid"] == 1 and node["addr"] == n.addr
    assert node["api_port"] == n.port and node["status"] == "active"
    fps = n.fingerprints()
    assert set(node["certificates"]) == set(CERT_NAMES)
    for c in CERT_NAMES:
        assert node["certificates"][c]["fingerprint_sha256"] == fps[c]
        assert isinstance(node["certificates"][c]["version"], int)
    one = n.session.get(n.url("/v1/nodes/1"), timeout=30)
    assert one.status_code == 200 and one.json()["uid"] == 1
    assert_error(n.session.get(n.url("/v1/nodes/42"), timeout=30), 404,
                 "node_not_found")
