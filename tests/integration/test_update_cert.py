"""Replacing certificates: the RS curl call, every name, bulk (atomic),
chains, the GET views, rotation, delete, and the files on disk."""

import datetime
import json
import os
import stat
import subprocess

import pytest
import requests

import certgen
from moatlib import (ADMIN_EMAIL, CERT_NAMES, FP_RE, ISO_RE, assert_error,
                     assert_no_private_key, key_body_fragment,
                     openssl_fingerprint, openssl_s_client)


def leaf_for(node, ca, key_type="ec256", **kw):
    kw.setdefault("sans", certgen.service_sans(node.fqdn, (node.addr,)))
    return certgen.make_leaf(ca, key_type=key_type, **kw)


def bundle(node, ca, path=None):
    """A CA file with the cluster CA and our test CA."""
    path = path or os.path.join(node.tmp, "bundle.pem")
    with open(node.ca) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text + ca.cert_pem)
    return path


def check_update_response(r, name, fp, version_before=None):
    assert r.status_code == 200, r.text
    assert_no_private_key(r.text)
    body = r.json()
    assert body["name"] == name
    assert body["fingerprint_sha256"] == fp
    assert isinstance(body["version"], int)
    if version_before is not None:
        assert body["version"] > version_before
    assert [(x["uid"], x["status"]) for x in body["nodes"]] == [(1, "updated")]
    return body


def check_files(node, name, leaf, chain_pem=None):
    with open(node.cert_file(name)) as f:
        on_disk = f.read()
    assert certgen.fingerprint(on_disk) == leaf.fingerprint
    if chain_pem is not None:
        assert [certgen.fingerprint_der(certgen.cert_to_der(c))
                for c in certgen.load_pem_chain(on_disk)] == \
            [certgen.fingerprint_der(certgen.cert_to_der(c))
             for c in certgen.load_pem_chain(chain_pem)]
    kp = node.key_file(name)
    assert stat.S_IMODE(os.stat(kp).st_mode) == 0o600
    key = certgen.load_key(open(kp).read())
    assert certgen.public_key_der(key) == certgen.public_key_der(leaf.cert)


def test_rs_curl_update_cert_verbatim(node, test_ca):
    n = node
    leaf = leaf_for(n, test_ca)
    key_path = os.path.join(n.tmp, "api_key.pem")
    cert_path = os.path.join(n.tmp, "api_cert.pem")
    with open(key_path, "w") as f:
        f.write(leaf.key_pem)
    with open(cert_path, "w") as f:
        f.write(leaf.cert_pem)
    # What `sed -z 's/\n/\\n/g' api_key.pem` produces.
    key = subprocess.run(["sed", "-z", r"s/\n/\\n/g", key_path],
                         capture_output=True, text=True, check=True).stdout
    cert = subprocess.run(["sed", "-z", r"s/\n/\\n/g", cert_path],
                          capture_output=True, text=True, check=True).stdout
    assert key == certgen.escape_newlines(leaf.key_pem)
    data = '{ "name": "api", "key": "%s", "certificate": "%s" }' % (key, cert)
    argv = ["curl", "-k", "-X", "PUT", "-u", "%s:%s" % n.creds,
            "-H", "Content-Type: application/json", "-d", data,
            "https://127.0.0.1:%d/v1/cluster/update_cert" % n.port]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert_no_private_key(p.stdout)
    body = json.loads(p.stdout)
    assert body["name"] == "api"
    assert body["fingerprint_sha256"] == leaf.fingerprint, p.stdout
    assert [(x["uid"], x["status"]) for x in body["nodes"]] == [(1, "updated")]

    # openssl s_client sees the new certificate on the next handshake.
    s = openssl_s_client("127.0.0.1", n.port, servername=n.fqdn)
    assert s.returncode == 0, s.stderr
    assert openssl_fingerprint(s.stdout) == leaf.fingerprint
    # ... and the format of fingerprint_sha256 is openssl's.
    assert openssl_fingerprint(leaf.cert_pem) == body["fingerprint_sha256"]

    ca_file = bundle(n, test_ca)
    r = requests.get(n.url("/v1/cluster"), verify=ca_file, auth=n.creds,
                     timeout=30)
    assert r.status_code == 200
    assert_no_private_key(n.log)
    assert key_body_fragment(leaf.key_pem) not in n.log


