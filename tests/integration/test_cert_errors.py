"""Every certificate validation error_code of docs/api.md, table driven.

Each case is refused with the documented status and error_code, a
description, no private key in the response, and nothing changes: the
fingerprints GET reports, the certificate the API port serves, the policy,
and the files in certs/ are all what they were before.

The error cases share one module-scoped node: a refused request must not
change anything, and the snapshot comparison after every case proves it.
"""

import datetime
import json
import os
import re

import pytest

import certgen
from moatlib import (FQDN, assert_error, assert_no_private_key,
                     key_body_fragment)

MIB = 1024 * 1024
BULK_GOOD_NAME = "metrics_exporter"  # bad entries never use this name


class Material:
    def __init__(self, fqdn=FQDN, ip="127.0.0.1"):
        self.fqdn = fqdn
        self.ca = certgen.make_ca("errors test CA")
        self.rsa_ca = certgen.make_ca("errors test RSA CA", key_type="rsa2048")
        self.sans = certgen.service_sans(fqdn, (ip,))

    def leaf(self, issuer=None, **kw):
        kw.setdefault("sans", self.sans)
        return certgen.make_leaf(issuer or self.ca, **kw)


def entry(name, cert, key):
    return {"name": name, "certificate": cert, "key": key}


def good(m, name="api"):
    leaf = m.leaf()
    return entry(name, leaf.cert_pem, leaf.key_pem)


def corrupt_pem(pem, label="CERTIFICATE"):
    return ("-----BEGIN %s-----\nZm9vYmFyYmF6cXV4IG5vdCBERVIgYXQgYWxs\n"
            "-----END %s-----\n" % (label, label))


# --- case builders: m -> ("entry"|"raw_single"|"raw_bulk", body) ---------

def c_missing_key(m):
    e = good(m)
    del e["key"]
    return "entry", e


def c_extra_field(m):
    e = good(m)
    e["comment"] = "extra"
    return "entry", e


def c_name_not_string(m):
    e = good(m)
    e["name"] = 5
    return "entry", e


def c_cert_not_string(m):
    e = good(m)
    e["certificate"] = [e["certificate"]]
    return "entry", e


def c_too_large(m):
    e = good(m)
    e["certificate"] = e["certificate"] + "A" * (MIB + 16)
    return "entry", e


def c_unknown(name):
    def f(m):
        return "entry", good(m, name)
    return f


def c_cert_garbage(m):
    leaf = m.leaf()
    return "entry", entry("api", "this is not a certificate", leaf.key_pem)


def c_cert_corrupt(m):
    leaf = m.leaf()
    return "entry", entry("api", corrupt_pem(leaf.cert_pem), leaf.key_pem)


def c_key_garbage(m):
    leaf = m.leaf()
    return "entry", entry("api", leaf.cert_pem, "this is not a key")


def c_key_corrupt(m):
    leaf = m.leaf()
    return "entry", entry("api", leaf.cert_pem,
                          corrupt_pem(leaf.key_pem, "PRIVATE KEY"))


def c_key_encrypted(m):
    leaf = m.leaf()
    return "entry", entry("api", leaf.cert_pem,
                          certgen.key_to_pem(leaf.key, password="secret-pass"))


def c_fields_swapped(m):
    leaf = m.leaf()
    return "entry", entry("api", leaf.key_pem, leaf.cert_pem)


def c_mismatch(m):
    a, b = m.leaf(), m.leaf()
    return "entry", entry("api", a.cert_pem, b.key_pem)


def c_mismatch_types(m):
    a, b = m.leaf(key_type="rsa2048"), m.leaf()
    return "entry", entry("proxy", a.cert_pem, b.key_pem)


def c_expired(m):
    leaf = m.leaf(expired=True)
    return "entry", entry("api", leaf.cert_pem, leaf.key_pem)


def c_expired_intermediate(m):
    now = certgen.utcnow()
    inter = certgen.make_intermediate(
        m.ca, "expired intermediate",
        not_before=now - datetime.timedelta(days=60),
        not_after=now - datetime.timedelta(days=1))
    leaf = m.leaf(inter)
    return "entry", entry("api", leaf.chain(inter), leaf.key_pem)


