"""The legacy certificate files, improved: `moatadm cluster certificate
import <folder>` and SIGHUP with the files in <data-dir>/certs/.

A folder holds <name>_cert.pem / <name>_key.pem pairs (leaf only in the cert
file) and chain_certs.pem (roots and intermediates, in any order).  Every
pair is validated and the whole set applied to the cluster in one change:
no restart, no client dropped, all or nothing, what is already served left
alone ("Unchanged").  The import endpoint reads files on the node, so HTTPS
callers get 403.
"""

import os
import re
import signal
import ssl
import threading
import time

import pytest
import redis

import certgen
from moatlib import (CERT_NAMES, FP_RE, LoadClient, assert_error, dns_name, make_bdb,
                     make_cluster, openssl_s_client, served_cert_der,
                     wait_for)

LINE_RE = re.compile(r"^(Imported|Unchanged) certificate (\S+): version "
                     r"(\d+), fingerprint (\S+)$")


# -- helpers -------------------------------------------------------------------

def leaf_for(n, issuer, ips=None, **kw):
    """A leaf valid for every certificate name: FQDN and *.FQDN (proxy),
    serverAuth + clientAuth (syncer), the node's address."""
    kw.setdefault("sans", certgen.service_sans(n.fqdn, ips or (n.addr,)))
    return certgen.make_leaf(issuer, **kw)


def write_folder(d, pairs, chain=(), chain_order=None):
    """pairs: {name: Issued or (cert_pem, key_pem)}; the cert file holds the
    leaf only.  chain: Issued CAs written to chain_certs.pem."""
    os.makedirs(d, exist_ok=True)
    for name, p in pairs.items():
        cert_pem, key_pem = (p.cert_pem, p.key_pem) if isinstance(
            p, certgen.Issued) else p
        if cert_pem is not None:
            with open(os.path.join(d, "%s_cert.pem" % name), "w") as f:
                f.write(cert_pem)
        if key_pem is not None:
            with open(os.path.join(d, "%s_key.pem" % name), "w") as f:
                f.write(key_pem)
    if chain:
        with open(os.path.join(d, "chain_certs.pem"), "w") as f:
            f.write("".join(c.cert_pem for c in chain))
    return d


def ca_file(n, *cas, name="trust.pem"):
    path = os.path.join(n.tmp, name)
    with open(path, "w") as f:
        f.write("".join(c.cert_pem for c in cas))
    return path


def versions(n):
    return {c: n.cert_info(c)["version"] for c in CERT_NAMES}


def node_report(n, uid):
    """{name: (version, fingerprint)} as GET /v1/nodes/<uid> reports it."""
    r = n.sock("GET", "/v1/nodes/%d" % uid)
    assert r.status_code == 200, r.text
    return {k: (v.get("version"), v["fingerprint_sha256"])
            for k, v in r.json()["certificates"].items()}


def run_import(n, folder):
    return n.adm("cluster", "certificate", "import", folder)


def import_lines(p):
    """{name: (verb, version, fingerprint)} from moatadm's output; every
    line of stdout must be one of them."""
    assert p.returncode == 0, "rc=%d\nstdout: %s\nstderr: %s" % (
        p.returncode, p.stdout, p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        if not line.strip():
            continue
        m = LINE_RE.match(line)
        assert m, "unexpected line %r in:\n%s" % (line, p.stdout)
        assert FP_RE.match(m.group(4)), line
        assert m.group(2) not in out, "%s printed twice:\n%s" % (
            m.group(2), p.stdout)
        out[m.group(2)] = (m.group(1), int(m.group(3)), m.group(4))
    return out


def import_fails(n, folder, *words):
    """moatadm import that must fail: non-zero exit, `Error: ...` on
    stderr containing every word, nothing on stdout."""
    p = run_import(n, folder)
    assert p.returncode != 0, "import of %s succeeded:\n%s" % (folder,
                                                               p.stdout)
    assert p.stderr.startswith("Error: "), p.stderr
    for w in words:
        assert w in p.stderr, "%r not in %r" % (w, p.stderr)
    assert "Imported" not in p.stdout, p.stdout
    return p


def served_chain(addr, port, servername):
    """Fingerprints of the chain a fresh handshake presents (openssl)."""
    s = openssl_s_client(addr, port, "-showcerts", servername=servername)
    assert s.returncode == 0, s.stderr
    return [certgen.fingerprint(c) for c in certgen.load_pem_chain(s.stdout)]


def events(n, typ):
    r = n.sock("GET", "/v1/logs?limit=1000")
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e.get("type") == typ]


