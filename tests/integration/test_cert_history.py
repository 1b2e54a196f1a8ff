"""Certificate history and rollback (issue 10, first part): every
certificate keeps its last 10 earlier versions; a rollback serves one of
them again, validated and rolled out like any update, as a new version."""

import datetime
import time

import certgen
from moatlib import assert_error, assert_no_private_key


def leaf_for(node, ca, **kw):
    kw.setdefault("sans", certgen.service_sans(node.fqdn, (node.addr,)))
    return certgen.make_leaf(ca, **kw)


def put(node, name, leaf):
    r = node.sock("PUT", "/v1/cluster/update_cert",
                  {"name": name, "key": leaf.key_pem,
                   "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    return r.json()


def history(node, name):
    r = node.sock("GET", "/v1/cluster/certificates/%s/history" % name)
    assert r.status_code == 200, r.text
    assert_no_private_key(r.text)
    return r.json()


def test_history_lists_versions_newest_first(node, test_ca):
    v1 = node.cert_info("proxy")["fingerprint_sha256"]
    a, b = leaf_for(node, test_ca), leaf_for(node, test_ca)
    put(node, "proxy", a)
    put(node, "proxy", b)
    h = history(node, "proxy")
    assert h["name"] == "proxy" and h["kept"] == 10
    vs = h["versions"]
    assert [v["version"] for v in vs] == [3, 2, 1], vs
    assert [v["current"] for v in vs] == [True, False, False]
    assert vs[0]["fingerprint_sha256"] == b.fingerprint
    assert vs[1]["fingerprint_sha256"] == a.fingerprint
    assert vs[2]["issued_by_cluster_ca"] is True
    assert vs[1]["issued_by_cluster_ca"] is False
    assert all(v["expired"] is False for v in vs)
    assert vs[2]["fingerprint_sha256"] == v1


def test_rollback_serves_the_earlier_version(node, test_ca):
    """Without a version: the newest earlier one; with one: that one.
    Each rollback is a new version, and the node serves it at once."""
    first = history(node, "proxy")["versions"][0]
    a = leaf_for(node, test_ca)
    put(node, "proxy", a)
    r = node.sock("POST", "/v1/cluster/certificates/proxy/rollback", {})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 3
    assert body["fingerprint_sha256"] == first["fingerprint_sha256"]
    assert [(x["uid"], x["status"]) for x in body["nodes"]] == [(1, "updated")]
    # the cluster CA issued version 1: the rollback keeps that fact
    assert node.cert_info("proxy")["issued_by_cluster_ca"] is True
    # and back to what the operator supplied, by version
    r = node.sock("POST", "/v1/cluster/certificates/proxy/rollback",
                  {"version": 2})
    assert r.status_code == 200, r.text
    assert r.json()["fingerprint_sha256"] == a.fingerprint
    assert node.cert_info("proxy")["issued_by_cluster_ca"] is False
    assert "rolled certificate proxy back to version 2" in node.log
    # the api certificate is what the API port serves: check it end to end
    api_before = node.served_fp()
    put(node, "api", leaf_for(node, test_ca))
    assert node.served_fp() != api_before
    r = node.sock("POST", "/v1/cluster/certificates/api/rollback", {})
    assert r.status_code == 200, r.text
    assert node.served_fp() == api_before


def test_rollback_errors_change_nothing(node, test_ca):
    before = history(node, "cm")
    r = node.sock("POST", "/v1/cluster/certificates/cm/rollback", {})
    assert_error(r, 404, "not_found")          # nothing earlier yet
    put(node, "cm", leaf_for(node, test_ca))
    for body, status, code in (
            ({"version": 1000}, 404, "not_found"),
            ({"version": 2}, 400, "invalid_configuration"),   # the current
            ({"version": "1"}, 400, "invalid_schema"),
            ({"bogus": 1}, 400, "invalid_schema")):
        r = node.sock("POST", "/v1/cluster/certificates/cm/rollback", body)
        assert_error(r, status, code)
    r = node.sock("POST", "/v1/cluster/certificates/nope/rollback", {})
    assert r.status_code == 404, r.text
    r = node.sock("GET", "/v1/cluster/certificates/nope/history")
    assert r.status_code == 404, r.text
    after = history(node, "cm")
    assert len(after["versions"]) == len(before["versions"]) + 1


def test_rollback_to_an_expired_version_is_refused(node, test_ca):
    """A version that expired since it was served is checked like any
    update, and refused."""
    now = datetime.datetime.now(datetime.timezone.utc)
    short = leaf_for(node, test_ca, not_before=now - datetime.timedelta(
        days=1), not_after=now + datetime.timedelta(seconds=3))
    put(node, "metrics_exporter", short)
    put(node, "metrics_exporter", leaf_for(node, test_ca))
    time.sleep(4)
    h = history(node, "metrics_exporter")
    assert h["versions"][1]["expired"] is True
    r = node.sock("POST", "/v1/cluster/certificates/metrics_exporter/"
                  "rollback", {})
    assert_error(r, 406, "certificate_expired")
    assert history(node, "metrics_exporter")["versions"][0]["version"] == 3


def test_only_the_last_ten_are_kept(node, test_ca):
    for _ in range(12):
        put(node, "syncer", leaf_for(node, test_ca))
    vs = history(node, "syncer")["versions"]
    assert [v["version"] for v in vs] == list(range(13, 2, -1)), vs
    r = node.sock("POST", "/v1/cluster/certificates/syncer/rollback",
                  {"version": 2})
    assert_error(r, 404, "not_found")


def test_moatadm_rollback(node, test_ca):
    a = leaf_for(node, test_ca)
    put(node, "proxy", a)
    put(node, "proxy", leaf_for(node, test_ca))
    p = node.adm("cluster", "certificate", "rollback", "proxy", "version",
                 "2")
    assert p.returncode == 0, p.stderr + p.stdout
    assert node.cert_info("proxy")["fingerprint_sha256"] == a.fingerprint
    p = node.adm("cluster", "certificate", "rollback", "proxy", "version",
                 "999")
    assert p.returncode != 0
    assert "not kept" in (p.stderr + p.stdout)


def test_rotate_keeps_history_and_is_served(node):
    """A rotation writes the history too, in the same transaction, and the
    node serves the new certificate (the history key must not hide the
    certificate's own key from the store watch)."""
    before = node.served_fp()
    r = node.sock("POST", "/v1/cluster/certificates/rotate", {"name": "api"})
    assert r.status_code == 200, r.text
    assert node.served_fp() != before
    vs = history(node, "api")["versions"]
    assert [v["version"] for v in vs] == [2, 1]
    assert vs[1]["fingerprint_sha256"] == before
    r = node.sock("POST", "/v1/cluster/certificates/api/rollback",
                  {"version": 0})
    assert_error(r, 400, "invalid_schema")
