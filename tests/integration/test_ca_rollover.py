"""Cluster CA rollover, make-before-break (issue 10): POST
/v1/cluster/certificates/ca/rotate publishes a new CA next to the old one
(ca.pem on every node, /ca.pem on the cm port), re-issues the cluster CA's
leaves from it once the grace period is over, and drops the old CA once
every live node serves the new leaves.

The point of it: a client that re-reads the trust bundle now and then
during the grace period never fails to verify, before, during or after the
switch.  test_client_that_refreshes_never_fails runs such a client (new
connections to a database, to the API and to the cm port) through a whole
rollover."""

import datetime
import http.client
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time

import redis
import requests
from cryptography import x509

import certgen
from moatlib import (CERT_NAMES, FP_RE, TIME_SCALE, assert_error,
                     basic_auth_header, dns_name, make_bdb, make_cluster,
                     resp_ping, sha256_file, served_cert_der,
                     tls_client_context, wait_for)

CA_PATH = "/v1/cluster/certificates/ca"
ROTATE_PATH = "/v1/cluster/certificates/ca/rotate"
DAY = 86400.0
# Jobs tick every 5 s: the switch comes at most one tick after reissue_at,
# the drop of the old CA about one tick after the switch.
TICK = 5.0
ROLLOVER_TIMEOUT = 40.0 * TIME_SCALE


# -- helpers ------------------------------------------------------------------

def ca_get(n):
    r = n.sock("GET", CA_PATH)
    assert r.status_code == 200, r.text
    return r.json()


def roles(doc):
    return [(c["role"], c["fingerprint_sha256"]) for c in doc["certificates"]]


def state(doc):
    return doc["rollover"]["state"]


def pem_fps(text):
    return [certgen.fingerprint(c) for c in certgen.load_pem_chain(text)]


def file_fps(path):
    with open(path) as f:
        return pem_fps(f.read())


def cm_url(n, path="/ca.pem"):
    return "https://%s:%d%s" % (n.addr, n.cm_port, path)


def cm_ca_fps(n, cafile=None):
    """The CAs /ca.pem on n's cm port holds; the download verified against
    cafile with the cluster FQDN (every node's certificate names it;
    the first ones do not name a node that joined later by IP)."""
    status, body, _ = https_get(n.addr, n.cm_port, "/ca.pem", cafile,
                                n.fqdn)
    assert status == 200, body[:500]
    return pem_fps(body)


def events(n, type_=None):
    r = n.sock("GET", "/v1/logs")
    assert r.status_code == 200, r.text
    return [e for e in r.json() if type_ is None or e.get("type") == type_]


def parse_iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def write(d, name, text):
    p = os.path.join(d, name)
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, p)
    return p


def signer(der, cas):
    """Which of cas ({label: cryptography cert}) issued the DER leaf."""
    leaf = x509.load_der_x509_certificate(der)
    for label, ca in cas.items():
        if certgen.verify_issued_by(leaf, ca):
            return label
    return "unknown issuer %s" % leaf.issuer.rfc4514_string()


def ca_certs(doc):
    """{fingerprint: cryptography cert} of every CA in a GET .../ca answer."""
    return {certgen.fingerprint(c): c for c in
            certgen.load_pem_chain(doc["pem"])}


def is_verify_error(ex):
    s = repr(ex)
    return (isinstance(ex, ssl.SSLCertVerificationError) or
            "CERTIFICATE_VERIFY_FAILED" in s or
            "certificate verify failed" in s)