def file_chain(n, name):
    with open(n.cert_file(name)) as f:
        return [certgen.fingerprint(c) for c in certgen.load_pem_chain(f.read())]


# -- load ----------------------------------------------------------------------

class Connector(threading.Thread):
    """New connections without pause: a handshake verified against trust,
    SET/GET, close.  Records the certificate each one was served."""

    def __init__(self, n, port, trust, stop):
        super().__init__(name="connector", daemon=True)
        self.n, self.port, self.trust, self.stop = n, port, trust, stop
        self.seen = []  # (monotonic time before connecting, fingerprint)
        self.failures = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                # Taken before the connection is made (the constructor
                # connects): t > end of the import means a handshake that
                # started after moatadm returned.
                t = time.monotonic()
                r = redis.Redis(host=self.n.addr, port=self.port, ssl=True,
                                ssl_ca_certs=self.trust, socket_timeout=10,
                                socket_connect_timeout=10,
                                single_connection_client=True)
                fp = certgen.fingerprint_der(
                    r.connection._sock.getpeercert(binary_form=True))
                assert r.set("new:%d" % i, i) is True
                assert r.get("new:%d" % i) == str(i).encode()
                r.close()
                self.seen.append((t, fp))
            except Exception as e:
                self.failures.append("%d: %r" % (i, e))
                if len(self.failures) > 20:
                    return
            i += 1


class Watcher(threading.Thread):
    """Reads the five certificates (GET /v1/cluster/certificates, one
    answer) and this node's report (GET /v1/nodes/<uid>) without pause:
    each must be entirely the old set or entirely the new one."""

    def __init__(self, n, uid, old, new, stop):
        super().__init__(name="watcher", daemon=True)
        self.n, self.uid, self.old, self.new, self.stop = n, uid, old, new, \
            stop
        self.mixed = []
        self.states = set()
        self.reads = 0

    def classify(self, fps):
        if fps == self.old:
            return "old"
        if fps == self.new:
            return "new"
        return None

    def run(self):
        while not self.stop.is_set():
            try:
                r = self.n.sock("GET", "/v1/cluster/certificates")
                body = r.json()
                fps = {c: certgen.fingerprint(body["%s_cert" % c])
                       for c in CERT_NAMES}
                st = self.classify(fps)
                if st is None:
                    self.mixed.append(("certificates", fps))
                else:
                    self.states.add(st)
                rep = {k: v[1] for k, v in
                       node_report(self.n, self.uid).items()}
                st = self.classify({c: rep[c] for c in CERT_NAMES})
                if st is None:
                    self.mixed.append(("node report", rep))
                else:
                    self.states.add(st)
                self.reads += 1
            except Exception as e:
                self.mixed.append(("error", repr(e)))
                if len(self.mixed) > 20:
                    return


# -- tests ---------------------------------------------------------------------

