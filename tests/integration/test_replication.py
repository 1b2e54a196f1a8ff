"""Replica Of between two clusters over TLS (issue 9): the `syncer` link.

Two single-node clusters, each with its own CA: the SOURCE on 127.0.0.1
(src.moat.test), the DESTINATION on 127.0.0.2 (dst.moat.test), shared by
every test of this module; each test makes (and deletes) its own databases.
A source database requires client certificates and trusts the destination
cluster's CA, so the destination's `syncer` certificate lets the link in.

What the source shard says is read on its unix socket
(<data-dir>/dbs/<uid>/redis.sock, with the database's password): INFO stats
sync_full / sync_partial_ok count the resyncs it served, and CLIENT LIST
TYPE replica shows the replication connection (the proxy's connection to
the shard), whose id stays the same as long as the TLS link does.
"""

import os
import re
import threading
import time

import pytest
import redis

import certgen
import moatlib
from moatlib import (assert_error, assert_no_private_key, bdb_dir, bdb_get,
                     dns_name, free_db_port, Node, redis_client, redis_pid,
                     TIME_SCALE, wait_bdb_active, wait_for, write_pair)

SRC_ADDR, SRC_FQDN = "127.0.0.1", "src.moat.test"
DST_ADDR, DST_FQDN = "127.0.0.2", "dst.moat.test"
PASSWORD = "Src-redis-pass-1"

SYNC_TIMEOUT = 60 * TIME_SCALE      # a first sync or a resync, under load
ERROR_TIMEOUT = 30 * TIME_SCALE     # until last_error says why
ACTIVE_TIMEOUT = 30 * TIME_SCALE    # a shard back after a moatd restart

ROTATIONS = 10
CUT_AT = 3        # after the 4th pair of rotations: CLIENT KILL TYPE replica
RESTART_AT = 6    # after the 7th: restart the destination moatd

# Status is refreshed about once a second (spec): give it a few.
SETTLE = 3 * TIME_SCALE

# Words the spec gives each last_error; every error must have its own.
WORDS = {
    "down": "cannot reach the source",
    "password": "refused the password",
    "client_cert": "refused this cluster's syncer certificate",
    "verify": "does not verify against server_cert",
}


# -- the two clusters ------------------------------------------------------------

class _Held:
    """The nodes this module started.  conftest's failure hook looks for
    `request.node._moat_nodes.nodes` to attach their log tails."""

    def __init__(self):
        self.nodes = []


def _stop_checking_shards(n):
    """Stop moatd n by PID; a problem (str) if it or a shard misbehaved."""
    pids = []
    dbs = os.path.join(n.data_dir, "dbs")
    if os.path.isdir(dbs):
        pids = [p for p in (redis_pid(n, int(u)) for u in os.listdir(dbs)
                            if u.isdigit()) if p]
    n.stop()
    out = []
    if n.died is not None:
        out.append("exited with %s while it should have run" % n.died)
    if n.needed_sigkill:
        out.append("SIGTERM did not stop it in 5 s, SIGKILL did")
    if n.bad_exit is not None:
        out.append("exit %s after SIGTERM (want 0)" % n.bad_exit)
    left = [p for p in pids
            if not wait_for(lambda: not moatlib.pid_running(p), 5)]
    if left:
        out.append("redis-server %s outlived moatd (killed by PID: %s)"
                   % (left, moatlib.kill_redis_leftovers()))
    if out:
        return "moatd %s: %s; log tail:\n%s" % (n.addr, "; ".join(out),
                                                 n.log[-4000:])
    return None


@pytest.fixture(scope="module")
def clusters(request):
    """(source node, destination node), each a cluster with its own CA."""
    missing = moatlib.binaries_missing()
    if missing:
        pytest.fail("not built: %s (set MOAT_BUILD)" % ", ".join(missing),
                    pytrace=False)
    held = _Held()
    request.node._moat_nodes = held
    try:
        for addr, fqdn in ((SRC_ADDR, SRC_FQDN), (DST_ADDR, DST_FQDN)):
            n = Node(addr=addr, fqdn=fqdn)
            held.nodes.append(n)
            n.start()
            n.create_cluster()
        yield tuple(held.nodes)
    finally:
        problems = [p for p in map(_stop_checking_shards, held.nodes) if p]
        for n in held.nodes:
            n.cleanup()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


