"""Who may create the cluster: loopback, the control socket, and a
bootstrap token; and nodes bound to different addresses side by side."""

import pytest
import requests

import certgen
from moatlib import (ADMIN_EMAIL, ADMIN_PASSWORD, assert_error, create_body,
                     free_port, non_loopback_ipv4, port_free_on)

TOKEN = "bootstrap-token-0123456789"
HDR = "X-Moat-Bootstrap-Token"


def post_create(n, headers=None, body=None):
    return requests.post(n.url("/v1/bootstrap/create_cluster"),
                         json=body or create_body(n.fqdn, ADMIN_EMAIL,
                                                  ADMIN_PASSWORD),
                         headers=headers or {}, verify=False, timeout=30)


def not_bootstrapped(n):
    r = requests.get(n.url("/v1/cluster"), verify=False, timeout=30,
                     auth=(ADMIN_EMAIL, ADMIN_PASSWORD))
    assert_error(r, 503, "cluster_not_bootstrapped")


def check_created(n):
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, timeout=30,
                     auth=(ADMIN_EMAIL, ADMIN_PASSWORD))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == n.fqdn
    cert = certgen.load_pem_chain(open(n.cert_file("api")).read())[0]
    assert "IP:" + n.addr in certgen.san_strings(cert)
    assert n.served_fp() == certgen.fingerprint(cert)


def test_only_bootstrap_before_cluster(make_node):
    n = make_node(create=False, addr="127.0.0.2", bootstrap_token=TOKEN)
    for method, path in (("GET", "/v1/cluster"), ("GET", "/v1/nodes"),
                         ("GET", "/v1/users"),
                         ("GET", "/v1/cluster/certificates"),
                         ("PUT", "/v1/cluster/update_cert"),
                         ("POST", "/v1/cluster/certificates/rotate"),
                         ("POST", "/v1/users")):
        for headers in ({}, {HDR: TOKEN}):
            r = requests.request(method, n.url(path), verify=False,
                                 timeout=30, headers=headers,
                                 json={} if method != "GET" else None)
            assert_error(r, 503, "cluster_not_bootstrapped")
        assert_error(n.sock(method, path, {} if method != "GET" else None),
                     503, "cluster_not_bootstrapped")


def test_wrong_token_refused_even_from_loopback(make_node):
    n = make_node(create=False, addr="127.0.0.2", bootstrap_token=TOKEN)
    for bad in ("wrong-token", TOKEN + "x", TOKEN[:-1]):
        r = post_create(n, {HDR: bad})
        assert_error(r, 403, "bootstrap_forbidden")
        not_bootstrapped(n)
    r = post_create(n, {HDR: TOKEN})
    assert r.status_code == 200, r.text
    check_created(n)


def test_loopback_needs_no_token(make_node):
    n = make_node(create=False, addr="127.0.0.2", bootstrap_token=TOKEN)
    r = post_create(n)
    assert r.status_code == 200, r.text
    check_created(n)


@pytest.fixture(scope="module")
def outside_ip():
    ip = non_loopback_ipv4()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    return ip


def test_non_loopback_needs_token(make_node, outside_ip):
    n = make_node(create=False, addr=outside_ip, bootstrap_token=TOKEN)
    for headers in ({}, {HDR: "wrong-token"}):
        assert_error(post_create(n, headers), 403, "bootstrap_forbidden")
        not_bootstrapped(n)
    r = post_create(n, {HDR: TOKEN})
    assert r.status_code == 200, r.text
    check_created(n)


def test_non_loopback_without_token_configured(make_node, outside_ip):
    n = make_node(create=False, addr=outside_ip)
    for headers in ({}, {HDR: "anything"}):
        assert_error(post_create(n, headers), 403, "bootstrap_forbidden")
        not_bootstrapped(n)
    # The control socket is always allowed.
    n.create_cluster(via="sock")
    check_created(n)


def test_two_nodes_side_by_side(make_node):
    port = None
    for _ in range(20):
        p = free_port("127.0.0.1")
        if port_free_on("127.0.0.2", p):
            port = p
            break
    assert port, "no port free on both 127.0.0.1 and 127.0.0.2"
    a = make_node(addr="127.0.0.1", fqdn="a.moat.test", api_port=port)
    b = make_node(addr="127.0.0.2", fqdn="b.moat.test", api_port=port)
    assert a.data_dir != b.data_dir
    check_created(a)
    check_created(b)
    assert a.served_fp() != b.served_fp()
    assert open(a.ca).read() != open(b.ca).read()
    # Each CA verifies its own node only.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(b.url("/v1/cluster"), verify=a.ca, timeout=30,
                     auth=(ADMIN_EMAIL, ADMIN_PASSWORD))
    # A change on one does not touch the other.
    before_b = b.snapshot()
    r = a.sock("POST", "/v1/cluster/certificates/rotate", {"name": "api"})
    assert r.status_code == 200, r.text
    assert b.snapshot() == before_b
    check_created(a)