def test_import_under_load(db_node, test_ca):
    """Five pairs from an intermediate, while clients run commands: no
    failed command, no dropped connection, every new connection served and
    the new proxy certificate with its intermediate from the import on, all
    five versions up by one together, never half of them."""
    n = db_node
    inter = certgen.make_intermediate(test_ca, "legacy import intermediate")
    db = make_bdb(n, tls=True, name="legacy")
    port = db["port"]
    sni = dns_name(n, port)
    leaves = {c: leaf_for(n, inter) for c in CERT_NAMES}
    folder = write_folder(os.path.join(n.tmp, "import"), leaves,
                          chain=(test_ca, inter))
    with open(n.ca) as f:
        cluster_ca = f.read()
    both = os.path.join(n.tmp, "both.pem")
    with open(both, "w") as f:
        f.write(cluster_ca + test_ca.cert_pem)
    root_only = ca_file(n, test_ca, name="root-only.pem")

    v0 = versions(n)
    fp0 = n.fingerprints()
    assert all(fp0[c] != leaves[c].fingerprint for c in CERT_NAMES)
    assert certgen.fingerprint_der(
        served_cert_der(n.addr, port, sni, cafile=n.ca)) == fp0["proxy"]
    updated0 = len(events(n, "certificate_updated"))

    stop = threading.Event()
    clients = [LoadClient(n, port, both, i, i >= 3, stop, batch_size=40)
               for i in range(6)]
    assert len({c.client_id for c in clients}) == len(clients)
    assert all(c.peer == fp0["proxy"] for c in clients)
    connector = Connector(n, port, both, stop)
    watcher = Watcher(n, 1, fp0, {c: leaves[c].fingerprint
                                  for c in CERT_NAMES}, stop)
    threads = clients + [connector, watcher]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        t_import = time.monotonic()
        p = run_import(n, folder)
        t_done = time.monotonic()
        # Right after moatadm returns, a fresh handshake that trusts only
        # the test root verifies (the intermediate is sent) and sees the
        # new proxy leaf.
        fresh = certgen.fingerprint_der(
            served_cert_der(n.addr, port, sni, cafile=root_only))
        time.sleep(0.7)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    print("import took %.2fs; commands %s; new connections %d; reads %d" % (
        t_done - t_import, {c.name: c.commands for c in clients},
        len(connector.seen), watcher.reads))

    lines = import_lines(p)
    assert set(lines) == set(CERT_NAMES), p.stdout
    for c in CERT_NAMES:
        assert lines[c] == ("Imported", v0[c] + 1, leaves[c].fingerprint), \
            (c, lines[c], v0[c])
    assert fresh == leaves["proxy"].fingerprint

    for c in clients:
        assert not c.is_alive(), "%s did not finish" % c.name
        assert not c.failures, "%s: %d failed commands, first: %s" % (
            c.name, len(c.failures), c.failures[:5])
        assert c.commands >= 50, "%s ran only %d commands" % (c.name,
                                                              c.commands)
        assert c.sock_changes == 0, "%s reconnected" % c.name
        assert c.r.connection._sock is c.sock
        assert c.r.client_id() == c.client_id, c.name
        # The connection still holds the certificate it was opened with.
        assert certgen.fingerprint_der(
            c.sock.getpeercert(binary_form=True)) == fp0["proxy"]
        c.r.close()
    assert not connector.is_alive()
    assert not connector.failures, connector.failures[:5]
    assert connector.seen, "no new connection was made"
    after = [fp for t, fp in connector.seen if t > t_done]
    assert after, "no new connection after the import"
    assert set(after) == {leaves["proxy"].fingerprint}, set(after)
    assert {fp for _, fp in connector.seen} <= {
        fp0["proxy"], leaves["proxy"].fingerprint}
    assert not watcher.is_alive()
    assert not watcher.mixed, "half-applied states seen: %r" % (
        watcher.mixed[:3],)
    assert watcher.states == {"old", "new"}, watcher.states

    # All five: version + 1, chain leaf + intermediate, files on disk.
    for c in CERT_NAMES:
        info = n.cert_info(c)
        assert info["version"] == v0[c] + 1, (c, info["version"], v0[c])
        assert info["fingerprint_sha256"] == leaves[c].fingerprint, c
        assert info["chain_length"] == 2, (c, info)
        assert info["issued_by_cluster_ca"] is False, c
        assert file_chain(n, c) == [leaves[c].fingerprint,
                                    inter.fingerprint], c
        key = certgen.load_key(open(n.key_file(c)).read())
        assert certgen.public_key_der(key) == \
            certgen.public_key_der(leaves[c].cert), c
    assert node_report(n, 1) == {c: (v0[c] + 1, leaves[c].fingerprint)
                                 for c in CERT_NAMES}
    # The served proxy chain: leaf then intermediate, no root.
    assert served_chain(n.addr, port, sni) == [leaves["proxy"].fingerprint,
                                               inter.fingerprint]
    # The API port too, verified against the test root only.
    assert certgen.fingerprint_der(served_cert_der(
        n.addr, n.port, n.fqdn, cafile=root_only)) == leaves["api"].fingerprint
    # One certificate_updated event each, recorded together.
    evs = events(n, "certificate_updated")
    assert len(evs) == updated0 + 5, evs[:7]
    new = {e["name"]: e for e in evs[:5]}
    assert set(new) == set(CERT_NAMES), evs[:5]
    for c in CERT_NAMES:
        assert new[c]["version"] == v0[c] + 1, new[c]
        assert new[c]["new_fingerprint_sha256"] == leaves[c].fingerprint
        assert new[c]["old_fingerprint_sha256"] == fp0[c]
    assert len({e["time"] for e in new.values()}) == 1, \
        [e["time"] for e in new.values()]
    assert n.alive()