class Dbs:
    """Databases a test made; deleted at its end, newest first, so that a
    destination goes before its source."""

    def __init__(self):
        self.made = []

    def make(self, node, **fields):
        """make_bdb, with a failure message that leaves PEMs out."""
        body = {"port": fields.pop("port", None) or free_db_port(node.addr),
                "tls_mode": "enabled"}
        body.update(fields)
        r = node.sock("POST", "/v1/bdbs", body)
        assert r.status_code == 200, "create %s on %s: %s %s" % (
            body["name"], node.addr, r.status_code, r.text[:2000])
        self.made.append((node, r.json()["uid"]))
        return wait_bdb_active(node, r.json()["uid"])

    def source(self, src, name, trust, **fields):
        """A source database: TLS, password, client certificates required
        (each PEM of `trust` is a leaf or a CA it accepts)."""
        return self.make(src, name=name, authentication_redis_pass=PASSWORD,
                         enforce_client_authentication="enabled",
                         authentication_ssl_client_certs=[
                             {"client_cert": pem} for pem in trust],
                         **fields)

    def replica(self, dst, name, entry, **fields):
        return self.make(dst, name=name, replica_sources=[entry], **fields)

    def delete_all(self):
        for node, uid in reversed(self.made):
            if node.alive():
                node.sock("DELETE", "/v1/bdbs/%d" % uid)


@pytest.fixture
def dbs(clusters):
    d = Dbs()
    yield d
    d.delete_all()


# -- helpers -----------------------------------------------------------------------

def read(path):
    with open(path) as f:
        return f.read()


def source_entry(src, port, server_cert, password=PASSWORD):
    """A replica_sources item in RS's form, the password in the uri."""
    return {"uri": "redis://:%s@%s:%d" % (password, src.addr, port),
            "encryption": True, "server_cert": server_cert,
            "replication_tls_sni": dns_name(src, port)}


def shard(node, uid, password=None):
    """A client on the shard's own unix socket (no proxy, no TLS)."""
    return redis.Redis(unix_socket_path=os.path.join(bdb_dir(node, uid),
                                                     "redis.sock"),
                       password=password, socket_timeout=10,
                       socket_connect_timeout=10)


def sync_counters(node, uid, password=PASSWORD):
    with shard(node, uid, password) as c:
        st = c.info("stats")
    return {"full": st["sync_full"], "partial_ok": st["sync_partial_ok"],
            "partial_err": st["sync_partial_err"]}


def replica_ids(node, uid, password=PASSWORD):
    """Ids of the replication connections the source shard serves."""
    with shard(node, uid, password) as c:
        return {cl["id"] for cl in c.client_list(_type="replica")}


def cut_link(node, uid, password=PASSWORD):
    # Raw command: redis-py 4.3's client_kill_filter knows only "slave".
    with shard(node, uid, password) as c:
        killed = c.execute_command("CLIENT", "KILL", "TYPE", "replica")
    assert killed >= 1, "CLIENT KILL TYPE replica killed nothing"


def wait_link(node, uid, other_than=frozenset()):
    """The source's replica connection ids once there is one that is not
    in other_than (a link made after those were cut)."""
    def new_ids():
        ids = replica_ids(node, uid)
        return ids if ids and not ids & set(other_than) else None
    ids = wait_for(new_ids, SYNC_TIMEOUT, 0.1)
    assert ids, "no new replication connection on the source db %d after " \
        "%.0fs (had %s)" % (uid, SYNC_TIMEOUT, sorted(other_than))
    return ids


def rotate(node, name):
    r = node.sock("POST", "/v1/cluster/certificates/rotate", {"name": name})
    assert r.status_code == 200, "rotate %s on %s: %s" % (name, node.addr, r)
    return [c for c in r.json()["certificates"]
            if c["name"] == name][0]["fingerprint_sha256"]


def proxy_leaf(node):
    """PEM of the proxy leaf the node serves (the first certificate)."""
    r = node.sock("GET", "/v1/cluster/certificates")
    assert r.status_code == 200, r
    return certgen.cert_to_pem(certgen.load_pem_chain(r.json()["proxy_cert"])[0])


def the_source(node, uid):
    """The one replica_sources item of database uid, as GET shows it."""
    o = bdb_get(node, uid)
    srcs = o.get("replica_sources")
    assert isinstance(srcs, list) and len(srcs) == 1, o
    return srcs[0]


def wait_source(node, uid, pred, what, timeout=SYNC_TIMEOUT):
    """Poll GET /v1/bdbs/<uid> until pred(its source item); return it."""
    last = [None]

    def check():
        try:
            r = node.sock("GET", "/v1/bdbs/%d" % uid)
        except OSError as e:  # moatd restarting
            last[0] = repr(e)
            return None
        if r.status_code != 200:
            last[0] = r
            return None
        srcs = r.json().get("replica_sources") or []
        last[0] = srcs
        return srcs[0] if len(srcs) == 1 and pred(srcs[0]) else None

    got = wait_for(check, timeout, 0.2)
    assert got, "db %d on %s: not %s after %.0fs; last: %r" % (
        uid, node.addr, what, timeout, last[0])
    return got


