"""Rotation under load on a database endpoint: 8 redis-py clients, each on
one TLS 1.3 connection, run commands without pause while the `proxy`
certificate is replaced 30 times and the data minimum TLS version goes up to
1.3 and back a few times.  No command may fail, no client may reconnect,
and every fresh handshake after a replacement sees the new certificate."""

import os
import threading
import time

import certgen
from moatlib import LoadClient, dns_name, make_bdb, served_cert_der

SWAPS = 30
POLICY_EVERY = 6  # raise to 1.3 and lower to 1.2 after every 6th swap
CLIENTS_SINGLE = 4
CLIENTS_BATCH = 4
BATCH = 50


def test_proxy_rotation_under_load(db_node, test_ca):
    n = db_node
    db = make_bdb(n, tls=True, name="rotation")
    port = db["port"]
    sni = dns_name(n, port)
    sans = certgen.service_sans(n.fqdn, ("127.0.0.1",))
    certs = [certgen.make_leaf(test_ca, sans=sans),
             certgen.make_leaf(test_ca, sans=sans, key_type="rsa2048")]
    bundle = os.path.join(n.tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(n.ca).read() + test_ca.cert_pem)
    original = n.cert_info("proxy")["fingerprint_sha256"]
    assert certgen.fingerprint_der(
        served_cert_der(n.addr, port, sni, cafile=bundle)) == original

    stop = threading.Event()
    clients = [LoadClient(n, port, bundle, i, i >= CLIENTS_SINGLE, stop,
                          batch_size=BATCH)
               for i in range(CLIENTS_SINGLE + CLIENTS_BATCH)]
    for c in clients:
        assert c.tls_version == "TLSv1.3", (c.name, c.tls_version)
        assert c.peer == original
    assert len({c.client_id for c in clients}) == len(clients)
    for c in clients:
        c.start()

    problems = []
    policy_changes = 0
    t0 = time.monotonic()
    try:
        time.sleep(0.3)
        for i in range(SWAPS):
            leaf = certs[i % 2]
            r = n.sock("PUT", "/v1/cluster/update_cert", {
                "name": "proxy", "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
            if r.status_code != 200:
                problems.append((i, "update_cert", r.status_code, r.text[:300]))
                continue
            if r.json().get("fingerprint_sha256") != leaf.fingerprint:
                problems.append((i, "update_cert answered", r.text[:300]))
            # A fresh handshake, verified against the bundle with the
            # database's DNS name, sees the new certificate at once.
            try:
                got = certgen.fingerprint_der(
                    served_cert_der(n.addr, port, sni, cafile=bundle))
            except Exception as e:
                got = repr(e)
            if got != leaf.fingerprint:
                problems.append((i, "fresh handshake saw", got,
                                 "want", leaf.fingerprint))
            if i % POLICY_EVERY == POLICY_EVERY - 1:
                for v in ("1.3", "1.2"):
                    r = n.sock("PUT", "/v1/cluster",
                               {"min_data_TLS_version": v})
                    policy_changes += 1
                    if r.status_code != 200:
                        problems.append((i, "policy", v, r.status_code,
                                         r.text[:300]))
                    elif r.json().get("closed_sessions", 0) != 0:
                        problems.append((i, "policy", v, "closed_sessions",
                                         r.json().get("closed_sessions")))
                    time.sleep(0.05)
            time.sleep(0.02)
    finally:
        elapsed = time.monotonic() - t0
        time.sleep(0.3)
        stop.set()
        for c in clients:
            c.join(30)
    print("%d swaps, %d policy changes in %.2fs; commands: %s" % (
        SWAPS, policy_changes, elapsed,
        {c.name: c.commands for c in clients}))

    assert not problems, problems
    for c in clients:
        assert not c.is_alive(), "%s did not finish" % c.name
        assert not c.failures, "%s: %d failed commands, first: %s" % (
            c.name, len(c.failures), c.failures[:5])
        assert c.commands >= 100, "%s ran only %d commands" % (c.name,
                                                               c.commands)
        assert c.sock_changes == 0, "%s reconnected %d times" % (
            c.name, c.sock_changes)
        # Same connection: same socket, same server-side client id, and it
        # still holds the certificate it was opened with.
        assert c.r.connection._sock is c.sock
        assert c.r.client_id() == c.client_id, c.name
        assert certgen.fingerprint_der(
            c.sock.getpeercert(binary_form=True)) == original
        c.r.close()
    assert n.cert_info("proxy")["fingerprint_sha256"] == \
        certs[(SWAPS - 1) % 2].fingerprint
    assert n.sock("GET", "/v1/cluster").json()["min_data_TLS_version"] == "1.2"