def test_import_through_node1_served_by_node2(make_node, etcd1, test_ca):
    """Two nodes on one etcd: the import through node 1 is what node 2
    serves when moatadm returns.  Two intermediates; chain_certs.pem has
    them and the root in a scrambled order plus an unrelated CA: each leaf
    gets only its own intermediate."""
    first, second = make_cluster(make_node, etcd1.url, 2)
    ips = (first.addr, second.addr)
    inter_a = certgen.make_intermediate(test_ca, "legacy intermediate A")
    inter_b = certgen.make_intermediate(test_ca, "legacy intermediate B")
    other = certgen.make_ca("unrelated CA")
    issuer = {"api": inter_a, "cm": inter_a, "proxy": inter_b,
              "syncer": inter_b, "metrics_exporter": inter_b}
    leaves = {c: leaf_for(first, issuer[c], ips=ips) for c in CERT_NAMES}
    folder = write_folder(os.path.join(first.tmp, "import"), leaves,
                          chain=(inter_b, other, test_ca, inter_a))
    v0 = versions(first)
    assert versions(second) == v0

    lines = import_lines(run_import(first, folder))
    assert {c: lines[c] for c in CERT_NAMES} == {
        c: ("Imported", v0[c] + 1, leaves[c].fingerprint)
        for c in CERT_NAMES}

    want = {c: (v0[c] + 1, leaves[c].fingerprint) for c in CERT_NAMES}
    root_only = ca_file(first, test_ca, name="root-only.pem")
    for n, uid in ((first, 1), (second, 2)):
        assert node_report(n, uid) == want, uid
        for c in CERT_NAMES:
            info = n.cert_info(c)
            assert (info["version"], info["fingerprint_sha256"],
                    info["chain_length"]) == (v0[c] + 1,
                                              leaves[c].fingerprint, 2), \
                (uid, c, info)
            assert file_chain(n, c) == [leaves[c].fingerprint,
                                        issuer[c].fingerprint], (uid, c)
        # Each TLS port of the node serves its new leaf, verified against
        # the test root alone (so the intermediate is sent).
        for port, c in ((n.port, "api"), (n.cm_port, "cm"),
                        (n.metrics_port, "metrics_exporter")):
            got = certgen.fingerprint_der(served_cert_der(
                n.addr, port, n.fqdn, cafile=root_only))
            assert got == leaves[c].fingerprint, (uid, c)
    assert served_chain(second.addr, second.port, second.fqdn) == \
        [leaves["api"].fingerprint, inter_a.fingerprint]
    # Importing the same folder through node 2 changes nothing anywhere.
    lines = import_lines(run_import(second, folder))
    assert {c: lines[c][0] for c in CERT_NAMES} == \
        {c: "Unchanged" for c in CERT_NAMES}
    assert node_report(first, 1) == node_report(second, 2) == want