def test_update_each_name(node, test_ca):
    n = node
    ca_file = bundle(n, test_ca)
    s = requests.Session()
    s.verify = ca_file
    s.auth = n.creds
    others_before = n.fingerprints()
    for name in CERT_NAMES:
        info_before = n.cert_info(name)
        leaf = leaf_for(n, test_ca)
        r = s.put(n.url("/v1/cluster/update_cert"),
                  json={"name": name, "key": leaf.key_pem,
                        "certificate": leaf.cert_pem}, timeout=60)
        check_update_response(r, name, leaf.fingerprint,
                              info_before["version"])
        info = n.cert_info(name)
        assert info["fingerprint_sha256"] == leaf.fingerprint
        assert info["version"] == r.json()["version"]
        assert info["issued_by_cluster_ca"] is False
        assert ADMIN_EMAIL in info["updated_by"], info
        check_files(n, name, leaf)
        nodes = s.get(n.url("/v1/nodes/1"), timeout=30)
        assert nodes.status_code == 200, nodes.text
        assert nodes.json()["certificates"][name]["fingerprint_sha256"] == \
            leaf.fingerprint
        if name == "api":
            assert n.served_fp() == leaf.fingerprint
        others_before[name] = leaf.fingerprint
        # Only this certificate changed.
        assert n.fingerprints() == others_before
    assert_no_private_key(n.log)


def test_update_cert_via_socket_and_key_types(node, test_ca):
    """RSA 2048, EC P-384 and Ed25519 leaves are accepted too."""
    n = node
    for name, kt, want_type in (("api", "rsa2048", "RSA"),
                                ("cm", "ec384", "EC"),
                                ("metrics_exporter", "ed25519", "ED25519"),
                                ("api", "ed25519", "ED25519")):
        leaf = leaf_for(n, test_ca, key_type=kt)
        r = n.sock("PUT", "/v1/cluster/update_cert",
                   {"name": name, "key": leaf.key_pem,
                    "certificate": leaf.cert_pem})
        check_update_response(r, name, leaf.fingerprint)
        info = n.cert_info(name)
        assert info["key_type"] == want_type
        if kt == "rsa2048":
            assert info["key_bits"] == 2048
        if kt == "ec384":
            assert info["key_bits"] == 384
        assert info["updated_by"], info
        if name == "api":
            assert n.served_fp() == leaf.fingerprint


@pytest.mark.parametrize("name,kw", [
    ("syncer", {"eku": None}),
    ("api", {"eku": None}),
    ("api", {"eku": [certgen.SERVER_AUTH]}),
    ("proxy", {"sans": ["DNS:FQDN", "DNS:*.FQDN"]}),
    ("cm", {"sans": ["DNS:*.moat.test"]}),
    ("metrics_exporter", {"key_type": "ec521"}),
    ("cm", {"key_type": "rsa3072", "hash_name": "sha512"}),
], ids=["syncer-no-eku", "api-no-eku", "api-serverauth-only",
        "proxy-no-ip-san", "cm-parent-wildcard", "ec-p521", "rsa3072-sha512"])
def test_acceptable_variants(node, test_ca, name, kw):
    """Certificates the validation rules allow: no EKU at all (the rule is
    "EKU present but lacks ..."), no IP SAN, a wildcard that covers the
    FQDN, P-521, RSA 3072."""
    n = node
    if "sans" in kw:
        kw = dict(kw, sans=[x.replace("FQDN", n.fqdn) for x in kw["sans"]])
    leaf = leaf_for(n, test_ca, **kw)
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": name, "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
    check_update_response(r, name, leaf.fingerprint)
    assert n.cert_info(name)["fingerprint_sha256"] == leaf.fingerprint


def test_traditional_key_formats(node, test_ca):
    """Keys as operators often have them: "BEGIN RSA PRIVATE KEY" and
    "BEGIN EC PRIVATE KEY" (PKCS#1 / SEC1), not only PKCS#8."""
    n = node
    for name, kt, label in (("api", "rsa2048", "RSA PRIVATE KEY"),
                            ("cm", "ec256", "EC PRIVATE KEY")):
        leaf = leaf_for(n, test_ca, key_type=kt)
        key = certgen.key_to_pem(leaf.key, fmt="traditional")
        assert label in key
        r = n.sock("PUT", "/v1/cluster/update_cert",
                   {"name": name, "key": key, "certificate": leaf.cert_pem})
        check_update_response(r, name, leaf.fingerprint)
        check_files(n, name, leaf)
    assert_no_private_key(n.log)