def c_not_yet_valid(m):
    leaf = m.leaf(not_yet_valid=True)
    return "entry", entry("api", leaf.cert_pem, leaf.key_pem)


def c_chain_misordered(m):
    inter = certgen.make_intermediate(m.ca, "errors intermediate")
    leaf = m.leaf(inter)
    # leaf first (so the key matches the first cert), then root, then
    # intermediate: the leaf is not signed by the cert that follows it.
    return "entry", entry("api", leaf.chain(m.ca, inter), leaf.key_pem)


def c_chain_wrong_intermediate(m):
    inter = certgen.make_intermediate(m.ca, "errors intermediate")
    # Same subject name, different key: only a signature check catches it.
    impostor = certgen.make_intermediate(m.ca, "errors intermediate")
    leaf = m.leaf(inter)
    return "entry", entry("api", leaf.chain(impostor), leaf.key_pem)


def c_chain_unrelated_ca(m):
    other = certgen.make_ca("unrelated CA")
    leaf = m.leaf()
    return "entry", entry("api", leaf.chain(other), leaf.key_pem)


def c_weak(key_type, name="api"):
    def f(m):
        leaf = m.leaf(key_type=key_type)
        return "entry", entry(name, leaf.cert_pem, leaf.key_pem)
    return f


def c_sha1(m):
    leaf = m.leaf(hash_name="sha1")
    return "entry", entry("api", leaf.cert_pem, leaf.key_pem)


def c_sha1_rsa(m):
    leaf = m.leaf(m.rsa_ca, key_type="rsa2048", hash_name="sha1")
    return "entry", entry("proxy", leaf.cert_pem, leaf.key_pem)


def c_eku(name, eku):
    def f(m):
        leaf = m.leaf(eku=eku)
        return "entry", entry(name, leaf.cert_pem, leaf.key_pem)
    return f


def c_sans(name, sans):
    def f(m):
        leaf = m.leaf(sans=[s.replace("FQDN", m.fqdn) for s in sans])
        return "entry", entry(name, leaf.cert_pem, leaf.key_pem)
    return f


def c_duplicate(m):
    return "raw_bulk", {"certificates": [good(m, "api"), good(m, "api")]}


def c_raw(kind, body):
    def f(m):
        return kind, body
    return f