def in_sync(s):
    return s.get("status") == "in-sync"


def caught_up(s):
    return in_sync(s) and s.get("lag") == 0


def error_with(words):
    return lambda s: s.get("status") == "out-of-sync" and \
        words in (s.get("last_error") or "")


def dump(node, uid, password=None):
    """Every key of the shard with its value (the writers use strings)."""
    with shard(node, uid, password) as c:
        keys = sorted(c.scan_iter(count=1000))
        vals = []
        for i in range(0, len(keys), 500):
            vals += c.mget(keys[i:i + 500])
    return dict(zip(keys, vals))


def diff(a, b):
    """A short account of how dict b differs from dict a."""
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    return "%d keys vs %d: missing %d %s, extra %d %s, different %d %s" % (
        len(a), len(b), len(missing), missing[:5], len(extra), extra[:5],
        len(changed), [(k, a[k], b[k]) for k in changed[:5]])


def wait_same_data(src, suid, dst, duid):
    """Source and destination shards hold the same keys and values."""
    last = [None, None]

    def same():
        last[:] = [dump(src, suid, PASSWORD), dump(dst, duid)]
        return last[0] == last[1]

    if not wait_for(same, SYNC_TIMEOUT, 0.5):
        raise AssertionError("destination differs from source: " +
                             diff(*last))
    return last[0]


def wait_key(node, uid, key, value, timeout=SYNC_TIMEOUT):
    def arrived():
        with shard(node, uid) as c:
            return c.get(key) == value
    assert wait_for(arrived, timeout, 0.1), \
        "%s did not reach db %d on %s in %.0fs" % (key, uid, node.addr,
                                                   timeout)


def set_on_source(src, suid, key, value):
    with shard(src, suid, PASSWORD) as c:
        assert c.set(key, value)


def assert_read_only(dst, port):
    c = redis_client(dst, port)
    try:
        with pytest.raises(redis.exceptions.ReadOnlyError):
            c.set("written-on-replica", "no")
    finally:
        c.close()


def make_pair(dbs, src, dst, name, server_cert=None, **dst_fields):
    """A source trusting the destination's CA, and a destination that
    replicates it (source CA as server_cert unless given); in-sync."""
    s = dbs.source(src, name + "-src", [read(dst.ca)])
    d = dbs.replica(dst, name + "-dst",
                    source_entry(src, s["port"], server_cert or read(src.ca)),
                    **dst_fields)
    wait_source(dst, d["uid"], caught_up, "in-sync with lag 0")
    return s, d


class Writer(threading.Thread):
    """Writes to the source endpoint until stopped: SET, APPEND, INCR and
    DEL over KEYS keys, in small pipelines.  The rate is kept well below
    what would outgrow Redis' 1 MB replication backlog while the link is
    down for a restart (a full resync would then be Redis' doing, not a
    certificate's).  Errors are kept, not raised, for the test to report."""

    KEYS = 5000
    BATCH = 20
    PAUSE = 0.02

    def __init__(self, client):
        super().__init__(name="writer", daemon=True)
        self.r = client
        self.stop = threading.Event()
        self.ops = 0
        self.errors = []

    def queue(self, pipe, n):
        # 7919 is prime to KEYS: consecutive ops walk over every key.
        key = "k:%d" % (n * 7919 % self.KEYS)
        op = n % 10
        if op < 6:
            pipe.set(key, "v:%d" % n)
        elif op < 8:
            pipe.append(key, "+%d" % n)
        elif op == 8:
            pipe.delete(key)
        else:
            pipe.incr("counter:%d" % (n % 50))

    def run(self):
        n = 0
        while not self.stop.is_set() and len(self.errors) < 20:
            pipe = self.r.pipeline(transaction=False)
            for _ in range(self.BATCH):
                self.queue(pipe, n)
                n += 1
            try:
                pipe.execute()
                self.ops += self.BATCH
            except Exception as e:  # redis-py reconnects on the next call
                self.errors.append("op %d: %r" % (n, e))
            time.sleep(self.PAUSE)
        self.r.close()


# -- tests -------------------------------------------------------------------------

