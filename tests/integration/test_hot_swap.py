"""Hot swap: 50 replacements of a certificate under load, with zero
failed requests, keep-alive connections kept, and every new handshake
seeing the new certificate -- for the API port (api) and the UI's port
(cm) alike."""

import os
import threading
import time

import requests

import pytest

import certgen
from moatlib import KeepAlive, served_fingerprint, tls_client_context

SWAPS = 50


class Worker(threading.Thread):
    def __init__(self, name, fn, stop):
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.stop = stop
        self.ok = 0
        self.failures = []

    def run(self):
        while not self.stop.is_set():
            try:
                r = self.fn()
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append("%d %s" % (r.status_code, r.text[:200]))
            except Exception as e:  # every exception is a failed request
                self.failures.append(repr(e))
            time.sleep(0.002)


# (certificate, the node's attribute with its port, a path that answers
# 200 on that port to a request with HTTP Basic credentials or none)
PORTS = [("api", "port", "/v1/cluster"), ("cm", "cm_port", "/ca.pem")]


@pytest.mark.parametrize("cert,port_attr,path", PORTS,
                         ids=[p[0] for p in PORTS])
def test_fifty_swaps_under_load(node, test_ca, cert, port_attr, path):
    n = node
    port = getattr(n, port_attr)
    base = "https://%s:%d" % (n.addr, port)
    sans = certgen.service_sans(n.fqdn, (n.addr,))
    certs = [certgen.make_leaf(test_ca, sans=sans),
             certgen.make_leaf(test_ca, sans=sans)]
    bundle = os.path.join(n.tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(n.ca).read() + test_ca.cert_pem)
    url = base + path
    original_fp = served_fingerprint(n.addr, port)
    allowed = {original_fp} | {c.fingerprint for c in certs}

    # 1. A requests.Session with a keep-alive connection opened before.
    ses = requests.Session()
    ses.verify = bundle
    ses.auth = n.creds
    assert ses.get(url, timeout=10).status_code == 200
    pool = ses.get_adapter(url).poolmanager.connection_from_url(url)
    assert pool.num_connections == 1

    # 2. A raw keep-alive TLS connection opened before.
    ctx = tls_client_context(cafile=bundle)
    raw = KeepAlive(n.addr, port, ctx, n.addr, auth=n.creds)
    assert raw.request("GET", path).status_code == 200
    raw_sock = raw.conn.sock
    raw_peer = certgen.fingerprint_der(raw.peer_der)

    # 3. Fresh connections, each one a new handshake; record what it saw.
    seen = set()
    seen_lock = threading.Lock()

    def fresh():
        c = KeepAlive(n.addr, port, ctx, n.addr, auth=n.creds)
        try:
            with seen_lock:
                seen.add(certgen.fingerprint_der(c.peer_der))
            return c.request("GET", path)
        finally:
            c.close()

    def fresh_requests():
        return requests.get(url, verify=bundle, auth=n.creds, timeout=10,
                            headers={"Connection": "close"})

    stop = threading.Event()
    workers = [Worker("session", lambda: ses.get(url, timeout=10), stop),
               Worker("raw-keepalive", lambda: raw.request("GET", path), stop),
               Worker("fresh-ssl", fresh, stop),
               Worker("fresh-requests", fresh_requests, stop)]
    for w in workers:
        w.start()
    admin = requests.Session()
    admin.verify = n.ca
    admin.auth = n.creds
    api_url = n.url("/v1/cluster/update_cert")
    swap_failures = []
    t0 = time.monotonic()
    try:
        time.sleep(0.2)
        for i in range(SWAPS):
            leaf = certs[i % 2]
            body = {"name": cert, "key": leaf.key_pem,
                    "certificate": leaf.cert_pem}
            if i % 2 or cert == "api":
                # The API port's own certificate changes under this
                # client: it trusts the test CA too.
                r = n.sock("PUT", "/v1/cluster/update_cert", body)
            else:
                r = admin.put(api_url, json=body, timeout=60)
            if r.status_code != 200:
                swap_failures.append((i, r.status_code, r.text[:300]))
                continue
            assert r.json()["fingerprint_sha256"] == leaf.fingerprint
            got = served_fingerprint(n.addr, port)
            if got != leaf.fingerprint:
                swap_failures.append((i, "fresh handshake saw", got))
    finally:
        elapsed = time.monotonic() - t0
        time.sleep(0.2)
        stop.set()
        for w in workers:
            w.join(30)
    print("%d swaps in %.2fs; requests ok: %s" % (
        SWAPS, elapsed, {w.name: w.ok for w in workers}))

    assert not swap_failures, swap_failures
    for w in workers:
        assert not w.failures, "%s: %d failed requests, first: %s" % (
            w.name, len(w.failures), w.failures[:5])
        assert w.ok >= 5, "%s made only %d requests" % (w.name, w.ok)
    # The keep-alive connections were never replaced.
    assert pool.num_connections == 1, \
        "requests.Session opened %d connections" % pool.num_connections
    assert raw.open and raw.conn.sock is raw_sock
    assert certgen.fingerprint_der(raw.peer_der) == raw_peer == original_fp
    assert raw.request("GET", path).status_code == 200
    assert seen <= allowed, seen - allowed
    assert len(seen) >= 2, "fresh handshakes never saw a swapped certificate"
    assert served_fingerprint(n.addr, port) == \
        certs[(SWAPS - 1) % 2].fingerprint
    assert n.cert_info(cert)["fingerprint_sha256"] == \
        certs[(SWAPS - 1) % 2].fingerprint
    raw.close()
    ses.close()
    admin.close()