# (id, status, error_code, builder)
CASES = [
    ("invalid_json", 400, "invalid_json", c_raw("raw_single", '{"name": "api", "key": ')),
    ("invalid_json-text", 400, "invalid_json", c_raw("raw_single", "name=api&key=x")),
    ("invalid_json-bulk", 400, "invalid_json", c_raw("raw_bulk", '{"certificates": [')),
    ("invalid_schema-missing_key", 400, "invalid_schema", c_missing_key),
    ("invalid_schema-extra_field", 400, "invalid_schema", c_extra_field),
    ("invalid_schema-name_int", 400, "invalid_schema", c_name_not_string),
    ("invalid_schema-cert_list", 400, "invalid_schema", c_cert_not_string),
    ("invalid_schema-array_body", 400, "invalid_schema", c_raw("raw_single", "[]")),
    ("invalid_schema-bulk_not_list", 400, "invalid_schema",
     c_raw("raw_bulk", {"certificates": "api"})),
    ("invalid_schema-bulk_missing", 400, "invalid_schema", c_raw("raw_bulk", {})),
    ("invalid_schema-bulk_extra", 400, "invalid_schema",
     c_raw("raw_bulk", {"certificates": [], "force": True})),
    ("payload_too_large", 413, "payload_too_large", c_too_large),
    ("unknown_certificate-foo", 403, "unknown_certificate", c_unknown("foo")),
    ("unknown_certificate-API", 403, "unknown_certificate", c_unknown("API")),
    ("unknown_certificate-ldap_client", 403, "unknown_certificate",
     c_unknown("ldap_client")),
    ("invalid_pem-cert_text", 400, "invalid_pem", c_cert_garbage),
    ("invalid_pem-cert_corrupt", 400, "invalid_pem", c_cert_corrupt),
    ("invalid_pem-key_text", 400, "invalid_pem", c_key_garbage),
    ("invalid_pem-key_corrupt", 400, "invalid_pem", c_key_corrupt),
    ("invalid_pem-key_encrypted", 400, "invalid_pem", c_key_encrypted),
    ("invalid_pem-fields_swapped", 400, "invalid_pem", c_fields_swapped),
    ("key_values_mismatch", 400, "key_values_mismatch", c_mismatch),
    ("key_values_mismatch-rsa_vs_ec", 400, "key_values_mismatch", c_mismatch_types),
    ("certificate_expired", 406, "certificate_expired", c_expired),
    ("certificate_expired-intermediate", 406, "certificate_expired",
     c_expired_intermediate),
    ("certificate_not_yet_valid", 400, "certificate_not_yet_valid", c_not_yet_valid),
    ("invalid_chain-misordered", 400, "invalid_chain", c_chain_misordered),
    ("invalid_chain-wrong_intermediate", 400, "invalid_chain",
     c_chain_wrong_intermediate),
    ("invalid_chain-unrelated_ca", 400, "invalid_chain", c_chain_unrelated_ca),
    ("weak_key-rsa1024", 400, "weak_key", c_weak("rsa1024")),
    ("weak_key-p224", 400, "weak_key", c_weak("ec224")),
    ("weak_key-secp256k1", 400, "weak_key", c_weak("secp256k1", "proxy")),
    ("weak_signature-ecdsa_sha1", 400, "weak_signature", c_sha1),
    ("weak_signature-rsa_sha1", 400, "weak_signature", c_sha1_rsa),
    ("invalid_key_usage-api_clientauth_only", 400, "invalid_key_usage",
     c_eku("api", [certgen.CLIENT_AUTH])),
    ("invalid_key_usage-cm_clientauth_only", 400, "invalid_key_usage",
     c_eku("cm", [certgen.CLIENT_AUTH])),
    ("invalid_key_usage-syncer_serverauth_only", 400, "invalid_key_usage",
     c_eku("syncer", [certgen.SERVER_AUTH])),
    ("invalid_key_usage-proxy_codesigning", 400, "invalid_key_usage",
     c_eku("proxy", [certgen.CODE_SIGNING])),
    ("hostname_mismatch-api_other_name", 400, "hostname_mismatch",
     c_sans("api", ["DNS:other.moat.test", "DNS:*.other.moat.test",
                    "IP:127.0.0.1"])),
    ("hostname_mismatch-proxy_no_wildcard", 400, "hostname_mismatch",
     c_sans("proxy", ["DNS:FQDN", "IP:127.0.0.1"])),
    ("hostname_mismatch-cm_wildcard_only", 400, "hostname_mismatch",
     c_sans("cm", ["DNS:*.FQDN", "IP:127.0.0.1"])),
    ("hostname_mismatch-syncer_other_name", 400, "hostname_mismatch",
     c_sans("syncer", ["DNS:other.moat.test", "DNS:*.other.moat.test"])),
    ("duplicate_certificate", 400, "duplicate_certificate", c_duplicate),
]


# How each case is sent: entry cases go through update_cert over HTTPS and
# over the socket, and as the second entry of a bulk PUT after a good one.
def _params():
    out = []
    for cid, st, code, b in CASES:
        if b is c_duplicate or b.__qualname__.startswith("c_raw"):
            for t in ("https", "sock"):
                out.append(pytest.param(cid, st, code, b, "as-is", t,
                                        id="%s-%s" % (cid, t)))
        else:
            for form, t in (("single", "https"), ("single", "sock"),
                            ("bulk", "https")):
                out.append(pytest.param(cid, st, code, b, form, t,
                                        id="%s-%s-%s" % (cid, form, t)))
    return out


@pytest.fixture(scope="module")
def mat():
    return Material()


@pytest.fixture(scope="module")
def baseline(ro_node):
    return ro_node.snapshot()


def send(node, transport, path, body):
    if transport == "sock":
        return node.sock("PUT", path, body)
    return node.https("PUT", path, body)


