"""TLS policy: PUT/GET /v1/cluster, what the API port then accepts, live
sessions below a raised minimum, and persistence."""

import http.client
import ssl

import pytest

from moatlib import (KeepAlive, assert_error, openssl_s_client,
                     served_cert_der, tls_client_context)

POLICY_FIELDS = ("min_control_TLS_version", "min_data_TLS_version",
                 "control_cipher_suites", "control_cipher_suites_tls_1_3",
                 "data_cipher_list", "data_cipher_suites_tls_1_3")


def s_client_ok(node, *args):
    p = openssl_s_client(node.addr, node.port, *args, servername=node.fqdn)
    return p.returncode == 0 and "BEGIN CERTIFICATE" in p.stdout, p


def policy(node):
    r = node.sock("GET", "/v1/cluster")
    assert r.status_code == 200, r.text
    return r.json()


def keepalive(node, version):
    ctx = tls_client_context(cafile=node.ca, min_version=version,
                             max_version=version)
    return KeepAlive(node.addr, node.port, ctx, node.addr, auth=node.creds)


def test_get_cluster_fields(ro_node):
    n = ro_node
    for r in (n.session.get(n.url("/v1/cluster"), timeout=30),
              n.sock("GET", "/v1/cluster")):
        assert r.status_code == 200, r.text
        body = r.json()
        for f in ("name", "created_at") + POLICY_FIELDS:
            assert f in body, f
        assert body["name"] == n.fqdn
        assert body["min_control_TLS_version"] == "1.2"
        assert body["min_data_TLS_version"] == "1.2"
        assert isinstance(body["control_cipher_suites"], str)