@pytest.mark.parametrize("kind", ["key-mismatch", "expired"])
def test_one_bad_pair_imports_nothing(node, test_ca, kind):
    """Good pairs around one bad one: non-zero exit, the error names the
    bad certificate, and no certificate changes at all."""
    n = node
    inter = certgen.make_intermediate(test_ca, "all or nothing")
    pairs = {"api": leaf_for(n, inter), "proxy": leaf_for(n, inter),
             "syncer": leaf_for(n, inter)}
    if kind == "key-mismatch":
        # cm sits between good pairs (api before it, proxy after).
        bad, why = "cm", "does not match"
        pairs[bad] = (leaf_for(n, inter).cert_pem, leaf_for(n, inter).key_pem)
    else:
        # metrics_exporter comes last: the good ones were read first.
        bad, why = "metrics_exporter", "expired"
        pairs[bad] = leaf_for(n, inter, expired=True)
    folder = write_folder(os.path.join(n.tmp, "import"), pairs,
                          chain=(inter, test_ca))
    before = n.snapshot()
    v0 = versions(n)
    infos = {c: n.cert_info(c) for c in CERT_NAMES}
    updated0 = len(events(n, "certificate_updated"))

    p = import_fails(n, folder, bad, why)
    first = p.stderr.splitlines()[0]
    assert first.startswith("Error: %s certificate" % bad), p.stderr
    for other in ("api", "proxy", "syncer"):
        assert "%s certificate" % other not in p.stderr, p.stderr

    assert versions(n) == v0
    assert {c: n.cert_info(c) for c in CERT_NAMES} == infos
    assert n.snapshot() == before
    assert node_report(n, 1) == {c: (v0[c], before["fingerprints"][c])
                                 for c in CERT_NAMES}
    assert len(events(n, "certificate_updated")) == updated0
    # The good pairs alone go in afterwards: nothing was half-taken.
    os.remove(os.path.join(folder, "%s_cert.pem" % bad))
    os.remove(os.path.join(folder, "%s_key.pem" % bad))
    lines = import_lines(run_import(n, folder))
    assert set(lines) == {"api", "proxy", "syncer"}, lines
    for c in lines:
        assert lines[c] == ("Imported", v0[c] + 1, pairs[c].fingerprint)
    assert n.cert_info(bad)["version"] == v0[bad]


def test_import_errors(ro_node, test_ca):
    """Refused imports: exit non-zero with `Error: ...`, nothing changes.
    Over HTTPS the endpoint is forbidden, even to the admin."""
    n = ro_node
    base = os.path.join(n.tmp, "errors")
    good = leaf_for(n, test_ca)
    other = leaf_for(n, test_ca)
    before = n.snapshot()
    v0 = versions(n)
    updated0 = len(events(n, "certificate_updated"))

    # A cert file without its key (and a complete pair next to it).
    d = write_folder(os.path.join(base, "no-key"),
                     {"api": good, "proxy": (other.cert_pem, None)})
    import_fails(n, d, "%s/proxy_cert.pem is there but not proxy_key.pem"
                 % d, "give both files of a pair")
    # A key file without its cert.
    d = write_folder(os.path.join(base, "no-cert"),
                     {"syncer": (None, other.key_pem)})
    import_fails(n, d, "%s/syncer_key.pem is there but not syncer_cert.pem"
                 % d, "give both files of a pair")
    # An empty folder; one with only chain_certs.pem; one with other files.
    d = write_folder(os.path.join(base, "empty"), {})
    import_fails(n, d, "no certificate files in %s" % d)
    d = write_folder(os.path.join(base, "chain-only"), {}, chain=(test_ca,))
    import_fails(n, d, "no certificate files in %s" % d)
    d = write_folder(os.path.join(base, "other-names"),
                     {"ldap": good, "API": good})
    import_fails(n, d, "no certificate files in %s" % d)
    # A missing folder, and a file where a folder should be.
    import_fails(n, os.path.join(base, "missing"), "cannot open folder",
                 os.path.join(base, "missing"))
    f = os.path.join(base, "a-file")
    with open(f, "w") as fh:
        fh.write(good.cert_pem)
    import_fails(n, f)
    # A cert file that holds no certificate.
    d = write_folder(os.path.join(base, "garbage"),
                     {"proxy": ("not a certificate\n", good.key_pem)})
    import_fails(n, d, "proxy certificate")
    # A pair valid for another cluster's name.
    wrong = certgen.make_leaf(test_ca, sans=["DNS:other.moat.test"])
    d = write_folder(os.path.join(base, "wrong-name"), {"proxy": wrong})
    import_fails(n, d, "proxy certificate")

    # The endpoint over HTTPS: 403 forbidden, for a valid folder too.
    d = write_folder(os.path.join(base, "valid"), {"api": good},
                     chain=(test_ca,))
    r = n.https("POST", "/v1/cluster/certificates/import", {"folder": d})
    body = assert_error(r, 403, "forbidden")
    assert "socket" in body["description"], body
    r = n.https("POST", "/v1/cluster/certificates/import", {"folder": d},
                auth=None)
    assert r.status_code == 401, r.text
    # On the socket: the body must be {"folder": <absolute path>}.
    for bad in ({"folder": "relative/dir"}, {}, {"folder": d, "more": 1},
                {"folder": 7}):
        assert_error(n.sock("POST", "/v1/cluster/certificates/import", bad),
                     400, "invalid_schema")
    r = n.sock("POST", "/v1/cluster/certificates/import",
               {"folder": os.path.join(base, "missing")})
    assert r.status_code == 400, r.text

    assert versions(n) == v0
    assert n.snapshot() == before
    assert len(events(n, "certificate_updated")) == updated0
    assert n.alive()