def test_replaced_certificates_survive_restart(node, test_ca):
    n = node
    inter = certgen.make_intermediate(test_ca, "restart intermediate")
    leaf = leaf_for(n, inter, key_type="rsa2048")
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": "api", "key": leaf.key_pem,
                "certificate": leaf.chain(inter)})
    check_update_response(r, "api", leaf.fingerprint)
    before = n.snapshot()
    info = n.cert_info("api")
    n.restart()
    assert n.snapshot() == before
    assert n.cert_info("api") == info
    assert n.served_fp() == leaf.fingerprint
    s = openssl_s_client(n.addr, n.port, "-showcerts", servername=n.fqdn)
    served = [certgen.fingerprint_der(certgen.cert_to_der(c))
              for c in certgen.load_pem_chain(s.stdout)]
    assert served[:2] == [leaf.fingerprint, inter.fingerprint], served
    check_files(n, "api", leaf, leaf.chain(inter))


def test_bulk_put_applies_both(node, test_ca):
    n = node
    a = leaf_for(n, test_ca)
    b = leaf_for(n, test_ca)
    before = n.fingerprints()
    r = n.session.put(n.url("/v1/cluster/certificates"), json={
        "certificates": [
            {"name": "api", "certificate": a.cert_pem, "key": a.key_pem},
            {"name": "proxy", "certificate": b.cert_pem, "key": b.key_pem},
        ]}, timeout=60)
    assert r.status_code == 200, r.text
    assert_no_private_key(r.text)
    body = r.json()
    got = {c["name"]: c for c in body["certificates"]}
    assert set(got) == {"api", "proxy"}
    assert got["api"]["fingerprint_sha256"] == a.fingerprint
    assert got["proxy"]["fingerprint_sha256"] == b.fingerprint
    assert all(isinstance(c["version"], int) for c in got.values())
    assert [(x["uid"], x["status"]) for x in body["nodes"]] == [(1, "updated")]
    before.update(api=a.fingerprint, proxy=b.fingerprint)
    assert n.fingerprints() == before
    assert n.served_fp() == a.fingerprint
    check_files(n, "api", a)
    check_files(n, "proxy", b)


@pytest.mark.parametrize("bad_first", [False, True], ids=["good-bad", "bad-good"])
def test_bulk_one_bad_applies_none(node, test_ca, bad_first):
    n = node
    good = leaf_for(n, test_ca)
    bad = leaf_for(n, test_ca, sans=["DNS:other.moat.test", "IP:127.0.0.1"])
    entries = [{"name": "api", "certificate": good.cert_pem,
                "key": good.key_pem},
               {"name": "cm", "certificate": bad.cert_pem, "key": bad.key_pem}]
    if bad_first:
        entries.reverse()
    before = n.snapshot()
    r = n.session.put(n.url("/v1/cluster/certificates"),
                      json={"certificates": entries}, timeout=60)
    assert_error(r, 400, "hostname_mismatch")
    assert n.snapshot() == before


def test_chain_accepted_and_served_in_order(node, test_ca):
    n = node
    inter = certgen.make_intermediate(test_ca, "moat test intermediate")
    leaf = leaf_for(n, inter)
    chain = leaf.chain(inter)
    r = n.session.put(n.url("/v1/cluster/update_cert"),
                      json={"name": "api", "key": leaf.key_pem,
                            "certificate": chain}, timeout=60)
    check_update_response(r, "api", leaf.fingerprint)
    info = n.cert_info("api")
    assert info["chain_length"] == 2
    assert info["issued_by_cluster_ca"] is False
    check_files(n, "api", leaf, chain)

    s = openssl_s_client(n.addr, n.port, "-showcerts", servername=n.fqdn)
    assert s.returncode == 0, s.stderr
    served = [certgen.fingerprint_der(certgen.cert_to_der(c))
              for c in certgen.load_pem_chain(s.stdout)]
    assert served[:2] == [leaf.fingerprint, inter.fingerprint], served

    # A client that trusts only the root verifies: the intermediate is sent.
    ca_file = os.path.join(n.tmp, "root-only.pem")
    with open(ca_file, "w") as f:
        f.write(test_ca.cert_pem)
    r = requests.get(n.url("/v1/cluster"), verify=ca_file, auth=n.creds,
                     timeout=30)
    assert r.status_code == 200

    # leaf -> intermediate -> root is accepted as well.
    leaf2 = leaf_for(n, inter)
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": "cm", "key": leaf2.key_pem,
                "certificate": leaf2.chain(inter, test_ca)})
    check_update_response(r, "cm", leaf2.fingerprint)
    assert n.cert_info("cm")["chain_length"] == 3