def test_replication_survives_rotations(clusters, dbs):
    """CA mode under a steady write load: 10 source `proxy` and 10
    destination `syncer` rotations leave the link alone; a cut link and a
    destination restart resume partially; the data ends up identical and
    only the first sync was a full one."""
    src, dst = clusters
    # The writer is a client of the source too: its own CA, trusted next
    # to the destination's.
    writer_ca = certgen.make_ca("replication writer CA")
    pair = write_pair(src.tmp, certgen.make_leaf(
        writer_ca, sans=["DNS:writer.example"], cn="writer"), "writer")
    s = dbs.source(src, "rot-src", [read(dst.ca), writer_ca.cert_pem])
    sport, suid = s["port"], s["uid"]
    base = sync_counters(src, suid)
    src_log0, dst_log0 = len(src.log), len(dst.log)

    writer = Writer(redis_client(src, sport, password=PASSWORD,
                                 ssl_certfile=pair[0], ssl_keyfile=pair[1]))
    writer.start()
    restarted = False
    try:
        # The first sync carries data, and runs under load.
        assert wait_for(lambda: writer.ops >= 2000 or writer.errors,
                        30 * TIME_SCALE), "writer stuck at %d" % writer.ops
        assert not writer.errors, writer.errors[:5]
        d = dbs.replica(dst, "rot-dst", source_entry(src, sport,
                                                     read(src.ca)),
                        data_persistence="snapshot")
        dport, duid = d["port"], d["uid"]
        wait_source(dst, duid, in_sync, "in-sync")
        assert sync_counters(src, suid)["full"] == base["full"] + 1

        ids = wait_link(src, suid)
        for i in range(ROTATIONS):
            rotate(src, "proxy")
            rotate(dst, "syncer")
            time.sleep(0.3)
            # Make-before-break: the open link is the same connection.
            assert replica_ids(src, suid) == ids, \
                "rotation %d replaced the replication connection" % i
            if i == CUT_AT:
                cut_link(src, suid)
                ids = wait_link(src, suid, other_than=ids)
                wait_source(dst, duid, in_sync, "in-sync after the cut")
            if i == RESTART_AT:
                rc = dst.restart()
                restarted = True
                assert rc == 0, "destination moatd exit %s on SIGTERM" % rc
                wait_bdb_active(dst, duid, ACTIVE_TIMEOUT)
                ids = wait_link(src, suid, other_than=ids)
                wait_source(dst, duid, in_sync, "in-sync after the restart")
        assert replica_ids(src, suid) == ids
        # Several thousand keys, each written more than once.
        assert wait_for(lambda: writer.ops >= 2 * Writer.KEYS or
                        writer.errors, 60 * TIME_SCALE), writer.ops
    finally:
        writer.stop.set()
        writer.join(30)
    assert restarted
    assert not writer.is_alive(), "writer did not stop"
    assert not writer.errors, "%d failed writes, first: %s" % (
        len(writer.errors), writer.errors[:5])

    final = wait_source(dst, duid, caught_up, "in-sync with lag 0")
    assert final["last_error"] == "", final
    data = wait_same_data(src, suid, dst, duid)
    after = sync_counters(src, suid)
    print("writes: %d, keys: %d, source counters before %s, after %s" % (
        writer.ops, len(data), base, after))
    assert len(data) >= 3000, len(data)
    assert after["full"] == base["full"] + 1, \
        "full resyncs beyond the first: %s -> %s" % (base, after)
    # The cut and the restart each resumed with a partial resync.
    assert after["partial_ok"] >= base["partial_ok"] + 2, (base, after)

    assert_read_only(dst, dport)
    # The password is the source's secret: masked in GET, never logged.
    r = dst.sock("GET", "/v1/bdbs/%d" % duid)
    assert PASSWORD not in r.text, r.text[:2000]
    uri = r.json()["replica_sources"][0]["uri"]
    assert uri == "redis://:********@%s:%d" % (src.addr, sport), uri
    assert PASSWORD not in dst.log[dst_log0:] + src.log[src_log0:]
    assert_no_private_key(r.text, dst.log, src.log)