def test_min_control_tls_13(node):
    n = node
    ok, p = s_client_ok(n, "-tls1_2")
    assert ok, p.stdout + p.stderr
    r = n.session.put(n.url("/v1/cluster"),
                      json={"min_control_TLS_version": "1.3"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["min_control_TLS_version"] == "1.3"
    assert isinstance(body["closed_sessions"], int)
    assert policy(n)["min_control_TLS_version"] == "1.3"

    ok, p = s_client_ok(n, "-tls1_2")
    assert not ok, "TLS 1.2 handshake still accepted:\n" + p.stdout
    ok, p = s_client_ok(n, "-tls1_3")
    assert ok, p.stdout + p.stderr
    assert "TLSv1.3" in p.stdout
    # Both control ports: the API and the UI (cm).
    for port in (n.port, n.cm_port):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            served_cert_der(n.addr, port, n.fqdn,
                            max_version=ssl.TLSVersion.TLSv1_2)
        assert served_cert_der(n.addr, port, n.fqdn,
                               min_version=ssl.TLSVersion.TLSv1_3)
    # HTTPS clients (TLS 1.3) still work.
    assert n.session.get(n.url("/v1/cluster"), timeout=30).status_code == 200

    # Lower back to 1.2.
    r = n.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.2"})
    assert r.status_code == 200, r.text
    assert r.json()["min_control_TLS_version"] == "1.2"
    assert r.json()["closed_sessions"] == 0
    ok, p = s_client_ok(n, "-tls1_2")
    assert ok, p.stdout + p.stderr
    assert policy(n)["min_control_TLS_version"] == "1.2"


@pytest.mark.parametrize("field", ["min_control_TLS_version",
                                   "min_data_TLS_version"])
@pytest.mark.parametrize("value", ["1.1", "1.0", "1", "1.4", "TLSv1.3", ""])
def test_invalid_tls_version(ro_node, field, value):
    n = ro_node
    before = n.snapshot()
    r = n.sock("PUT", "/v1/cluster", {field: value})
    body = assert_error(r, 400, "invalid_tls_version")
    assert "1.2" in body["description"] and "1.3" in body["description"], body
    r = n.session.put(n.url("/v1/cluster"), json={field: value}, timeout=60)
    assert_error(r, 400, "invalid_tls_version")
    assert n.snapshot() == before


@pytest.mark.parametrize("field,value", [
    ("control_cipher_suites", "NOT-A-CIPHER"),
    ("control_cipher_suites", "!ALL"),
    ("data_cipher_list", "BOGUS:ALSO-BOGUS"),
    ("data_cipher_suites_tls_1_3", "TLS_NOT_A_SUITE"),
])
def test_invalid_cipher_list(ro_node, field, value):
    n = ro_node
    before = n.snapshot()
    assert_error(n.sock("PUT", "/v1/cluster", {field: value}), 400,
                 "invalid_cipher_list")
    assert_error(n.session.put(n.url("/v1/cluster"), json={field: value},
                               timeout=60), 400, "invalid_cipher_list")
    assert n.snapshot() == before


@pytest.mark.parametrize("body,code", [
    ({"no_such_field": 1}, "invalid_schema"),
    ({"control_cipher_suites_tls_1_3": "TLS_AES_128_GCM_SHA256"},
     "invalid_schema"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "invalid_schema"),
    ({"min_control_TLS_version": 1.3}, "invalid_schema"),
    ({"min_control_TLS_version": "1.3", "bogus": True}, "invalid_schema"),
    ('{"min_control_TLS_version": ', "invalid_json"),
])
def test_invalid_policy_body(ro_node, body, code):
    n = ro_node
    before = n.snapshot()
    assert_error(n.sock("PUT", "/v1/cluster", body), 400, code)
    assert n.snapshot() == before


def test_cipher_change_applies(node):
    n = node
    suite = "ECDHE-ECDSA-AES128-GCM-SHA256"
    r = n.sock("PUT", "/v1/cluster", {"control_cipher_suites": suite})
    assert r.status_code == 200, r.text
    assert r.json()["control_cipher_suites"] == suite
    assert policy(n)["control_cipher_suites"] == suite
    ok, p = s_client_ok(n, "-tls1_2", "-cipher", suite)
    assert ok, p.stdout + p.stderr
    ok, p = s_client_ok(n, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert not ok, "a cipher outside control_cipher_suites was negotiated"
    # TLS 1.3 is unaffected by the TLS <= 1.2 list.
    ok, p = s_client_ok(n, "-tls1_3")
    assert ok, p.stdout + p.stderr

    r = n.sock("PUT", "/v1/cluster", {"data_cipher_list": "ECDHE+AESGCM"})
    assert r.status_code == 200, r.text
    assert policy(n)["data_cipher_list"] == "ECDHE+AESGCM"


def test_raise_minimum_closes_old_sessions(node):
    n = node
    old = keepalive(n, ssl.TLSVersion.TLSv1_2)
    new = keepalive(n, ssl.TLSVersion.TLSv1_3)
    # The same on the UI's port.
    cm_old = KeepAlive(n.addr, n.cm_port, tls_client_context(
        max_version=ssl.TLSVersion.TLSv1_2), n.addr)
    cm_new = KeepAlive(n.addr, n.cm_port, tls_client_context(
        min_version=ssl.TLSVersion.TLSv1_3), n.addr)
    try:
        for c in (cm_old, cm_new):
            assert c.request("GET", "/ca.pem").status_code == 200
        assert old.tls_version == "TLSv1.2"
        assert new.tls_version == "TLSv1.3"
        for c in (old, new):
            r = c.request("GET", "/v1/cluster")
            assert r.status_code == 200, r.text
            assert c.open, "server closed a keep-alive connection"

        r = n.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.3"})
        assert r.status_code == 200, r.text
        assert r.json()["closed_sessions"] >= 2, r.text

        # The TLS 1.2 sessions are gone, on both ports ...
        with pytest.raises((OSError, http.client.HTTPException)):
            r = cm_old.request("GET", "/ca.pem")
            raise AssertionError("TLS 1.2 UI session still served: %s" % r)
        assert cm_new.request("GET", "/ca.pem").status_code == 200
        with pytest.raises((OSError, http.client.HTTPException)):
            r = old.request("GET", "/v1/cluster")
            raise AssertionError("TLS 1.2 session still served: %s" % r)
        # ... the TLS 1.3 one still works.
        r = new.request("GET", "/v1/cluster")
        assert r.status_code == 200, r.text
        assert r.json()["min_control_TLS_version"] == "1.3"
        assert new.requests == 2
    finally:
        old.close()
        new.close()
        cm_old.close()
        cm_new.close()


def test_raise_minimum_from_a_tls12_session(node):
    """api.md: the caller's own session, if below the new minimum, is
    closed after the response (the response itself arrives)."""
    n = node
    c = keepalive(n, ssl.TLSVersion.TLSv1_2)
    try:
        assert c.tls_version == "TLSv1.2"
        r = c.request("PUT", "/v1/cluster", {"min_control_TLS_version": "1.3"})
        assert r.status_code == 200, r.text
        assert r.json()["min_control_TLS_version"] == "1.3"
        assert r.json()["closed_sessions"] >= 1, r.text
        with pytest.raises((OSError, http.client.HTTPException)):
            r = c.request("GET", "/v1/cluster")
            raise AssertionError("TLS 1.2 session still served: %s" % r)
    finally:
        c.close()
    assert policy(n)["min_control_TLS_version"] == "1.3"


@pytest.mark.parametrize("body", [
    {"data_cipher_list": "ECDHE-RSA-AES128-GCM-SHA256"},
    {"control_cipher_suites": "ECDHE-RSA-AES128-GCM-SHA256"},
    {"control_cipher_suites": "ECDHE-RSA-AES128-GCM-SHA256:"
                              "ECDHE-RSA-AES256-GCM-SHA384",
     "min_control_TLS_version": "1.2"},
], ids=["data", "control", "control-explicit-1.2"])
def test_policy_handshake_failed(ro_node, body):
    """A policy under which the current EC P-256 certificates cannot
    handshake: TLS 1.2 allowed, but only RSA-authenticated suites."""
    n = ro_node
    before = n.snapshot()
    assert_error(n.sock("PUT", "/v1/cluster", body), 400, "handshake_failed")
    assert n.snapshot() == before
    ok, p = s_client_ok(n, "-tls1_2")
    assert ok, p.stdout + p.stderr


def test_policy_persists_across_restart(node):
    n = node
    r = n.sock("PUT", "/v1/cluster", {
        "min_control_TLS_version": "1.3",
        "min_data_TLS_version": "1.3",
        "data_cipher_list": "ECDHE+AESGCM",
        "control_cipher_suites": "ECDHE+AESGCM:ECDHE+CHACHA20"})
    assert r.status_code == 200, r.text
    want = policy(n)
    assert want["min_control_TLS_version"] == "1.3"
    assert want["min_data_TLS_version"] == "1.3"
    n.restart()
    assert policy(n) == want
    ok, p = s_client_ok(n, "-tls1_2")
    assert not ok, "TLS 1.2 accepted after restart:\n" + p.stdout
    ok, p = s_client_ok(n, "-tls1_3")
    assert ok, p.stdout + p.stderr
