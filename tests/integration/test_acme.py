"""ACME issuance of the cluster's certificates, against a real ACME server.

PUT /v1/cluster/certificates/<name>/acme hands a certificate over to an
ACME CA: moatd reaches the directory, finds or registers its account and
places the order before it answers (so bad input is refused and changes
nothing), then completes the order in the background and installs what
the CA issued like any certificate update.  These tests run Debian's
pebble 2.4 (pebble.py: its own HTTPS CA, a mock DNS answering 127.0.0.1
for every name, PEBBLE_VA_NOSLEEP, 5 % of nonces rejected) and check:

  * every refusal (unreachable directory, untrusted CA bundle, an order
    pebble refuses, bad fields) leaves no ACME setting and no new
    certificate;
  * http-01 is answered by every node from the store (the order is placed
    on node 2, pebble validates against node 1), and both nodes serve the
    issued certificate on their database ports;
  * tls-alpn-01 on the API port itself, which then serves the issued
    certificate and still answers the API;
  * a renewal swaps the certificate under redis clients without a failed
    command or a reconnect;
  * pebble down at renewal: the old certificate stays served, last_error,
    tries and the alert cluster_acme_order_failed show it, retries back off
    and succeed once pebble is back (with an account it has forgotten);
  * DELETE drops the ACME setting and keeps the certificate.

pebble 2.4 issues 5-year certificates only, so renewal is triggered with
POST .../acme/renew rather than by waiting for next_renewal.
"""

import datetime
import os
import threading

import certgen
from moatlib import (CERT_NAMES, FP_RE, FQDN, ISO_RE, TIME_SCALE, LoadClient,
                     assert_error, assert_no_private_key, free_port,
                     https_request, make_bdb, make_cluster, redis_client,
                     served_cert_der, served_fingerprint, wait_for)
from pebble import check_chain, make_pebble  # noqa: F401  (fixture)

ACME_WAIT = 60.0 * TIME_SCALE     # an order completes within a few ticks
APPLY_WAIT = 15.0 * TIME_SCALE    # a stored certificate reaching a port
ALERT_WAIT = 15.0 * TIME_SCALE    # the alert tick (5 s) sees a change
RETRY_WAIT = 45.0 * TIME_SCALE    # the first retry comes within ~30 s
RECOVER_WAIT = 90.0 * TIME_SCALE  # a later retry succeeds
ALERT = "cluster_acme_order_failed"
ACME_FIELDS = {"name", "directory_url", "contact", "identifiers",
               "challenge", "http_port", "key_type", "state", "not_after",
               "next_renewal", "last_error", "tries", "next_try",
               "fingerprint_sha256", "last_issued"}
# What a PUT sets (the rest moves as the order proceeds).
CONFIG_FIELDS = ("name", "directory_url", "contact", "identifiers",
                 "challenge", "http_port", "key_type")
CONTACT = ["mailto:acme-admin@example.com"]
DROP = object()   # acme_body(field=DROP) leaves the field out


# -- helpers ------------------------------------------------------------------

def acme_path(name, tail=""):
    return "/v1/cluster/certificates/%s/acme%s" % (name, tail)


def call(n, method, path, body=None):
    """Through the control socket (node 2's address is not in the api
    certificate, and the api certificate changes in one test); never a
    private key in the answer."""
    r = n.sock(method, path, body)
    assert_no_private_key(r.text)
    return r


def acme_body(pb, **fields):
    """A PUT body that pebble accepts, with fields changed (DROP: left
    out)."""
    body = {"directory_url": pb.directory_url, "contact": CONTACT,
            "ca_bundle": pb.ca_pem, "http_port": pb.http_port}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not DROP}


def check_shape(j, name):
    # The contract's fields must be there; an echo of more input (the CA
    # bundle, the hook) may be too, never a key (call() checks).
    assert set(j) >= ACME_FIELDS, "missing fields %s in %s" % (
        sorted(ACME_FIELDS - set(j)), sorted(j))
    assert j["name"] == name, j
    assert j["state"] in ("pending", "valid", "failed"), j
    for f in ("not_after", "next_renewal", "next_try", "last_issued"):
        assert j[f] is None or ISO_RE.match(j[f]), "%s not ISO: %r" % (f, j)
    assert j["fingerprint_sha256"] is None or \
        FP_RE.match(j["fingerprint_sha256"]), j
    assert j["last_error"] is None or isinstance(j["last_error"], str), j
    assert isinstance(j["tries"], int) and not isinstance(j["tries"], bool) \
        and j["tries"] >= 0, j
    return j