def test_pinned_leaf_rs_way(clusters, dbs):
    """server_cert is the source's proxy leaf: after a rotation the open
    link goes on; once it reconnects the source is out-of-sync naming both
    fingerprints, and a PUT of the new leaf resumes partially."""
    src, dst = clusters
    old_leaf = proxy_leaf(src)
    old_fp = certgen.fingerprint(old_leaf)
    s, d = make_pair(dbs, src, dst, "pin", server_cert=old_leaf)
    suid, duid, sport = s["uid"], d["uid"], s["port"]
    base = sync_counters(src, suid)

    new_fp = rotate(src, "proxy")
    assert new_fp != old_fp
    new_leaf = proxy_leaf(src)
    assert certgen.fingerprint(new_leaf) == new_fp
    # The open link still carries writes after the rotation.
    set_on_source(src, suid, "after-rotation", "1")
    wait_key(dst, duid, "after-rotation", b"1")

    cut_link(src, suid)
    err = wait_source(dst, duid, lambda x: x.get("status") == "out-of-sync"
                      and new_fp in (x.get("last_error") or ""),
                      "out-of-sync with the fingerprint error", ERROR_TIMEOUT)
    assert old_fp in err["last_error"], err
    assert moatlib.FP_RE.match(old_fp) and moatlib.FP_RE.match(new_fp)
    for w in WORDS.values():
        assert w not in err["last_error"], err

    set_on_source(src, suid, "while-refused", "2")
    # Send the uri back masked: the stored password is kept.
    masked = err["uri"]
    assert "********" in masked and PASSWORD not in masked, masked
    r = dst.sock("PUT", "/v1/bdbs/%d" % duid, {"replica_sources": [{
        "uri": masked, "encryption": True, "server_cert": new_leaf,
        "replication_tls_sni": dns_name(src, sport)}]})
    assert r.status_code == 200, r
    wait_source(dst, duid, caught_up, "in-sync again with lag 0")
    wait_key(dst, duid, "while-refused", b"2")
    after = sync_counters(src, suid)
    print("pinned: counters before %s, after %s" % (base, after))
    assert after["full"] == base["full"], (base, after)
    assert after["partial_ok"] > base["partial_ok"], (base, after)
    assert the_source(dst, duid)["uri"] == masked


def test_untrusted_syncer(clusters, dbs):
    """A source that does not trust the destination's syncer: out-of-sync
    with the client-certificate error, the source logs OpenSSL's reason;
    once the source trusts it, replication starts on the next retry."""
    src, dst = clusters
    other_ca = certgen.make_ca("some other client CA")
    s = dbs.source(src, "untrusted-src", [other_ca.cert_pem])
    src_log0, dst_log0 = len(src.log), len(dst.log)
    d = dbs.replica(dst, "untrusted-dst",
                    source_entry(src, s["port"], read(src.ca)))
    err = wait_source(dst, d["uid"], error_with(WORDS["client_cert"]),
                      "refused-certificate error", ERROR_TIMEOUT)
    print("last_error: %s" % err["last_error"])

    # The source says why, in OpenSSL's words, on its database's endpoint.
    def refusal():
        return [l for l in src.log[src_log0:].splitlines()
                if "db:%d:" % s["uid"] in l and "certificate" in l.lower()
                and ("handshake failed" in l or "refused" in l)]
    lines = wait_for(refusal, 10 * TIME_SCALE)
    assert lines, "no refusal in the source log:\n%s" % src.log[src_log0:][-3000:]
    assert any(re.search(r"(handshake failed|refused): \S", l)
               for l in lines), lines

    # Logged once per change of state, not once per retry.
    time.sleep(5 * TIME_SCALE)
    assert dst.log[dst_log0:].count(WORDS["client_cert"]) <= 2, \
        dst.log[dst_log0:][-3000:]

    r = src.sock("PUT", "/v1/bdbs/%d" % s["uid"], {
        "authentication_ssl_client_certs": [{"client_cert": read(dst.ca)}]})
    assert r.status_code == 200, r
    ok = wait_source(dst, d["uid"], caught_up, "in-sync once trusted")
    assert ok["last_error"] == "", ok


GARBAGE = ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
           "-----END CERTIFICATE-----\n")
CLIENT = certgen.make_leaf(certgen.make_ca("per-source client CA"),
                           sans=["DNS:client.example"])


def _with(e, **kw):
    out = dict(e)
    out.update(kw)
    return out


def _without(e, key):
    return {k: v for k, v in e.items() if k != key}