def test_bad_chain_file_is_named(ro_node, test_ca):
    """chain_certs.pem that holds no certificate: nothing is imported, and
    the error names chain_certs.pem, the file to fix, rather than blaming
    a certificate file that is fine."""
    n = ro_node
    inter = certgen.make_intermediate(test_ca, "bad chain intermediate")
    leaf = leaf_for(n, inter)
    d = write_folder(os.path.join(n.tmp, "bad-chain"), {"proxy": leaf})
    with open(os.path.join(d, "chain_certs.pem"), "w") as f:
        f.write("this is not a certificate\n")
    before = n.snapshot()
    v0 = versions(n)
    p = import_fails(n, d)
    assert versions(n) == v0
    assert n.snapshot() == before
    assert "chain_certs.pem" in p.stderr, p.stderr


def test_import_again_is_unchanged(node, test_ca):
    """The same folder twice: the second time every line is Unchanged and
    nothing changes; the served files themselves (DIR/certs) are already in
    place; a folder with one new pair changes that one only."""
    n = node
    inter = certgen.make_intermediate(test_ca, "again intermediate")
    leaves = {c: leaf_for(n, inter) for c in CERT_NAMES}
    folder = write_folder(os.path.join(n.tmp, "import"), leaves,
                          chain=(inter, test_ca))
    v0 = versions(n)
    lines = import_lines(run_import(n, folder))
    assert lines == {c: ("Imported", v0[c] + 1, leaves[c].fingerprint)
                     for c in CERT_NAMES}, lines
    v1 = versions(n)
    before = n.snapshot()
    updated = len(events(n, "certificate_updated"))

    unchanged = {c: ("Unchanged", v1[c], leaves[c].fingerprint)
                 for c in CERT_NAMES}
    assert import_lines(run_import(n, folder)) == unchanged
    # What moatd wrote into DIR/certs (leaf + intermediate, its own
    # chain_certs.pem) is what is served: nothing to do.
    assert import_lines(run_import(n, n.certs_dir)) == unchanged
    assert versions(n) == v1
    assert n.snapshot() == before
    assert len(events(n, "certificate_updated")) == updated

    # One pair replaced, the rest as they are.
    new_proxy = leaf_for(n, inter)
    write_folder(folder, {"proxy": new_proxy})
    lines = import_lines(run_import(n, folder))
    want = dict(unchanged, proxy=("Imported", v1["proxy"] + 1,
                                  new_proxy.fingerprint))
    assert lines == want, lines
    assert versions(n) == dict(v1, proxy=v1["proxy"] + 1)
    evs = events(n, "certificate_updated")
    assert len(evs) == updated + 1
    assert (evs[0]["name"], evs[0]["version"]) == ("proxy", v1["proxy"] + 1)


def wait_log(n, offset, needle, timeout=5):
    got = wait_for(lambda: needle in n.log[offset:], timeout, 0.05)
    assert got, "no %r in moatd's log within %ds; new lines:\n%s" % (
        needle, timeout, n.log[offset:][-3000:])
    return [l for l in n.log[offset:].splitlines() if needle in l]


def sighup(n, needle, timeout=5):
    offset = len(n.log)
    os.kill(n.proc.pid, signal.SIGHUP)
    lines = wait_log(n, offset, needle, timeout)
    assert n.alive(), "moatd exited after SIGHUP:\n%s" % n.log[-3000:]
    return lines