def get_acme(n, name):
    """GET .../acme: the object, or None when it answers 404."""
    r = call(n, "GET", acme_path(name))
    if r.status_code == 404:
        return None
    assert r.status_code == 200, "GET %s: want 200 or 404, got %d %s" % (
        acme_path(name), r.status_code, r.text[:2000])
    return check_shape(r.json(), name)


def put_acme(n, name, body):
    """A PUT that must succeed: its answer is the GET object."""
    r = call(n, "PUT", acme_path(name), body)
    assert r.status_code == 200, "PUT %s: want 200, got %d %s" % (
        acme_path(name), r.status_code, r.text[:2000])
    j = check_shape(r.json(), name)
    got = get_acme(n, name)
    assert got is not None, "GET after a 200 PUT: 404"
    assert {f: got[f] for f in CONFIG_FIELDS} == \
        {f: j[f] for f in CONFIG_FIELDS}, "PUT answered %r, GET %r" % (j, got)
    for f, v in body.items():
        if f in CONFIG_FIELDS:
            assert j[f] == v, "PUT %s=%r, answer has %r" % (f, v, j[f])
    return j


def wait_acme(n, name, pred, timeout, what, pb=None):
    """Poll GET .../acme until pred(object); the object."""
    last = []

    def check():
        j = get_acme(n, name)
        last[:] = [j]
        return j if j is not None and pred(j) else None
    j = wait_for(check, timeout, 0.5)
    shown = last and last[0] and {k: v for k, v in last[0].items()
                                  if k != "ca_bundle"}
    assert j, "%s: not within %.0fs; last GET: %r\n%s" % (
        what, timeout, shown, pb.logs() if pb else "")
    return j


def wait_issued(n, name, pb, old_fp=None, timeout=ACME_WAIT):
    """Until the ACME state is valid with a certificate other than
    old_fp and no error; checks the fields of a valid order."""
    j = wait_acme(n, name, lambda j: j["state"] == "valid" and
                  j["fingerprint_sha256"] not in (None, old_fp) and
                  j["last_error"] is None, timeout,
                  "%s issued (other than %s)" % (name, old_fp), pb)
    for f in ("not_after", "next_renewal", "last_issued"):
        assert j[f] is not None, "valid but %s is null: %r" % (f, j)
    assert j["next_renewal"] < j["not_after"], j
    return j


def cert_fp(n, name):
    return n.cert_info(name)["fingerprint_sha256"]


def cluster_chain(n, name):
    """The certificate (and chain) of name as the cluster stores it."""
    r = call(n, "GET", "/v1/cluster/certificates")
    assert r.status_code == 200, r.text[:2000]
    chain = certgen.load_pem_chain(r.json()[name + "_cert"])
    assert chain, "no certificate in %r" % r.json()[name + "_cert"][:300]
    return chain


def check_from_pebble(n, name, pb, acme):
    """The cluster's certificate name is the one ACME reported, for the
    identifiers asked, and chains to pebble's root."""
    chain = cluster_chain(n, name)
    leaf = chain[0]
    assert certgen.fingerprint(leaf) == acme["fingerprint_sha256"], \
        "cluster's %s is %s, GET .../acme says %s" % (
            name, certgen.fingerprint(leaf), acme["fingerprint_sha256"])
    sans = certgen.san_strings(leaf)
    for ident in acme["identifiers"]:
        assert "DNS:" + ident in sans, "want DNS:%s in %s" % (ident, sans)
    assert leaf.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ") == \
        acme["not_after"], (leaf.not_valid_after, acme)
    check_chain(chain, certgen.load_pem_chain(pb.roots_pem())[0])
    info = n.cert_info(name)
    assert info["issued_by_cluster_ca"] is False, info
    return leaf


def served_by(addr, port, root_file):
    """Fingerprint a fresh handshake gets, verified against pebble's root
    with the cluster FQDN as the name, or the error (str)."""
    try:
        return certgen.fingerprint_der(
            served_cert_der(addr, port, FQDN, cafile=root_file))
    except Exception as e:
        return repr(e)