# (id, fields of the body built from a valid source item e, error_code or
# None where the spec names none)
BAD_SOURCES = [
    ("two_sources", lambda e: {"replica_sources": [
        e, _with(e, uri=re.sub(r":\d+$", ":19998", e["uri"]))]},
     "invalid_schema"),
    ("not_a_list", lambda e: {"replica_sources": e}, None),
    ("encryption_false", lambda e: {"replica_sources": [
        _with(e, encryption=False)]}, None),
    ("no_server_cert", lambda e: {"replica_sources": [
        _without(e, "server_cert")]}, None),
    ("garbage_pem", lambda e: {"replica_sources": [
        _with(e, server_cert=GARBAGE)]}, None),
    ("not_pem", lambda e: {"replica_sources": [
        _with(e, server_cert="hello")]}, None),
    ("uri_http", lambda e: {"replica_sources": [
        _with(e, uri="http://127.0.0.1:12000")]}, None),
    ("uri_no_port", lambda e: {"replica_sources": [
        _with(e, uri="redis://:pw@127.0.0.1")]}, None),
    ("uri_bare", lambda e: {"replica_sources": [
        _with(e, uri="127.0.0.1:12000")]}, None),
    ("uri_port_out_of_range", lambda e: {"replica_sources": [
        _with(e, uri="redis://:pw@127.0.0.1:70000")]}, None),
    ("uri_empty", lambda e: {"replica_sources": [_with(e, uri="")]}, None),
    ("replica_sync_bogus", lambda e: {"replica_sources": [e],
                                      "replica_sync": "bogus"}, None),
    ("compression_3", lambda e: {"replica_sources": [
        _with(e, compression=3)]}, None),
    ("client_cert", lambda e: {"replica_sources": [
        _with(e, client_cert=CLIENT.cert_pem, client_key=CLIENT.key_pem)]},
     None),
    ("unknown_field", lambda e: {"replica_sources": [
        _with(e, shards_count=2)]}, None),
]


def assert_400(r, code):
    if code:
        return assert_error(r, 400, code)
    assert r.status_code == 400, r
    body = r.json()
    assert re.match(r"^[a-z][a-z0-9_]*$", body.get("error_code") or ""), body
    assert (body.get("description") or "").strip(), body
    assert_no_private_key(r.text)
    return body


def stable_state(node):
    """The databases as GET lists them minus what changes by itself (status,
    lag, last_error), and the shard directories."""
    r = node.sock("GET", "/v1/bdbs")
    assert r.status_code == 200, r
    out = []
    for d in sorted(r.json(), key=lambda d: d["uid"]):
        d.pop("status", None)
        d["replica_sources"] = [
            {k: v for k, v in x.items()
             if k not in ("status", "lag", "last_error")}
            for x in d.get("replica_sources") or []]
        out.append(d)
    return out, sorted(os.listdir(os.path.join(node.data_dir, "dbs")))


def test_replica_sources_validation(clusters, dbs):
    """Every malformed replica_sources/replica_sync: 400 with error_code
    and description, on create and on update, and nothing changes.  The
    valid item they are built from is accepted (so each 400 is about the
    one thing that was changed)."""
    src, dst = clusters
    target = dbs.make(dst, name="val-target")
    good = _with(source_entry(src, free_db_port(src.addr), read(src.ca)),
                 compression=0)
    before = stable_state(dst)
    for cid, fields, code in BAD_SOURCES:
        f = fields(dict(good))
        port = free_db_port(dst.addr)
        r = dst.sock("POST", "/v1/bdbs", dict(f, name="val-new", port=port,
                                               tls_mode="enabled"))
        body = assert_400(r, code)
        if cid == "two_sources":
            assert re.search(r"\b(one|1)\b", body["description"]), body
        r = dst.sock("PUT", "/v1/bdbs/%d" % target["uid"], f)
        assert_400(r, code)
        assert stable_state(dst) == before, cid
        assert moatlib.port_free_on(dst.addr, port), "%s: port opened" % cid
    # The valid item, on create and on update.
    r = dst.sock("POST", "/v1/bdbs", {"name": "val-ok", "tls_mode": "enabled",
                                      "replica_sources": [good]})
    assert r.status_code == 200, r
    dbs.made.append((dst, r.json()["uid"]))
    r = dst.sock("PUT", "/v1/bdbs/%d" % target["uid"],
                 {"replica_sources": [good], "replica_sync": "paused"})
    assert r.status_code == 200, r
    assert r.json()["replica_sync"] == "paused", r