def test_sighup_imports_certs_dir(db_node, test_ca):
    """New proxy files in DIR/certs (its intermediate appended to
    chain_certs.pem) and kill -HUP: served within seconds, 1 changed and 4
    already in place, moatd still running, a connected client untouched.
    A bad pair then imports nothing."""
    n = db_node
    inter = certgen.make_intermediate(test_ca, "sighup intermediate")
    db = make_bdb(n, tls=True, name="hup")
    port = db["port"]
    sni = dns_name(n, port)
    root_only = ca_file(n, test_ca, name="root-only.pem")
    client = redis.Redis(host=n.addr, port=port, ssl=True,
                         ssl_ca_certs=n.ca, socket_timeout=10,
                         single_connection_client=True)
    try:
        cid = client.client_id()
        assert client.set("k", "v0") is True
        v0 = versions(n)
        fp0 = n.fingerprints()
        served0 = n.served_fp()

        # Nothing new in DIR/certs: nothing changes.
        sighup(n, "SIGHUP: imported %s: 0 certificate(s) changed, 5 "
               "already in place" % n.certs_dir)
        assert versions(n) == v0

        leaf = leaf_for(n, inter)
        write_folder(n.certs_dir, {"proxy": leaf})
        with open(os.path.join(n.certs_dir, "chain_certs.pem"), "a") as f:
            f.write(inter.cert_pem)
        sighup(n, "SIGHUP: imported %s: 1 certificate(s) changed, 4 already "
               "in place" % n.certs_dir)
        def new_served():
            # Until the node applied it, the old certificate (which
            # root_only does not trust) is what a handshake meets.
            try:
                return certgen.fingerprint_der(served_cert_der(
                    n.addr, port, sni, cafile=root_only)) == leaf.fingerprint
            except ssl.SSLError:
                return False
        got = wait_for(new_served, 5)
        assert got, "the new proxy certificate is not served"
        assert served_chain(n.addr, port, sni) == [leaf.fingerprint,
                                                   inter.fingerprint]
        info = n.cert_info("proxy")
        assert (info["version"], info["fingerprint_sha256"],
                info["chain_length"]) == (v0["proxy"] + 1, leaf.fingerprint,
                                          2), info
        assert versions(n) == dict(v0, proxy=v0["proxy"] + 1)
        assert n.fingerprints() == dict(fp0, proxy=leaf.fingerprint)
        assert n.served_fp() == served0
        ev = events(n, "certificate_updated")[0]
        assert (ev["name"], ev["version"], ev["new_fingerprint_sha256"]) == \
            ("proxy", v0["proxy"] + 1, leaf.fingerprint), ev
        # The client connected before is still the same connection.
        assert client.get("k") == b"v0"
        assert client.client_id() == cid

        # A bad pair (key of another certificate): nothing imported.
        v1 = versions(n)
        a, b = leaf_for(n, inter), leaf_for(n, inter)
        write_folder(n.certs_dir, {"proxy": (a.cert_pem, b.key_pem)})
        lines = sighup(n, "SIGHUP: nothing imported from %s: " % n.certs_dir)
        assert any("proxy" in l for l in lines), lines
        time.sleep(0.3)
        assert versions(n) == v1
        assert n.cert_info("proxy")["fingerprint_sha256"] == leaf.fingerprint
        assert certgen.fingerprint_der(served_cert_der(
            n.addr, port, sni, cafile=root_only)) == leaf.fingerprint
        # A cert file without its key: nothing imported either.
        os.remove(n.key_file("proxy"))
        lines = sighup(n, "SIGHUP: nothing imported from %s: " % n.certs_dir)
        assert any("proxy_key.pem" in l for l in lines), lines
        assert versions(n) == v1
        assert client.get("k") == b"v0"
        assert client.client_id() == cid
        assert n.alive()
    finally:
        client.close()


def test_sighup_without_cluster(fresh_node):
    """SIGHUP before the cluster exists: logged, moatd keeps running."""
    n = fresh_node
    lines = sighup(n, "SIGHUP: ")
    assert any("no cluster" in l for l in lines), lines
    assert n.sock("POST", "/v1/bootstrap/create_cluster", {
        "action": "create_cluster", "cluster": {"name": n.fqdn},
        "credentials": {"username": n.email, "password": n.password}}
    ).status_code == 200
    sighup(n, "SIGHUP: imported %s: 0 certificate(s) changed, 5 already in "
           "place" % n.certs_dir)