def wait_served(addr, port, root_file, fp, timeout=APPLY_WAIT):
    last = []

    def check():
        last[:] = [served_by(addr, port, root_file)]
        return last[0] == fp
    assert wait_for(check, timeout, 0.2), \
        "%s:%d: want %s served (verified against pebble's root), got %s" % (
            addr, port, fp, last and last[0])


def alerts(n):
    r = call(n, "GET", "/v1/cluster/alerts")
    assert r.status_code == 200, r.text[:2000]
    a = r.json()
    assert ALERT in a, "no %s in GET /v1/cluster/alerts: %s" % (
        ALERT, sorted(a))
    return a


def alert_state(n):
    a = alerts(n)[ALERT]
    assert isinstance(a.get("state"), bool), a
    r = call(n, "GET", "/v1/cluster/alerts/" + ALERT)
    assert r.status_code == 200, r.text[:2000]
    return a["state"]


def wait_alert(n, state):
    assert wait_for(lambda: alert_state(n) is state, ALERT_WAIT, 0.5), \
        "%s: want state %s within %.0fs, got %r" % (
            ALERT, state, ALERT_WAIT, alerts(n)[ALERT])


def renew(n, name):
    r = call(n, "POST", acme_path(name, "/renew"))
    assert r.status_code == 200, "POST renew: want 200, got %d %s" % (
        r.status_code, r.text[:2000])
    return r


# -- 1. refusals --------------------------------------------------------------

def test_bad_input(make_pebble, node, test_ca):
    n = node
    pb = make_pebble()
    before = n.fingerprints()
    closed = "https://127.0.0.1:%d/dir" % free_port()

    cases = [
        # (name, body, error_code, what the description must say)
        ("proxy", acme_body(pb, directory_url=closed),
         "acme_server_unreachable", None),
        ("proxy", acme_body(pb, ca_bundle=test_ca.cert_pem),
         "acme_server_unreachable", ("trust", "ca bundle", "ca_bundle")),
        # Not a DNS name: moat's own check, before the CA is asked.
        ("proxy", acme_body(pb, identifiers=["bad_name!"]),
         "invalid_schema", ("DNS names",)),
        # A DNS name to moat, which the CA refuses: its reason comes back.
        ("api", acme_body(pb, identifiers=["127.0.0.1"]),
         "acme_refused", ("IP address",)),
        # A wildcard needs dns-01.
        ("proxy", acme_body(pb, identifiers=["*.%s" % FQDN]),
         "invalid_schema", ("dns-01",)),
        ("proxy", acme_body(pb, directory_url=DROP), "invalid_schema", None),
        ("proxy", acme_body(pb, challenge="http-02"), "invalid_schema", None),
        ("proxy", acme_body(pb, challenge="dns-01"), "invalid_schema", None),
        ("proxy", acme_body(pb, http_port=0), "invalid_schema", None),
        ("proxy", acme_body(pb, http_port=65536), "invalid_schema", None),
        ("proxy", acme_body(pb, http_port=-1), "invalid_schema", None),
        ("proxy", acme_body(pb, http_port=str(pb.http_port)),
         "invalid_schema", None),
        ("proxy", acme_body(pb, key_type="ed25519"), "invalid_schema", None),
        ("proxy", acme_body(pb, key_type="rsa1024"), "invalid_schema", None),
    ] + [(name, acme_body(pb, challenge="tls-alpn-01"), "invalid_schema",
          None) for name in ("proxy", "syncer", "metrics_exporter")]

    # Every case is tried; the mismatches are listed together.
    problems = []
    for name, body, code, words in cases:
        shown = {k: v for k, v in body.items() if k != "ca_bundle"}
        r = call(n, "PUT", acme_path(name), body)
        try:
            err = assert_error(r, 400, code)
            if words:
                d = err["description"].lower()
                assert any(w.lower() in d for w in words), \
                    "want one of %s in the description, got %r" % (
                        words, err["description"])
        except AssertionError as e:
            problems.append("PUT %s %r: %s" % (name, shown, e))
        got = get_acme(n, name)
        if got is not None:
            problems.append("after PUT %s %r: GET wants 404, got %r" % (
                name, shown, got))
        if n.fingerprints() != before:
            problems.append("after PUT %s %r the certificates changed" % (
                name, shown))
    assert not problems, "%d of %d refusals wrong:\n%s" % (
        len(problems), len(cases), "\n".join(problems))

    # The base body itself is accepted: each refusal was its field's.
    j = put_acme(n, "proxy", acme_body(pb))
    assert j["identifiers"] == [FQDN], j
    assert j["challenge"] == "http-01" and j["key_type"] == "ec256", j
    assert j["contact"] == CONTACT and j["http_port"] == pb.http_port, j
    assert j["state"] in ("pending", "valid"), j
    for name in CERT_NAMES:
        if name != "proxy":
            assert get_acme(n, name) is None, name


