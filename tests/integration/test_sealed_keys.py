"""Private keys sealed at rest: a dump of the embedded store (cluster.db)
or of etcd holds no private key, only sealed text that the cluster key in
DIR/cluster.key (0600) opens; a node that joins gets that key from the
node it joins, as an admin, and serves the cluster's certificates.
"""

import os
import sqlite3
import stat
import subprocess

import certgen
from moatlib import FQDN, assert_error, make_cluster

SEALED = "moat-sealed-v1:"


def sqlite_dump(n):
    db = sqlite3.connect(os.path.join(n.data_dir, "cluster.db"))
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def etcd_dump(etcd):
    p = subprocess.run(["etcdctl", "--endpoints", etcd.client_url(0), "get",
                        "--prefix", "/"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, ETCDCTL_API="3"))
    assert p.returncode == 0, p.stderr
    return p.stdout


def assert_no_key_in(dump, key_pems=()):
    assert "PRIVATE KEY" not in dump
    for pem in key_pems:
        body = "".join(pem.strip().splitlines()[1:-1])
        assert body[:40] not in dump


def test_embedded_store_holds_no_key(node, test_ca):
    n = node
    key_file = os.path.join(n.data_dir, "cluster.key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # A certificate of the operator's, a rotation and a rollback: every
    # way a key gets into the store.
    leaf = certgen.make_leaf(test_ca, sans=certgen.service_sans(FQDN))
    r = n.sock("PUT", "/v1/cluster/update_cert", {
        "name": "api", "certificate": leaf.cert_pem, "key": leaf.key_pem})
    assert r.status_code == 200, r.text
    assert n.sock("POST", "/v1/cluster/certificates/rotate",
                  {"name": "proxy"}).status_code == 200
    assert n.sock("POST", "/v1/cluster/certificates/proxy/rollback",
                  {}).status_code == 200
    dump = sqlite_dump(n)
    assert_no_key_in(dump, [leaf.key_pem])
    # 5 certificates, the CA, and the versions kept (api 1, proxy 1, 2).
    assert dump.count(SEALED) >= 9, dump.count(SEALED)
    # The node itself serves them, after a restart too.
    served = n.served_fp()
    assert served == leaf.fingerprint
    n.restart()
    assert n.served_fp() == leaf.fingerprint


def test_keys_in_clear_from_an_older_store_get_sealed(node):
    """A store written before sealing (here: the api key put back in
    clear, and one history entry): the node seals them itself."""
    import json
    import time
    n = node
    assert n.sock("POST", "/v1/cluster/certificates/rotate",
                  {"name": "api"}).status_code == 200
    with open(n.key_file("api")) as f:
        clear = f.read()
    n.stop()
    db = sqlite3.connect(os.path.join(n.data_dir, "cluster.db"))
    try:
        rows = db.execute("SELECT key, value FROM kv WHERE key LIKE "
                          "'/moat/cert%'").fetchall()
        n_clear = 0
        for key, value in rows:
            doc = json.loads(value)
            if key.endswith("/api") or "/certs_history/api/" in key:
                doc["key"] = clear
                db.execute("UPDATE kv SET value = ? WHERE key = ?",
                           (json.dumps(doc), key))
                n_clear += 1
        db.commit()
    finally:
        db.close()
    assert n_clear == 2, rows
    assert "PRIVATE KEY" in sqlite_dump(n)
    n.start()
    deadline = time.monotonic() + 15
    while "PRIVATE KEY" in sqlite_dump(n) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert_no_key_in(sqlite_dump(n))
    assert "sealed 2 private key document(s)" in n.log
    assert n.sock("GET", "/v1/cluster").status_code == 200
    # (The history entry got today's key, so only the current version
    # is checked: it is still served after a restart from the sealed
    # store.)
    served = n.served_fp()
    n.restart()
    assert n.served_fp() == served


def test_wrong_cluster_key_cannot_open_them(node):
    n = node
    key_file = os.path.join(n.data_dir, "cluster.key")
    n.stop()
    with open(key_file, "w") as f:
        f.write("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    n.start()
    # It says why, and nothing it could not open is served as empty.
    assert "does not open with this node's cluster key" in n.log
    assert n.sock("GET", "/v1/cluster").status_code == 200


def test_etcd_holds_no_key_and_a_joined_node_serves(etcd1, make_node):
    n1, n2 = make_cluster(make_node, etcd1.url, 2)
    with open(os.path.join(n1.data_dir, "cluster.key")) as f:
        k1 = f.read()
    with open(os.path.join(n2.data_dir, "cluster.key")) as f:
        k2 = f.read()
    assert k1 == k2
    assert stat.S_IMODE(os.stat(os.path.join(n2.data_dir,
                                             "cluster.key")).st_mode) == 0o600
    dump = etcd_dump(etcd1)
    assert_no_key_in(dump)
    assert dump.count(SEALED) >= 6
    # Node 2 opened them: it serves the cluster's certificates.
    assert n2.served_fp() == n1.served_fp()
    assert n2.sock("POST", "/v1/cluster/certificates/rotate",
                   {"name": "api"}).status_code == 200
    assert n1.served_fp() == n2.served_fp()


def test_cluster_key_only_for_admins(etcd1, make_node):
    n1 = make_cluster(make_node, etcd1.url, 1)[0]
    r = n1.sock("GET", "/v1/cluster/store")
    assert r.status_code == 200 and r.json().get("cluster_key"), r.text
    r = n1.https("GET", "/v1/cluster/store")
    assert r.status_code == 200 and r.json().get("cluster_key"), r.text
    viewer = ("viewer@example.com", "viewer-password-1")
    r = n1.sock("POST", "/v1/users", {"email": viewer[0],
                                      "password": viewer[1],
                                      "role": "cluster_viewer"})
    assert r.status_code == 200, r.text
    r = n1.https("GET", "/v1/cluster/store", auth=viewer)
    assert_error(r, 403, "forbidden")


def test_join_pinned_to_the_cluster_ca(etcd1, make_node):
    """With the cluster CA's fingerprint in the join body, the credentials
    (and the cluster key that comes back) travel only to a node whose
    certificate that CA issued."""
    from moatlib import join_body, openssl_fingerprint
    first = make_cluster(make_node, etcd1.url, 1)[0]
    with open(first.ca) as f:
        ca_fp = openssl_fingerprint(f.read())
    # The API port serves the CA bundle without sign-in, like the cm port.
    r = first.https("GET", "/ca.pem", auth=None)
    assert r.status_code == 200 and "BEGIN CERTIFICATE" in r.text, r.text
    second = make_node(addr="127.0.0.2", api_port=first.port, create=False)
    body = join_body(first)
    body["cluster"]["ca_fingerprint"] = "AA:" * 31 + "AA"
    r = second.sock("POST", "/v1/bootstrap/join_cluster", body)
    assert_error(r, 400, "join_failed")
    assert "fingerprint" in r.json()["description"], r.text
    assert second.sock("GET", "/v1/cluster").status_code == 503
    assert not os.path.exists(os.path.join(second.data_dir, "cluster.key"))
    body["cluster"]["ca_fingerprint"] = "not a fingerprint"
    assert_error(second.sock("POST", "/v1/bootstrap/join_cluster", body),
                 400, "invalid_schema")
    body["cluster"]["ca_fingerprint"] = ca_fp.lower()
    r = second.sock("POST", "/v1/bootstrap/join_cluster", body)
    assert r.status_code == 200, r.text
    assert second.served_fp() == first.served_fp()


def test_moatadm_join_with_ca_fingerprint(etcd1, make_node):
    from moatlib import openssl_fingerprint
    first = make_cluster(make_node, etcd1.url, 1)[0]
    with open(first.ca) as f:
        ca_fp = openssl_fingerprint(f.read())
    second = make_node(addr="127.0.0.2", api_port=first.port, create=False)
    node = "%s:%d" % (first.addr, first.port)
    p = second.adm("cluster", "join", "nodes", node, "ca_fingerprint",
                   "AB" * 32, "username", first.email,
                   env={"MOAT_PASSWORD": first.password})
    assert p.returncode != 0 and "fingerprint" in p.stderr, p.stderr
    assert second.sock("GET", "/v1/cluster").status_code == 503
    p = second.adm("cluster", "join", "nodes", node, "ca_fingerprint",
                   ca_fp, "username", first.email,
                   env={"MOAT_PASSWORD": first.password})
    assert p.returncode == 0, p.stdout + p.stderr
    assert second.served_fp() == first.served_fp()