def test_paused_resumes_partially(clusters, dbs):
    """paused: the link is down and writes stay on the source; enabled:
    they arrive with a partial resync.  disabled: the destination becomes
    writable and keeps its data."""
    src, dst = clusters
    s, d = make_pair(dbs, src, dst, "pause")
    suid, duid = s["uid"], d["uid"]
    assert bdb_get(dst, duid)["replica_sync"] == "enabled"
    set_on_source(src, suid, "before-pause", "0")
    wait_key(dst, duid, "before-pause", b"0")
    base = sync_counters(src, suid)

    r = dst.sock("PUT", "/v1/bdbs/%d" % duid, {"replica_sync": "paused"})
    assert r.status_code == 200, r
    assert r.json()["replica_sync"] == "paused", r
    wait_source(dst, duid, lambda x: x.get("status") == "out-of-sync",
                "out-of-sync while paused", ERROR_TIMEOUT)
    set_on_source(src, suid, "during-pause", "1")
    time.sleep(SETTLE)
    with shard(dst, duid) as c:
        assert c.get("during-pause") is None, "a paused link carried a write"
    assert_read_only(dst, d["port"])

    r = dst.sock("PUT", "/v1/bdbs/%d" % duid, {"replica_sync": "enabled"})
    assert r.status_code == 200, r
    wait_key(dst, duid, "during-pause", b"1")
    wait_source(dst, duid, caught_up, "in-sync with lag 0 after resuming")
    after = sync_counters(src, suid)
    print("paused: counters before %s, after %s" % (base, after))
    assert after["full"] == base["full"], (base, after)
    assert after["partial_ok"] > base["partial_ok"], (base, after)

    r = dst.sock("PUT", "/v1/bdbs/%d" % duid, {"replica_sync": "disabled"})
    assert r.status_code == 200, r

    def writable():
        c = redis_client(dst, d["port"])
        try:
            return c.set("written-on-destination", "yes")
        except redis.exceptions.ReadOnlyError:
            return False
        finally:
            c.close()
    assert wait_for(writable, SYNC_TIMEOUT, 0.2), "still read-only"
    assert dump(dst, duid)[b"during-pause"] == b"1"


def test_wrong_password(clusters, dbs):
    src, dst = clusters
    s = dbs.source(src, "wrongpw-src", [read(dst.ca)])
    bad = "Not-the-pass-9"
    dst_log0 = len(dst.log)
    d = dbs.replica(dst, "wrongpw-dst", source_entry(
        src, s["port"], read(src.ca), password=bad))
    err = wait_source(dst, d["uid"], error_with(WORDS["password"]),
                      "wrong-password error", ERROR_TIMEOUT)["last_error"]
    print("last_error: %s" % err)
    for k, w in WORDS.items():
        if k != "password":
            assert w not in err, err
    r = dst.sock("GET", "/v1/bdbs/%d" % d["uid"])
    assert bad not in r.text + dst.log[dst_log0:]


def test_source_down(clusters, dbs):
    """Nothing listens at the source's port: "cannot reach"; once the
    source database exists there, replication starts by itself."""
    src, dst = clusters
    port = free_db_port(src.addr)
    d = dbs.replica(dst, "down-dst", source_entry(src, port, read(src.ca)))
    err = wait_source(dst, d["uid"], error_with(WORDS["down"]),
                      "source-down error", ERROR_TIMEOUT)["last_error"]
    print("last_error: %s" % err)
    for k, w in WORDS.items():
        if k != "down":
            assert w not in err, err
    assert "password" not in err and "certificate" not in err, err

    dbs.source(src, "down-src", [read(dst.ca)], port=port)
    ok = wait_source(dst, d["uid"], caught_up, "in-sync once the source is up")
    assert ok["last_error"] == "", ok


def test_moatadm_status_shows_source(clusters, dbs):
    src, dst = clusters
    s, d = make_pair(dbs, src, dst, "adm")
    p = dst.adm("status")
    assert p.returncode == 0, p.stderr
    where = "%s:%d" % (src.addr, s["port"])
    lines = [" ".join(l.split()) for l in p.stdout.splitlines() if where in l]
    assert lines, "no line with %s:\n%s" % (where, p.stdout)
    assert any("db:%d" % d["uid"] in l and "in-sync" in l for l in lines), \
        p.stdout
    assert PASSWORD not in p.stdout + p.stderr


def relay_port(node, uid):
    """The loopback port the destination shard replicates from (its
    redis.conf: `replicaof 127.0.0.1 <port>`)."""
    with open(os.path.join(bdb_dir(node, uid), "redis.conf")) as f:
        m = re.search(r"^replicaof 127\.0\.0\.1 (\d+)$", f.read(), re.M)
    assert m, "no replicaof line in the destination's redis.conf"
    return int(m.group(1))