# -- 2. http-01 on a two-node cluster -----------------------------------------

def test_proxy_http01_two_nodes(make_pebble, etcd1, make_node):
    n1, n2 = make_cluster(make_node, etcd1.url, 2)
    pb = make_pebble(node_addrs=(n1.addr, n2.addr))
    assert pb.resolve(FQDN) == [n1.addr]   # pebble validates against node 1
    dbs = []
    for n in (n1, n2):
        d = make_bdb(n)
        assert d["node_uid"] == n.uid, d
        dbs.append((n, d["port"]))
    old = cert_fp(n1, "proxy")

    j = put_acme(n2, "proxy", acme_body(pb))
    assert j["identifiers"] == [FQDN] and j["challenge"] == "http-01", j
    # One setting for the cluster: node 1 sees it too.
    assert wait_for(lambda: get_acme(n1, "proxy"), APPLY_WAIT, 0.2), \
        "node 1 does not see the ACME setting made on node 2"

    j = wait_issued(n2, "proxy", pb, old_fp=old)
    fp = j["fingerprint_sha256"]
    leaf = check_from_pebble(n2, "proxy", pb, j)
    assert certgen.key_description(leaf)[:2] == ("EC", 256), \
        certgen.key_description(leaf)
    for n in (n1, n2):
        assert wait_for(lambda: cert_fp(n, "proxy") == fp, APPLY_WAIT, 0.2), \
            "%s: proxy is %s, want %s" % (n.addr, cert_fp(n, "proxy"), fp)
        g = get_acme(n, "proxy")
        assert g["fingerprint_sha256"] == fp and g["state"] == "valid", g

    root_file = pb.roots_file()
    for n, port in dbs:
        wait_served(n.addr, port, root_file, fp)
        c = redis_client(n, port, ca=root_file)
        try:
            assert c.set("acme", n.addr) is True
            assert c.get("acme") == n.addr.encode()
        finally:
            c.close()


# -- 3. tls-alpn-01 on the API port -------------------------------------------

def test_api_tls_alpn01(make_pebble, node):
    n = node
    pb = make_pebble(tls_port=n.port)
    old = cert_fp(n, "api")
    cm = cert_fp(n, "cm")

    j = put_acme(n, "api", acme_body(pb, challenge="tls-alpn-01",
                                     key_type="rsa2048"))
    assert j["challenge"] == "tls-alpn-01" and j["key_type"] == "rsa2048", j
    j = wait_issued(n, "api", pb, old_fp=old)
    fp = j["fingerprint_sha256"]
    leaf = check_from_pebble(n, "api", pb, j)
    assert certgen.key_description(leaf)[:2] == ("RSA", 2048), \
        certgen.key_description(leaf)
    assert cert_fp(n, "api") == fp

    root_file = pb.roots_file()
    wait_served(n.addr, n.port, root_file, fp)
    # The API answers over the new certificate, trusting pebble's root.
    r = https_request(n.addr, n.port, "GET", "/v1/cluster", auth=n.creds,
                      cafile=root_file)
    assert r.status_code == 200, "GET /v1/cluster over the ACME " \
        "certificate: %d %s" % (r.status_code, r.text[:1000])
    r = https_request(n.addr, n.port, "GET", acme_path("api"), auth=n.creds,
                      cafile=root_file)
    assert r.status_code == 200 and r.json()["fingerprint_sha256"] == fp, \
        r.text[:1000]
    # The cm port keeps its own.
    assert cert_fp(n, "cm") == cm
    assert served_fingerprint(n.addr, n.cm_port) == cm


def proxy_served(n, pb, db_name):
    """A TLS database, the proxy certificate ordered over http-01 and
    served on its port: (port, GET .../acme, pebble's root file)."""
    port = make_bdb(n, name=db_name)["port"]
    put_acme(n, "proxy", acme_body(pb))
    j = wait_issued(n, "proxy", pb, old_fp=cert_fp(n, "proxy"))
    root_file = pb.roots_file()
    wait_served(n.addr, port, root_file, j["fingerprint_sha256"])
    return port, j, root_file