def test_every_error_code_is_covered():
    api_md = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                          "api.md")
    if not os.path.exists(api_md):
        pytest.skip("docs/api.md not found")
    text = open(api_md).read()
    section = text.split("### Validation", 1)[1].split("## Cluster", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    covered = {code for _, _, code, _ in CASES} | {"handshake_failed"}
    assert documented, "could not parse the validation table"
    assert documented <= covered, documented - covered


@pytest.mark.parametrize("cid,status,code,build,form,transport", _params())
def test_refused_and_nothing_changed(ro_node, baseline, mat, cid, status, code,
                                     build, form, transport):
    n = ro_node
    kind, body = build(mat)
    if kind == "raw_single":
        path = "/v1/cluster/update_cert"
    elif kind == "raw_bulk":
        path = "/v1/cluster/certificates"
    elif form == "single":
        path = "/v1/cluster/update_cert"
    else:
        path = "/v1/cluster/certificates"
        body = {"certificates": [good(mat, BULK_GOOD_NAME), body]}
    r = send(n, transport, path, body)
    assert_error(r, status, code)
    if isinstance(body, dict):
        for e in body.get("certificates", [body]):
            k = e.get("key") if isinstance(e, dict) else None
            if isinstance(k, str) and "BEGIN" in k:
                assert key_body_fragment(k) not in r.text
    assert n.snapshot() == baseline


def test_log_has_no_private_key(ro_node):
    assert_no_private_key(ro_node.log)


def test_handshake_failed(node, test_ca):
    """The trial handshake with the current data policy must fail for an
    RSA proxy certificate when TLS 1.2 is allowed and the TLS <= 1.2 list
    holds only ECDSA suites: a TLS 1.2 client could not connect."""
    n = node
    r = n.sock("PUT", "/v1/cluster", {
        "data_cipher_list": "ECDHE-ECDSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384"})
    assert r.status_code == 200, r.text
    assert r.json()["min_data_TLS_version"] == "1.2"
    before = n.snapshot()
    leaf = certgen.make_leaf(test_ca, key_type="rsa2048",
                             sans=certgen.service_sans(n.fqdn, (n.addr,)))
    e = entry("proxy", leaf.cert_pem, leaf.key_pem)
    assert_error(n.sock("PUT", "/v1/cluster/update_cert", e), 400,
                 "handshake_failed")
    assert n.snapshot() == before
    assert_error(n.https("PUT", "/v1/cluster/certificates",
                         {"certificates": [e]}), 400, "handshake_failed")
    assert n.snapshot() == before
    # An ECDSA proxy certificate still goes through under the same policy.
    ok = certgen.make_leaf(test_ca, sans=certgen.service_sans(n.fqdn,
                                                              (n.addr,)))
    r = n.sock("PUT", "/v1/cluster/update_cert",
               entry("proxy", ok.cert_pem, ok.key_pem))
    assert r.status_code == 200, r.text
    # With TLS 1.2 no longer allowed on the data side, the RSA one is fine:
    # TLS 1.3 suites do not depend on the key type.
    r = n.sock("PUT", "/v1/cluster", {"min_data_TLS_version": "1.3"})
    assert r.status_code == 200, r.text
    r = n.sock("PUT", "/v1/cluster/update_cert", e)
    assert r.status_code == 200, r.text
    assert n.cert_info("proxy")["fingerprint_sha256"] == leaf.fingerprint


def test_payload_limit_boundary(node, test_ca):
    """Exactly 1 MiB is allowed, one byte more is 413 (JSON whitespace
    padding keeps the body valid)."""
    n = node
    leaf = certgen.make_leaf(test_ca,
                             sans=certgen.service_sans(n.fqdn, (n.addr,)))
    body = json.dumps({"name": "api", "key": leaf.key_pem,
                       "certificate": leaf.cert_pem})
    before = n.snapshot()
    over = body[:-1] + " " * (MIB + 1 - len(body)) + "}"
    assert len(over.encode()) == MIB + 1
    assert_error(n.sock("PUT", "/v1/cluster/update_cert", over), 413,
                 "payload_too_large")
    assert_error(n.https("PUT", "/v1/cluster/update_cert", over), 413,
                 "payload_too_large")
    assert n.snapshot() == before
    exact = body[:-1] + " " * (MIB - len(body)) + "}"
    assert len(exact.encode()) == MIB
    r = n.https("PUT", "/v1/cluster/update_cert", exact)
    assert r.status_code == 200, r.text
    assert n.served_fp() == leaf.fingerprint