def https_get(addr, port, path, cafile, servername, auth=None, timeout=10):
    """GET on a fresh TLS connection verified against cafile (host name
    checked; no verification without cafile); returns (status, body text,
    peer DER)."""
    ctx = tls_client_context(cafile=cafile)
    raw = socket.create_connection((addr, port), timeout=timeout)
    conn = http.client.HTTPSConnection(addr, port, context=ctx,
                                       timeout=timeout)
    try:
        conn.sock = ctx.wrap_socket(raw, server_hostname=servername)
        conn.auto_open = 0
        der = conn.sock.getpeercert(binary_form=True)
        hdrs = {"Host": addr, "Connection": "close"}
        if auth:
            hdrs["Authorization"] = basic_auth_header(*auth)
        conn.request("GET", path, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace"), der
    finally:
        conn.close()
        raw.close()


def wait_rollover_done(n, timeout=ROLLOVER_TIMEOUT, sample=None):
    """Poll GET .../ca until the state is "none" again; returns the states
    seen, in order, without repeats.  sample() runs between polls."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        doc = ca_get(n)
        if not seen or seen[-1] != state(doc):
            seen.append(state(doc))
        if state(doc) == "none":
            return seen, doc
        assert time.monotonic() < deadline, \
            "rollover not complete after %.0f s: states %s, now %r" % (
                timeout, seen, {k: v for k, v in doc.items() if k != "pem"})
        if sample is not None:
            sample()
        time.sleep(0.3)


# -- 1. a client that keeps reconnecting --------------------------------------

class Reconnector(threading.Thread):
    """What an operator's client does: now and then it re-reads the trust
    bundle (downloads /ca.pem from the cm port, verified against the bundle
    it has), and it opens a NEW verified TLS connection for every piece of
    work: redis-py to the database (host name = the IP, checked), a raw
    TLS socket with SNI redis-<port>.<fqdn> (checked against *.<fqdn>), and
    the API (checked against the cluster FQDN)."""

    def __init__(self, n, port, workdir, stop, refresh_every):
        super().__init__(name="reconnector", daemon=True)
        self.n, self.port, self.stop = n, port, stop
        self.refresh_every = refresh_every
        with open(n.ca) as f:
            self.bundle = write(workdir, "trust.pem", f.read())
        self.bundles = [(time.time(), file_fps(self.bundle))]
        self.leaves = {"redis": [], "sni": [], "api": [], "cm": []}
        self.refresh_kinds = []
        self.connections = 0
        self.verify_failures = []
        self.failures = []

    def refresh(self):
        # Mostly a download verified against what it trusts already; now
        # and then the node's own ca.pem file (which must never be seen
        # half written).
        if len(self.bundles) % 3 == 2:
            with open(self.n.ca) as f:
                text = f.read()
            how = "file"
        else:
            r = requests.get(cm_url(self.n), verify=self.bundle, timeout=10)
            assert r.status_code == 200, (r.status_code, r.text[:300])
            text, how = r.text, "download"
        fps = pem_fps(text)
        assert fps and text.count("-----BEGIN") == len(fps), (how, text)
        write(os.path.dirname(self.bundle), "trust.pem", text)
        self.bundles.append((time.time(), fps))
        self.refresh_kinds.append(how)

    def cm(self):
        # The cm port's own leaf, as a fresh verified handshake sees it.
        der = served_cert_der(self.n.addr, self.n.cm_port, self.n.fqdn,
                              cafile=self.bundle)
        self.leaves["cm"].append((time.time(), der))

    def redis_once(self, i):
        c = redis.Redis(host=self.n.addr, port=self.port, ssl=True,
                        ssl_ca_certs=self.bundle, ssl_cert_reqs="required",
                        ssl_check_hostname=True, socket_timeout=10,
                        socket_connect_timeout=10,
                        single_connection_client=True)
        try:
            der = c.connection._sock.getpeercert(binary_form=True)
            assert c.ping() is True
            assert c.set("rc:%d" % (i % 50), "v%d" % i) is True
            assert c.get("rc:%d" % (i % 50)) == b"v%d" % i
        finally:
            c.close()
        self.leaves["redis"].append((time.time(), der))

    def sni_once(self):
        ctx = ssl.create_default_context(cafile=self.bundle)
        raw = socket.create_connection((self.n.addr, self.port), timeout=10)
        try:
            s = ctx.wrap_socket(raw, server_hostname=dns_name(self.n,
                                                              self.port))
        except BaseException:
            raw.close()
            raise
        try:
            der = s.getpeercert(binary_form=True)
            got = resp_ping(s)
            assert got == b"+PONG\r\n", got
        finally:
            s.close()
        self.leaves["sni"].append((time.time(), der))

    def api_once(self):
        status, _, der = https_get(self.n.addr, self.n.port, "/v1/cluster",
                                self.bundle, self.n.fqdn, self.n.creds)
        assert status == 200, status
        self.leaves["api"].append((time.time(), der))

    def attempt(self, what, fn, *args):
        try:
            fn(*args)
            if what != "refresh":
                self.connections += 1
        except Exception as ex:  # every exception is a failure
            rec = "%.3f %s: %r" % (time.time(), what, ex)
            (self.verify_failures if is_verify_error(ex)
             else self.failures).append(rec)

    def run(self):
        last = time.monotonic()
        i = 0
        while not self.stop.is_set():
            if time.monotonic() - last >= self.refresh_every:
                self.attempt("refresh", self.refresh)
                last = time.monotonic()
            self.attempt("redis", self.redis_once, i)
            self.attempt("sni", self.sni_once)
            self.attempt("api", self.api_once)
            if i % 3 == 0:
                self.attempt("cm", self.cm)
            i += 1
            if len(self.failures) + len(self.verify_failures) > 100:
                return
            time.sleep(0.02)


class Keeper(threading.Thread):
    """One redis-py connection opened before the rotation, used without
    pause until the end."""

    def __init__(self, n, port, stop):
        super().__init__(name="keeper", daemon=True)
        self.stop = stop
        self.r = redis.Redis(host=n.addr, port=port, ssl=True,
                             ssl_ca_certs=n.ca, ssl_check_hostname=True,
                             socket_timeout=15, socket_connect_timeout=10,
                             single_connection_client=True)
        self.sock = self.r.connection._sock
        self.client_id = self.r.client_id()
        self.peer = self.sock.getpeercert(binary_form=True)
        self.commands = 0
        self.failures = []
        self.sock_changes = 0

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                assert self.r.set("keep:%d" % (i % 20), i) is True
                assert self.r.get("keep:%d" % (i % 20)) == str(i).encode()
                self.commands += 2
            except Exception as ex:
                self.failures.append("%d: %r" % (i, ex))
                if len(self.failures) > 50:
                    return
            if self.r.connection._sock is not self.sock:
                self.sock_changes += 1
                self.sock = self.r.connection._sock
            i += 1
            time.sleep(0.005)


def test_client_that_refreshes_never_fails(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="rollover")
    port = db["port"]
    before = ca_get(n)
    assert state(before) == "none" and len(before["certificates"]) == 1
    old_fp = before["certificates"][0]["fingerprint_sha256"]
    old_ca = ca_certs(before)[old_fp]
    workdir = tempfile.mkdtemp(prefix="moat-car-", dir="/tmp")
    stop = threading.Event()
    keeper = Keeper(n, port, stop)
    client = Reconnector(n, port, workdir, stop, refresh_every=3.0)
    assert signer(keeper.peer, {"old": old_ca}) == "old"
    grace = 15.0
    try:
        keeper.start()
        client.start()
        time.sleep(2)
        # Over HTTPS, as the admin.
        r = n.https("POST", ROTATE_PATH, {"grace_days": grace / DAY})
        t_rotate = time.time()
        assert r.status_code == 200, r.text
        ans = r.json()
        assert state(ans) == "publishing", ans
        assert [x for x, _ in roles(ans)] == ["signing", "next"], ans
        assert roles(ans)[0][1] == old_fp
        new_fp = roles(ans)[1][1]
        reissue_at = parse_iso(ans["rollover"]["reissue_at"])
        assert t_rotate - 2 <= reissue_at - grace <= t_rotate + 1, \
            (ans["rollover"], t_rotate)
        new_ca = ca_certs(ans)[new_fp]
        # The new CA has a name of its own.
        assert new_ca.subject != old_ca.subject
        assert "%s cluster CA " % n.fqdn in new_ca.subject.rfc4514_string()
        seen, done = wait_rollover_done(n)
        t_done = time.time()
        assert seen == ["publishing", "switched", "none"], seen
        assert roles(done) == [("signing", new_fp)], done
        # Still running: new connections after the old CA left ca.pem.
        time.sleep(5)
    finally:
        stop.set()
        for th in (client, keeper):
            if th.ident is not None:
                th.join(60)
        shutil.rmtree(workdir, ignore_errors=True)
    cas = {"old": old_ca, "new": new_ca}
    summary = {k: [signer(d, cas) for _, d in v]
               for k, v in client.leaves.items()}
    print("%d connections, %d refreshes; keeper %d commands; %s" % (
        client.connections, len(client.bundles) - 1, keeper.commands,
        {k: {s: v.count(s) for s in set(v)} for k, v in summary.items()}))

    assert not client.is_alive() and not keeper.is_alive()
    assert not client.verify_failures, "%d verification failures: %s" % (
        len(client.verify_failures), client.verify_failures[:5])
    assert not client.failures, "%d failures: %s" % (
        len(client.failures), client.failures[:5])
    assert client.connections >= 60, client.connections
    assert {"file", "download"} <= set(client.refresh_kinds), \
        client.refresh_kinds
    # The bundle the client holds: the old CA, then both, then the new.
    shapes = [fps for _, fps in client.bundles]
    assert shapes[0] == [old_fp], shapes[0]
    assert [old_fp, new_fp] in shapes, shapes
    assert shapes[-1] == [new_fp], shapes[-1]
    for kind, labels in summary.items():
        assert labels, kind
        assert set(labels) <= {"old", "new"}, (kind, labels)
        # old leaves first, then new ones, never back
        assert labels == sorted(labels, key=lambda s: s != "old"), \
            (kind, labels)
        assert labels[0] == "old" and labels[-1] == "new", (kind, labels)
        assert labels.count("new") >= 3, (kind, labels)
        for t, d in client.leaves[kind]:
            if signer(d, cas) == "new":
                assert t >= reissue_at, (kind, t, reissue_at)
        assert len([1 for t, _ in client.leaves[kind] if t > t_done]) >= 3, \
            kind
    # A client that never refreshed its ca.pem now fails to verify: the
    # refreshes were what kept the one above working.
    old_only = os.path.join(n.tmp, "old-only.pem")
    with open(old_only, "w") as f:
        f.write(certgen.cert_to_pem(old_ca))
    try:
        served_cert_der(n.addr, n.port, n.fqdn, cafile=old_only)
        raise AssertionError("a client trusting only the old CA still "
                             "verified the API port after the rollover")
    except ssl.SSLCertVerificationError:
        pass

    # The connection opened before the rotation: never failed, never
    # reconnected, same server-side client, still on the old leaf.
    assert not keeper.failures, keeper.failures[:5]
    assert keeper.commands >= 200, keeper.commands
    assert keeper.sock_changes == 0
    assert keeper.r.connection._sock is keeper.sock
    assert keeper.r.client_id() == keeper.client_id
    assert keeper.sock.getpeercert(binary_form=True) == keeper.peer
    keeper.r.close()


# -- 2. ca.pem across the steps, two nodes racing -----------------------------

def test_steps_on_two_nodes_happen_once(make_node, etcd1):
    nodes = make_cluster(make_node, etcd1.url, 2)
    first, second = nodes
    before = ca_get(first)
    old_fp = before["certificates"][0]["fingerprint_sha256"]
    assert roles(before) == [("signing", old_fp)]
    assert before["rollover"].get("reissue_at") is None, before
    assert pem_fps(before["pem"]) == [old_fp]
    for n in nodes:
        assert file_fps(n.ca) == [old_fp], n.addr
        assert cm_ca_fps(n, n.ca) == [old_fp], n.addr
    versions = {name: first.cert_info(name)["version"] for name in CERT_NAMES}
    by_ca = {name: first.cert_info(name)["issued_by_cluster_ca"]
             for name in CERT_NAMES}
    assert all(by_ca.values()), by_ca
    evs_before = len(events(first))

    grace = 8.0
    r = second.sock("POST", ROTATE_PATH, {"grace_days": grace / DAY})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert state(ans) == "publishing"
    assert [x for x, _ in roles(ans)] == ["signing", "next"]
    new_fp = roles(ans)[1][1]
    assert new_fp != old_fp
    assert sorted((x["uid"], x["status"]) for x in ans["nodes"]) == \
        [(1, "updated"), (2, "updated")], ans["nodes"]
    reissue_at = parse_iso(ans["rollover"]["reissue_at"])
    cas = ca_certs(ans)
    labels = {old_fp: "old", new_fp: "new"}
    cas = {labels[fp]: c for fp, c in cas.items()}
    # Answered once every node applied it: both files and both /ca.pem
    # carry the old CA first, the new one second.
    assert pem_fps(ans["pem"]) == [old_fp, new_fp]
    for n in nodes:
        assert file_fps(n.ca) == [old_fp, new_fp], n.addr
        assert cm_ca_fps(n, n.ca) == [old_fp, new_fp], n.addr
        assert ca_get(n)["rollover"] == ans["rollover"]

    samples = []  # (time after the handshake, node, port kind, signer)
    bundle_shapes = []

    def sample():
        for n in nodes:
            for kind, p in (("api", n.port), ("cm", n.cm_port)):
                der = served_cert_der(n.addr, p, n.fqdn)
                samples.append((time.time(), n.addr, kind, signer(der, cas)))
            bundle_shapes.append(tuple(file_fps(n.ca)))

    seen, done = wait_rollover_done(first, sample=sample)
    assert seen[0] == "publishing" and seen[-1] == "none", seen
    assert roles(done) == [("signing", new_fp)], done
    # Before reissue_at every served leaf is the old CA's; the new CA's
    # only from reissue_at on.
    early = [s for s in samples if s[0] < reissue_at - 0.5]
    assert early and all(s[3] == "old" for s in early), early
    for s in samples:
        assert s[3] in ("old", "new"), s
        if s[3] == "new":
            assert s[0] >= reissue_at, (s, reissue_at)
    # ca.pem never went without a CA that was in use, and never held a
    # third one.
    for shape in bundle_shapes:
        assert shape in ((old_fp, new_fp), (new_fp, old_fp), (new_fp,)), \
            shape

    # Completed: each node's ca.pem and /ca.pem hold the new CA only.
    for n in nodes:
        assert wait_for(lambda: file_fps(n.ca) == [new_fp], 5 * TIME_SCALE), \
            (n.addr, file_fps(n.ca))
        assert cm_ca_fps(n, n.ca) == [new_fp], n.addr
        assert signer(served_cert_der(n.addr, n.port, n.fqdn, cafile=n.ca),
                      cas) == "new"
        assert signer(served_cert_der(n.addr, n.cm_port, n.fqdn,
                                      cafile=n.ca), cas) == "new"
    # Each certificate re-issued exactly once, whichever node ticked.
    for name in CERT_NAMES:
        for n in nodes:
            info = n.cert_info(name)
            assert info["version"] == versions[name] + 1, (n.addr, info)
            assert info["issued_by_cluster_ca"] is True, info
    rot = [e for e in events(first, "certificate_rotated")
           if e.get("user") == "CA rollover"]
    assert sorted(e["name"] for e in rot) == sorted(CERT_NAMES), rot
    for e in rot:
        assert e["version"] == versions[e["name"]] + 1, e
        assert e["new_fingerprint_sha256"] == \
            first.cert_info(e["name"])["fingerprint_sha256"], e
    started = events(first, "ca_rollover_started")
    switched = events(first, "ca_rollover_switched")
    completed = events(first, "ca_rollover_completed")
    assert len(started) == 1 and len(switched) == 1 and \
        len(completed) == 1, (started, switched, completed)
    assert started[0]["old_fingerprint_sha256"] == old_fp
    assert started[0]["new_fingerprint_sha256"] == new_fp
    assert parse_iso(started[0]["reissue_at"]) == reissue_at
    assert switched[0]["user"] == "CA rollover", switched
    assert switched[0]["old_fingerprint_sha256"] == old_fp
    assert switched[0]["new_fingerprint_sha256"] == new_fp
    assert sorted(x["name"] for x in switched[0]["reissued"]) == \
        sorted(CERT_NAMES), switched
    assert switched[0]["node_uid"] in (1, 2)
    assert completed[0]["dropped_fingerprint_sha256"] == old_fp
    assert parse_iso(switched[0]["time"]) >= reissue_at
    # Both nodes read the same log.
    assert len(events(second)) == len(events(first)) >= evs_before + 8


# -- 3. now: true -------------------------------------------------------------

def test_now_switches_at_once(node):
    n = node
    before = ca_get(n)
    old_fp = before["certificates"][0]["fingerprint_sha256"]
    versions = {name: n.cert_info(name)["version"] for name in CERT_NAMES}
    r = n.sock("POST", ROTATE_PATH, {"grace_days": 0, "now": True})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert state(ans) == "switched", ans
    assert ans["rollover"].get("reissue_at") is None, ans["rollover"]
    assert [x for x, _ in roles(ans)] == ["signing", "previous"], ans
    new_fp = roles(ans)[0][1]
    assert roles(ans)[1][1] == old_fp and new_fp != old_fp
    assert [x["status"] for x in ans["nodes"]] == ["updated"], ans["nodes"]
    cas = ca_certs(ans)
    new_ca, old_ca = cas[new_fp], cas[old_fp]
    # The answer comes once the node serves the re-issued leaves: the API
    # port chains to the new CA at once, verified against it alone.
    only_new = os.path.join(n.tmp, "new.pem")
    with open(only_new, "w") as f:
        f.write(certgen.cert_to_pem(new_ca))
    der = served_cert_der(n.addr, n.port, n.fqdn, cafile=only_new)
    assert certgen.verify_issued_by(x509.load_der_x509_certificate(der),
                                    new_ca)
    assert certgen.fingerprint_der(der) == n.cert_info("api")[
        "fingerprint_sha256"]
    der = served_cert_der(n.addr, n.cm_port, n.fqdn, cafile=only_new)
    assert certgen.fingerprint_der(der) == n.cert_info("cm")[
        "fingerprint_sha256"]
    # ...and a client that trusts only the old CA fails at once (what
    # "now" warns of).
    old_only = os.path.join(n.tmp, "old.pem")
    with open(old_only, "w") as f:
        f.write(certgen.cert_to_pem(old_ca))
    try:
        served_cert_der(n.addr, n.port, n.fqdn, cafile=old_only)
        raise AssertionError("old-CA-only client verified after now")
    except ssl.SSLCertVerificationError:
        pass
    # Both CAs are still published (new one, signing, first) ...
    assert pem_fps(ans["pem"]) == [new_fp, old_fp]
    assert file_fps(n.ca) == [new_fp, old_fp]
    for name in CERT_NAMES:
        info = n.cert_info(name)
        assert info["version"] == versions[name] + 1, info
    sw = events(n, "ca_rollover_switched")
    assert len(sw) == 1 and sw[0]["user"] != "CA rollover", sw
    # ... until the next tick sees every node serve the new leaves.
    seen, done = wait_rollover_done(n, timeout=3 * TICK * TIME_SCALE)
    assert roles(done) == [("signing", new_fp)]
    assert wait_for(lambda: file_fps(n.ca) == [new_fp], 5 * TIME_SCALE)
    assert cm_ca_fps(n, n.ca) == [new_fp]


# -- 4. errors, conflicts, the rollback guard ---------------------------------

BAD_BODIES = [
    {},
    {"grace_days": 0},
    {"grace_days": 0, "now": False},
    {"now": True},
    {"grace_days": 1, "now": True},
    {"grace_days": 0.5, "now": True},
    {"grace_days": "x"},
    {"grace_days": "1"},
    {"grace_days": None},
    {"grace_days": True},
    {"grace_days": 400},
    {"grace_days": 365.5},
    {"grace_days": -1},
    {"grace_days": -0.001},
    {"grace_days": 1, "now": "yes"},
    {"grace_days": 1, "extra": 1},
    {"days": 1},
    [1],
]


def test_errors_conflicts_and_rollback_guard(node, test_ca):
    n = node
    before = ca_get(n)
    old_fp = before["certificates"][0]["fingerprint_sha256"]
    ca_hash = sha256_file(n.ca)
    for body in BAD_BODIES:
        r = n.sock("POST", ROTATE_PATH, body)
        assert_error(r, 400, "invalid_schema")
    r = n.sock("POST", ROTATE_PATH, "{not json")
    assert r.status_code == 400, r.text
    # Admin only: no credentials, no rollover.
    r = n.https("POST", ROTATE_PATH, {"grace_days": 1}, auth=None)
    assert r.status_code == 401, r.text
    after = ca_get(n)
    assert roles(after) == roles(before) and state(after) == "none", after
    assert sha256_file(n.ca) == ca_hash
    assert events(n, "ca_rollover_started") == []

    # An operator-supplied certificate is not the cluster CA's: the
    # rollover leaves it alone.
    leaf = certgen.make_leaf(test_ca, sans=certgen.service_sans(n.fqdn))
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": "proxy", "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    versions = {name: n.cert_info(name)["version"] for name in CERT_NAMES}

    r = n.sock("POST", ROTATE_PATH, {"grace_days": 0, "now": True})
    assert r.status_code == 200, r.text
    new_fp = roles(r.json())[0][1]
    # A second rotate while the first one has not completed: 409, for
    # either form, and nothing changes.
    for body in ({"grace_days": 1}, {"grace_days": 0, "now": True}):
        assert_error(n.sock("POST", ROTATE_PATH, body), 409,
                     "config_edit_conflict")
    assert [x for x, _ in roles(ca_get(n))] in (["signing", "previous"],
                                                ["signing"])
    assert n.cert_info("proxy")["fingerprint_sha256"] == leaf.fingerprint
    assert n.cert_info("proxy")["version"] == versions["proxy"]
    for name in CERT_NAMES:
        if name != "proxy":
            assert n.cert_info(name)["version"] == versions[name] + 1, name
    wait_rollover_done(n, timeout=3 * TICK * TIME_SCALE)
    assert wait_for(lambda: file_fps(n.ca) == [new_fp], 5 * TIME_SCALE)

    # Rolling back to a leaf of the CA that was rotated out: refused,
    # nothing changes.
    snap = n.snapshot()
    for name, body in (("api", {"version": versions["api"]}), ("api", {}),
                       ("cm", {"version": versions["cm"]}),
                       ("proxy", {"version": versions["proxy"] - 1})):
        r = n.sock("POST", "/v1/cluster/certificates/%s/rollback" % name,
                   body)
        assert_error(r, 400, "invalid_configuration")
    assert n.snapshot() == snap
    assert roles(ca_get(n)) == [("signing", new_fp)]
    # A version the new CA issued is still one a rollback may go back to.
    r = n.sock("POST", "/v1/cluster/certificates/rotate",
               {"name": "api", "force": True})
    assert r.status_code == 200, r.text
    r = n.sock("POST", "/v1/cluster/certificates/api/rollback",
               {"version": versions["api"] + 1})
    assert r.status_code == 200, r.text
    info = n.cert_info("api")
    assert info["version"] == versions["api"] + 3, info
    assert n.served_fp() == info["fingerprint_sha256"]

    # Completed: the next rollover may start, and a second one conflicts
    # while it publishes.
    r = n.sock("POST", ROTATE_PATH, {"grace_days": 1})
    assert r.status_code == 200, r.text
    assert state(r.json()) == "publishing"
    assert roles(r.json())[0] == ("signing", new_fp)
    assert_error(n.sock("POST", ROTATE_PATH, {"grace_days": 2}), 409,
                 "config_edit_conflict")
    assert len(events(n, "ca_rollover_started")) == 2
    assert old_fp not in pem_fps(ca_get(n)["pem"])


# -- 5. moatadm ---------------------------------------------------------------

def test_moatadm_rotate_ca(node):
    n = node
    before = ca_get(n)
    for words, mention in ((("rotate", "ca"), ("grace_days", "now")),
                           (("rotate", "ca", "grace_days"), ("days",)),
                           (("rotate", "ca", "grace_days", "x"),
                            ("grace_days",)),
                           (("rotate", "ca", "grace_days", "0"),
                            ("grace_days",)),
                           (("rotate", "ca", "grace_days", "400"),
                            ("grace_days",)),
                           (("rotate", "ca", "grace_days", "1", "now"), ())):
        p = n.adm("cluster", "certificate", *words)
        assert p.returncode != 0, (words, p.stdout, p.stderr)
        out = p.stdout + p.stderr
        assert out.strip(), words
        for m in mention:
            assert m in out, (words, out)
    assert roles(ca_get(n)) == roles(before)
    assert events(n, "ca_rollover_started") == []

    t0 = time.time()
    p = n.adm("cluster", "certificate", "rotate", "ca", "grace_days", "0.5")
    assert p.returncode == 0, (p.stdout, p.stderr)
    doc = ca_get(n)
    assert state(doc) == "publishing"
    lines = dict(re.findall(r"^CA (\w+)\s+(\S+)$", p.stdout, re.M))
    assert set(lines) == {"signing", "next"}, p.stdout
    assert all(FP_RE.match(fp) for fp in lines.values()), p.stdout
    assert lines == dict(roles(doc)), (p.stdout, roles(doc))
    assert lines["signing"] == before["certificates"][0]["fingerprint_sha256"]
    at = parse_iso(doc["rollover"]["reissue_at"])
    assert t0 + 0.5 * DAY - 2 <= at <= time.time() + 0.5 * DAY + 1, doc
    assert doc["rollover"]["reissue_at"] in p.stdout
    assert file_fps(n.ca) == [lines["signing"], lines["next"]]
    # While it publishes, the old CA still issues: a rotation now gives a
    # leaf of the old CA.
    r = n.sock("POST", "/v1/cluster/certificates/rotate",
               {"name": "syncer", "force": True})
    assert r.status_code == 200, r.text
    with open(n.cert_file("syncer")) as f:
        leaf = certgen.load_pem_chain(f.read())[0]
    cas = ca_certs(doc)
    assert certgen.verify_issued_by(leaf, cas[lines["signing"]])
    assert not certgen.verify_issued_by(leaf, cas[lines["next"]])
    # One at a time.
    p = n.adm("cluster", "certificate", "rotate", "ca", "now")
    assert p.returncode != 0, p.stdout
    assert "in progress" in p.stdout + p.stderr, (p.stdout, p.stderr)
    assert roles(ca_get(n)) == roles(doc)