def test_relay_refuses_other_local_processes(clusters, dbs):
    """Only the shard (which holds the token) gets through the relay: a
    local process without it never reaches the source, a silent one is
    dropped after a few seconds, and neither disturbs the link."""
    import socket
    src, dst = clusters
    s, d = make_pair(dbs, src, dst, "gate")
    suid, duid = s["uid"], d["uid"]
    port = relay_port(dst, duid)
    ids = replica_ids(src, suid)
    with shard(src, suid, PASSWORD) as c:
        clients_before = len(c.client_list())

    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert c.recv(64) == b"+PONG\r\n"
        c.sendall(b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n")
        assert c.recv(64) == b"", "a wrong token was answered"
    # Nothing reached the source for it: no new client there.
    with shard(src, suid, PASSWORD) as c:
        assert len(c.client_list()) <= clients_before

    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        t0 = time.monotonic()
        assert c.recv(64) == b"", "a silent local connection got data"
        assert time.monotonic() - t0 < 15, "a silent connection was kept"

    assert replica_ids(src, suid) == ids, "the open link was disturbed"
    assert "did not give the shard's token" in dst.log
    set_on_source(src, suid, "after-gate", "ok")
    wait_key(dst, duid, "after-gate", b"ok")


def test_masked_uri_round_trip_keeps_an_encoded_password(clusters, dbs):
    """GET shows the uri with ******** for the password; writing that back
    (to pause, then resume) keeps the stored password exactly, even one
    that is percent-encoded in the uri."""
    src, dst = clusters
    password = "p%41ss-1"            # literal '%41', not 'A'
    s = dbs.make(src, name="enc-src", authentication_redis_pass=password,
                 enforce_client_authentication="enabled",
                 authentication_ssl_client_certs=[{"client_cert":
                                                   read(dst.ca)}])
    entry = source_entry(src, s["port"], read(src.ca),
                         password="p%2541ss-1")
    d = dbs.replica(dst, "enc-dst", entry)
    wait_source(dst, d["uid"], caught_up, "in-sync with an encoded password")
    got = the_source(dst, d["uid"])
    assert got["uri"] == "redis://:********@%s:%d" % (src.addr, s["port"])
    assert password not in repr(bdb_get(dst, d["uid"]))
    body = {"replica_sync": "paused", "replica_sources": [
        {k: v for k, v in got.items()}]}
    r = dst.sock("PUT", "/v1/bdbs/%d" % d["uid"], body)
    assert r.status_code == 200, r.text
    body["replica_sync"] = "enabled"
    r = dst.sock("PUT", "/v1/bdbs/%d" % d["uid"], body)
    assert r.status_code == 200, r.text
    with shard(src, s["uid"], password) as c:
        assert c.set("after-round-trip", "1")
    wait_key(dst, d["uid"], "after-round-trip", b"1")
    assert the_source(dst, d["uid"])["last_error"] == ""


def test_destination_restart_with_aof_resumes_partially(clusters, dbs):
    """The default persistence (aof): a destination moatd restart still
    resumes with a partial resync (Redis 7.0 keeps a replica's position
    only in an RDB: moat has the replica save one at shutdown and load it
    first), and the destination keeps appending to its AOF afterwards."""
    src, dst = clusters
    s, d = make_pair(dbs, src, dst, "aof")
    suid, duid = s["uid"], d["uid"]
    assert bdb_get(dst, duid)["data_persistence"] == "aof"
    for i in range(200):
        set_on_source(src, suid, "k%d" % i, "v%d" % i)
    wait_key(dst, duid, "k199", b"v199")
    base = sync_counters(src, suid)
    assert dst.restart() == 0
    wait_bdb_active(dst, duid, ACTIVE_TIMEOUT)
    set_on_source(src, suid, "after-restart", "1")
    wait_key(dst, duid, "after-restart", b"1")
    wait_source(dst, duid, caught_up, "in-sync after the restart")
    after = sync_counters(src, suid)
    print("aof restart: counters before %s, after %s" % (base, after))
    assert after["full"] == base["full"], (base, after)
    assert after["partial_ok"] == base["partial_ok"] + 1, (base, after)
    assert "loads the RDB it saved at shutdown" in dst.log

    def aof_on():
        with shard(dst, duid) as c:
            return c.config_get("appendonly").get("appendonly") == "yes"
    assert wait_for(aof_on, SYNC_TIMEOUT, 0.2), "the AOF stayed off"
    assert dump(dst, duid)[b"k7"] == b"v7"


def test_destination_with_a_password_and_a_new_one(clusters, dbs):
    """The link reads the destination shard's state with the
    destination's own password, and keeps reading it after that password
    changes (a new one reaches the shard live)."""
    src, dst = clusters
    s, d = make_pair(dbs, src, dst, "dstpw",
                     authentication_redis_pass="Dst-pass-1")
    r = dst.sock("PUT", "/v1/bdbs/%d" % d["uid"],
                 {"authentication_redis_pass": "Dst-pass-2"})
    assert r.status_code == 200, r.text
    set_on_source(src, s["uid"], "after-dst-password", "1")

    def arrived():
        with shard(dst, d["uid"], "Dst-pass-2") as c:
            return c.get("after-dst-password") == b"1"
    assert wait_for(arrived, SYNC_TIMEOUT, 0.1)
    time.sleep(SETTLE)
    wait_source(dst, d["uid"], caught_up, "in-sync with its new password")