# -- 4. renewal under load ----------------------------------------------------

def test_renewal_under_load(make_pebble, db_node):
    n = db_node
    pb = make_pebble()
    port, j1, root_file = proxy_served(n, pb, "acme-load")
    fp1 = j1["fingerprint_sha256"]
    bundle = os.path.join(pb.dir, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(n.ca).read() + pb.roots_pem())

    stop = threading.Event()
    clients = [LoadClient(n, port, bundle, i, False, stop) for i in range(4)]
    for c in clients:
        assert c.peer == fp1, (c.name, c.peer, fp1)
    for c in clients:
        c.start()
    try:
        assert wait_for(lambda: all(c.commands >= 20 for c in clients),
                        APPLY_WAIT), \
            "clients not running: %s" % [c.commands for c in clients]
        renew(n, "proxy")
        j2 = wait_issued(n, "proxy", pb, old_fp=fp1)
        fp2 = j2["fingerprint_sha256"]
        wait_served(n.addr, port, root_file, fp2)
        # The clients go on over the swap.
        seen = [c.commands for c in clients]
        assert wait_for(lambda: all(c.commands >= s + 100 for c, s in
                                    zip(clients, seen)), APPLY_WAIT), \
            "clients stalled after the renewal: %s -> %s" % (
                seen, [c.commands for c in clients])
    finally:
        stop.set()
        for c in clients:
            c.join(30)

    assert j2["last_issued"] >= j1["last_issued"], (j1, j2)
    check_from_pebble(n, "proxy", pb, j2)
    assert cert_fp(n, "proxy") == fp2
    for c in clients:
        assert not c.is_alive(), "%s did not finish" % c.name
        assert not c.failures, "%s: %d failed commands, first: %s" % (
            c.name, len(c.failures), c.failures[:5])
        assert c.sock_changes == 0, "%s reconnected %d times" % (
            c.name, c.sock_changes)
        assert c.r.connection._sock is c.sock, c.name
        assert c.r.client_id() == c.client_id, \
            "%s: server-side client id changed" % c.name
        # Still the connection opened before the renewal.
        assert certgen.fingerprint_der(
            c.sock.getpeercert(binary_form=True)) == fp1, c.name
        c.r.close()


# -- 5. pebble down at renewal ------------------------------------------------

def test_pebble_down_at_renewal(make_pebble, db_node):
    n = db_node
    pb = make_pebble()
    port = make_bdb(n, name="acme-down")["port"]
    put_acme(n, "proxy", acme_body(pb))
    j1 = wait_issued(n, "proxy", pb, old_fp=cert_fp(n, "proxy"))
    fp1 = j1["fingerprint_sha256"]
    root1 = pb.roots_file("root-before.pem")
    wait_served(n.addr, port, root1, fp1)
    assert alert_state(n) is False, alerts(n)[ALERT]

    pb.stop()
    renew(n, "proxy")
    j = wait_acme(n, "proxy", lambda j: j["last_error"], ACME_WAIT,
                  "last_error after a renewal with pebble down", pb)
    assert j["tries"] >= 1, j
    assert j["state"] == "valid", "a certificate was issued before: %r" % j
    assert j["fingerprint_sha256"] == fp1, j
    assert j["next_try"] is not None, "a retry must be planned: %r" % j
    assert cert_fp(n, "proxy") == fp1
    assert served_by(n.addr, port, root1) == fp1
    wait_alert(n, True)

    # Retried with back-off, the first retry within ~30 s.
    tries = j["tries"]
    j = wait_acme(n, "proxy", lambda j: j["tries"] > tries, RETRY_WAIT,
                  "a retry after try %d" % tries, pb)
    assert j["last_error"] and j["fingerprint_sha256"] == fp1, j
    assert served_by(n.addr, port, root1) == fp1

    # Back on the same ports, with a new root and no memory of the account.
    pb.start()
    j3 = wait_issued(n, "proxy", pb, old_fp=fp1, timeout=RECOVER_WAIT)
    fp3 = j3["fingerprint_sha256"]
    assert j3["last_issued"] >= j1["last_issued"], (j1, j3)
    check_from_pebble(n, "proxy", pb, j3)
    assert cert_fp(n, "proxy") == fp3
    wait_served(n.addr, port, pb.roots_file("root-after.pem"), fp3)
    wait_alert(n, False)