def test_get_certificates_has_no_keys(node, test_ca):
    n = node
    leaf = leaf_for(n, test_ca)
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": "syncer", "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    texts = []
    for get in (lambda p: n.session.get(n.url(p), timeout=30),
                lambda p: n.sock("GET", p)):
        r = get("/v1/cluster/certificates")
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"%s_cert" % c for c in CERT_NAMES}, sorted(body)
        assert not any("key" in k for k in body), sorted(body)
        for c in CERT_NAMES:
            assert certgen.load_pem_chain(body["%s_cert" % c])
        assert certgen.fingerprint(body["syncer_cert"]) == leaf.fingerprint
        texts.append(r.text)
        for c in CERT_NAMES:
            one = get("/v1/cluster/certificates/%s" % c)
            assert one.status_code == 200
            assert not any("key" in k and k not in ("key_type", "key_bits")
                           for k in one.json()), one.json()
            texts.append(one.text)
        for p in ("/v1/cluster", "/v1/nodes", "/v1/nodes/1"):
            texts.append(get(p).text)
    assert_no_private_key(*texts)
    frag = key_body_fragment(leaf.key_pem)
    assert not any(frag in t for t in texts)
    assert_no_private_key(n.log)
    assert frag not in n.log


def test_certificate_fields(node, test_ca):
    n = node
    leaf = leaf_for(n, test_ca, key_type="rsa2048")
    r = n.session.put(n.url("/v1/cluster/update_cert"),
                      json={"name": "api", "key": leaf.key_pem,
                            "certificate": leaf.cert_pem}, timeout=60)
    check_update_response(r, "api", leaf.fingerprint)
    info = n.session.get(n.url("/v1/cluster/certificates/api"),
                         timeout=30).json()
    want_keys = {"name", "subject", "issuer", "san", "not_before", "not_after",
                 "serial", "fingerprint_sha256", "key_type", "key_bits",
                 "chain_length", "version", "updated_at", "updated_by",
                 "issued_by_cluster_ca"}
    assert want_keys <= set(info), want_keys - set(info)
    c = leaf.cert
    assert info["name"] == "api"
    assert n.fqdn in info["subject"]
    assert "moat integration test CA" in info["issuer"]
    assert sorted(info["san"]) == sorted(certgen.san_strings(c))
    assert info["not_before"] == c.not_valid_before.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["not_after"] == c.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert int(info["serial"].replace(":", ""), 16) == c.serial_number
    assert FP_RE.match(info["fingerprint_sha256"])
    assert info["fingerprint_sha256"] == leaf.fingerprint
    assert info["key_type"] == "RSA" and info["key_bits"] == 2048
    assert info["chain_length"] == 1
    assert isinstance(info["version"], int) and info["version"] >= 2
    assert ISO_RE.match(info["updated_at"])
    upd = datetime.datetime.strptime(info["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((upd - datetime.datetime.utcnow()).total_seconds()) < 300
    assert ADMIN_EMAIL in info["updated_by"]
    assert info["issued_by_cluster_ca"] is False
    assert_no_private_key(str(info))


def test_rotate_one_and_all(node, test_ca):
    n = node
    ca_cert = certgen.load_pem_chain(open(n.ca).read())[0]
    ca_before = open(n.ca).read()
    # Start from a foreign api certificate, rotate brings back a cluster one.
    leaf = leaf_for(n, test_ca)
    assert n.sock("PUT", "/v1/cluster/update_cert",
                  {"name": "api", "key": leaf.key_pem,
                   "certificate": leaf.cert_pem}).status_code == 200
    before = n.fingerprints()

    # The api port now serves our certificate: trust both CAs.
    s = requests.Session()
    s.trust_env = False
    s.verify = bundle(n, test_ca)
    s.auth = n.creds
    # An operator's certificate is not rotated unless forced.
    snap = n.snapshot()
    r = s.post(n.url("/v1/cluster/certificates/rotate"),
               json={"name": "api"}, timeout=60)
    assert_error(r, 403, "unsupported_rotation")
    assert "force" in r.json()["description"]
    assert n.snapshot() == snap
    r = s.post(n.url("/v1/cluster/certificates/rotate"),
               json={"name": "api", "force": True}, timeout=60)
    assert r.status_code == 200, r.text
    assert_no_private_key(r.text)
    body = r.json()
    assert [c["name"] for c in body["certificates"]] == ["api"]
    new_fp = body["certificates"][0]["fingerprint_sha256"]
    assert new_fp != before["api"]
    assert [(x["uid"], x["status"]) for x in body["nodes"]] == \
        [(1, "updated")]
    after = n.fingerprints()
    assert after["api"] == new_fp
    assert {k: v for k, v in after.items() if k != "api"} == \
        {k: v for k, v in before.items() if k != "api"}
    info = n.cert_info("api")
    assert info["issued_by_cluster_ca"] is True
    cert = certgen.load_pem_chain(open(n.cert_file("api")).read())[0]
    assert certgen.verify_issued_by(cert, ca_cert)
    assert certgen.fingerprint(cert) == new_fp
    assert n.served_fp() == new_fp
    assert stat.S_IMODE(os.stat(n.key_file("api")).st_mode) == 0o600

    # Rotate all five: no body.
    before = n.fingerprints()
    r = n.sock("POST", "/v1/cluster/certificates/rotate")
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(c["name"] for c in body["certificates"]) == sorted(CERT_NAMES)
    after = n.fingerprints()
    for c in CERT_NAMES:
        assert after[c] != before[c], c
        cert = certgen.load_pem_chain(open(n.cert_file(c)).read())[0]
        assert certgen.verify_issued_by(cert, ca_cert), c
        assert certgen.fingerprint(cert) == after[c]
        assert n.cert_info(c)["issued_by_cluster_ca"] is True
        sans = certgen.san_strings(cert)
        for want in ("DNS:" + n.fqdn, "DNS:*." + n.fqdn, "IP:" + n.addr):
            assert want in sans, (c, want, sans)
        key = certgen.load_key(open(n.key_file(c)).read())
        assert certgen.public_key_der(key) == certgen.public_key_der(cert)
    assert n.served_fp() == after["api"]
    assert open(n.ca).read() == ca_before, "rotation must keep the cluster CA"
    # Clients that trust ca.pem still verify.
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=n.creds,
                     timeout=30)
    assert r.status_code == 200

    # An empty JSON object also means "all".
    before = after
    r = n.sock("POST", "/v1/cluster/certificates/rotate", {})
    assert r.status_code == 200, r.text
    after = n.fingerprints()
    assert all(after[c] != before[c] for c in CERT_NAMES)

    # Unknown name: 403, nothing changes.
    snap = n.snapshot()
    assert_error(n.sock("POST", "/v1/cluster/certificates/rotate",
                        {"name": "nope"}), 403, "unknown_certificate")
    assert n.snapshot() == snap


def test_delete_certificates(node):
    n = node
    before = n.snapshot()
    for c in CERT_NAMES:
        r = n.session.delete(n.url("/v1/cluster/certificates/%s" % c),
                             timeout=30)
        assert_error(r, 403, "certificate_required")
        assert_error(n.sock("DELETE", "/v1/cluster/certificates/%s" % c),
                     403, "certificate_required")
    for c in ("nope", "ldap_client", "API"):
        r = n.session.delete(n.url("/v1/cluster/certificates/%s" % c),
                             timeout=30)
        assert_error(r, 404, "unknown_certificate")
        r = n.session.get(n.url("/v1/cluster/certificates/%s" % c), timeout=30)
        assert_error(r, 404, "unknown_certificate")
    assert n.snapshot() == before


def test_socket_caller_identity_in_log(node, test_ca):
    """api.md: a control-socket caller is a local admin, `local uid=<n>` in
    the logs."""
    n = node
    leaf = leaf_for(n, test_ca)
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": "cm", "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    want = "local uid=%d" % os.getuid()
    lines = [l for l in n.log.splitlines() if "cm" in l and
             leaf.fingerprint in l]
    assert lines, n.log
    assert any(want in l for l in lines), \
        "no %r in the log lines about the change:\n%s" % (want,
                                                          "\n".join(lines))