# -- 6. DELETE ----------------------------------------------------------------

def test_delete(make_pebble, db_node):
    n = db_node
    pb = make_pebble()
    port, j, root_file = proxy_served(n, pb, "acme-delete")
    fp = j["fingerprint_sha256"]
    before = n.fingerprints()

    r = call(n, "DELETE", acme_path("proxy"))
    assert r.status_code == 200, "DELETE: want 200, got %d %s" % (
        r.status_code, r.text[:2000])
    r = call(n, "GET", acme_path("proxy"))
    assert r.status_code == 404, "GET after DELETE: want 404, got %d %s" % (
        r.status_code, r.text[:2000])
    assert n.fingerprints() == before
    assert cert_fp(n, "proxy") == fp
    assert served_by(n.addr, port, root_file) == fp


# -- 7. moatadm ---------------------------------------------------------------

def test_moatadm(make_pebble, db_node):
    """The same through moatadm's words: set (with the CA bundle read from
    a file), show, renew, delete; a wrong word is a usage error."""
    n = db_node
    pb = make_pebble()
    p = n.adm("cluster", "certificate", "acme", "metrics_exporter", "set",
              "directory_url", pb.directory_url, "http_port",
              str(pb.http_port), "ca_bundle_file", pb.ca_file,
              "contact", "mailto:a@example.com,mailto:b@example.com")
    assert p.returncode == 0, p.stderr
    assert "metrics_exporter: ordered from" in p.stdout, p.stdout
    j = wait_issued(n, "metrics_exporter", pb,
                    old_fp=cert_fp(n, "metrics_exporter"))
    p = n.adm("cluster", "certificate", "acme", "metrics_exporter", "show")
    assert p.returncode == 0, p.stderr
    assert "state: valid" in p.stdout, p.stdout
    assert j["fingerprint_sha256"] in p.stdout, p.stdout
    assert "ca_bundle: (given)" in p.stdout, p.stdout
    assert "PRIVATE KEY" not in p.stdout and "account_key" not in p.stdout
    p = n.adm("cluster", "certificate", "acme", "metrics_exporter", "renew")
    assert p.returncode == 0, p.stderr
    wait_issued(n, "metrics_exporter", pb, old_fp=j["fingerprint_sha256"])
    p = n.adm("cluster", "certificate", "acme", "metrics_exporter", "delete")
    assert p.returncode == 0, p.stderr
    p = n.adm("cluster", "certificate", "acme", "metrics_exporter", "show")
    assert p.returncode == 1 and "not ordered from an ACME CA" in p.stderr, \
        (p.returncode, p.stderr)
    p = n.adm("cluster", "certificate", "acme", "metrics_exporter", "set",
              "directory_url", pb.directory_url, "http_port", "x")
    assert p.returncode == 2 and "http_port" in p.stderr, \
        (p.returncode, p.stderr)
    p = n.adm("cluster", "certificate", "acme", "nosuch", "show")
    assert p.returncode != 0 and "nosuch" in p.stderr, (p.returncode,
                                                          p.stderr)


# -- 8. when renewal comes ----------------------------------------------------

def _ts(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_renewal_time(make_pebble, node):
    """Two thirds into the certificate's life by default; RS's
    expiry_days_before_rotation before its end once the operator set it."""
    n = node
    pb = make_pebble()
    put_acme(n, "cm", acme_body(pb))
    j = wait_issued(n, "cm", pb, old_fp=cert_fp(n, "cm"))
    start, end = _ts(j["last_issued"]), _ts(j["not_after"])
    want = start + (end - start) * 2 / 3
    got = _ts(j["next_renewal"])
    assert abs((got - want).total_seconds()) < 86400, (j, want)

    r = n.sock("PUT", "/v1/job_scheduler", {"cert_rotation_job_settings": {
        "expiry_days_before_rotation": 30}})
    assert r.status_code == 200, r.text
    r = call(n, "POST", acme_path("cm") + "/renew")
    assert r.status_code == 200, r.text
    j = wait_issued(n, "cm", pb, old_fp=j["fingerprint_sha256"])
    got, end = _ts(j["next_renewal"]), _ts(j["not_after"])
    assert abs((end - got).total_seconds() - 30 * 86400) < 120, j
