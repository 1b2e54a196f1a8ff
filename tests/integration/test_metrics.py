"""The Prometheus exporter on --metrics-port: HTTPS with the cluster's
metrics_exporter certificate, no sign-in.

    /, /metrics     node_cert_expiration_seconds
    /v2, /v2/node   node_cert_expires_in_seconds
    both            moat_cert_*, moat_tls_handshakes_total, moat_connections,
                    moat_bdb_*_bytes_total, moat_store_*, moat_apply*,
                    moat_rollouts_total

Scraped by a real Prometheus (a two-node cluster over etcd), by hand for
database traffic, refused TLS versions and a certificate hot swap, and
checked for 404/405 answers that leak nothing.  Every process started here
(Prometheus, etcd, moatd, redis-server) is stopped by its PID.
"""

import calendar
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import requests

import certgen
import moatlib
from moatlib import (CERT_NAMES, FQDN, KeepAlive, assert_no_private_key,
                     free_port, https_request, make_bdb, make_cluster,
                     redis_client, served_cert_der, tls_client_context,
                     tls_data_connect, wait_for)

PROMETHEUS = "/usr/bin/prometheus"
LOGICAL_NAMES = tuple(CERT_NAMES) + ("ca",)
EXPIRY_V1 = "node_cert_expiration_seconds"
EXPIRY_V2 = "node_cert_expires_in_seconds"
HS_RESULTS = ("ok", "version_refused", "client_cert_refused", "timeout",
              "abandoned", "error")
# A gauge "seconds until notAfter" read now versus computed now: the two
# clocks are read a moment apart (and Prometheus's sample is up to one
# scrape interval old).
SLACK = 5


# -- scraping and parsing -----------------------------------------------------

def scrape(node, path="/", method="GET", cafile=None):
    """One request to node's metrics port on a fresh connection, verifying
    the certificate against the cluster CA with SNI = the cluster FQDN."""
    return https_request(node.addr, node.metrics_port, method, path,
                         cafile=cafile or node.ca, servername=FQDN,
                         timeout=10)


_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'            # name
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})?'
    r' (-?[0-9.eE+-]+|NaN|[+-]Inf)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """The samples of a Prometheus text exposition as [(name, labels,
    value)]; fails on a line that is not valid exposition format or on a
    sample whose family has no # TYPE line before it."""
    types = {}
    out = []
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("gauge", "counter"), line
            assert name not in types, "two # TYPE lines for %s" % name
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        assert not line.startswith("#"), "bad comment line %r" % line
        m = _SAMPLE_RE.match(line)
        assert m, "not exposition format: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert name in types, "%s has no # TYPE line before it" % name
        out.append((name, dict(_LABEL_RE.findall(labels)), float(value)))
    return out


def series(samples, name, **labels):
    """The samples of `name` whose labels include `labels`."""
    want = {k: str(v) for k, v in labels.items()}
    return [(l, v) for n, l, v in samples
            if n == name and all(l.get(k) == x for k, x in want.items())]


def one(samples, name, **labels):
    """The value of the single series of `name` matching `labels`, or 0 if
    there is none (a counter not exported yet)."""
    got = series(samples, name, **labels)
    assert len(got) <= 1, "several series of %s%r: %r" % (name, labels, got)
    return got[0][1] if got else 0


def metrics(node, path="/"):
    r = scrape(node, path)
    assert r.status_code == 200, r
    return parse(r.text)


def poll(node, pred, timeout=6.0, what="condition"):
    """Scrape node until pred(samples) is true; return those samples.  On a
    timeout, fail showing the last scrape's moat_* lines of interest."""
    deadline = time.monotonic() + timeout
    while True:
        s = metrics(node)
        if pred(s):
            return s
        if time.monotonic() > deadline:
            shown = [(n, l, v) for n, l, v in s
                     if n.startswith(("moat_tls", "moat_conn", "moat_bdb"))]
            raise AssertionError("%s not seen in %.0fs; last scrape: %r"
                                 % (what, timeout, shown))
        time.sleep(0.25)


def not_after(path_or_pem):
    """notAfter of the first certificate of a PEM file or text, as a Unix
    time."""
    text = path_or_pem
    if "-----BEGIN" not in text:
        with open(path_or_pem) as f:
            text = f.read()
    cert = certgen.load_pem_chain(text)[0]
    return calendar.timegm(cert.not_valid_after.utctimetuple())


def cert_path(node, name):
    return node.ca if name == "ca" else node.cert_file(name)


def check_expiry_series(node, samples, name, uid="1"):
    """One series of `name` per logical name, labelled for this node, with
    the seconds until the notAfter of the file it names."""
    got = series(samples, name)
    assert sorted(l["logical_name"] for l, _ in got) == \
        sorted(LOGICAL_NAMES), got
    now = time.time()
    for labels, value in got:
        ln = labels["logical_name"]
        assert set(labels) == {"cluster", "logical_name", "node", "path"}, \
            labels
        assert labels["cluster"] == FQDN, labels
        assert labels["node"] == str(uid), labels
        assert labels["path"] == cert_path(node, ln), labels
        want = not_after(cert_path(node, ln)) - now
        assert abs(value - want) <= SLACK, (ln, value, want)
        # and the companion absolute timestamp is the notAfter itself
        assert one(samples, "moat_cert_not_after_timestamp_seconds",
                   logical_name=ln) == not_after(cert_path(node, ln)), ln


# -- 1. a real Prometheus scraping a two-node cluster --------------------------

class Prometheus:
    """/usr/bin/prometheus on 127.0.0.1:<free port>, its own tmp dir;
    stopped by PID (SIGTERM, SIGKILL after 10 s)."""

    def __init__(self, config):
        self.dir = moatlib.short_tmpdir("moat-prom-")
        self.port = free_port("127.0.0.1")
        self.base = "http://127.0.0.1:%d" % self.port
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            # JSON is YAML: no YAML library needed.
            json.dump(config, f, indent=1)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()

    @property
    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def api(self, path, **params):
        r = requests.get(self.base + path, params=params, timeout=5)
        assert r.status_code == 200, (path, r.status_code, r.text[:1000])
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, q):
        d = self.api("/api/v1/query", query=q)
        assert d["resultType"] == "vector", d
        return d["result"]

    def stop(self):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape_job(name, path, ca, targets):
    return {"job_name": name, "scheme": "https", "metrics_path": path,
            "scrape_interval": "1s", "scrape_timeout": "1s",
            "tls_config": {"ca_file": ca, "server_name": FQDN},
            "static_configs": [{"targets": targets}]}


def test_prometheus_scrapes_both_nodes(make_node, etcd1):
    nodes = make_cluster(make_node, etcd1.url, 2)
    targets = ["%s:%d" % (n.addr, n.metrics_port) for n in nodes]
    by_instance = dict(zip(targets, nodes))
    prom = Prometheus({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            scrape_job("moat", "/", nodes[0].ca, targets),
            scrape_job("moat_v2", "/v2", nodes[0].ca, targets)]})
    try:
        prom.start()

        def all_up():
            if prom.proc.poll() is not None:
                raise AssertionError("prometheus exited with %s:\n%s"
                                     % (prom.proc.returncode, prom.log[-3000:]))
            try:
                active = prom.api("/api/v1/targets")["activeTargets"]
            except (requests.RequestException, AssertionError):
                return None
            if len(active) == 4 and all(t["health"] == "up" for t in active):
                return active
            all_up.last = active
            return None
        all_up.last = None
        active = wait_for(all_up, 30, interval=0.25)
        assert active, "targets not all up in 30 s: %s\n%s" % (
            json.dumps(all_up.last, indent=1)[:3000], prom.log[-3000:])
        assert sorted((t["labels"]["job"], t["labels"]["instance"])
                      for t in active) == \
            sorted((j, i) for j in ("moat", "moat_v2") for i in targets)
        assert all(t["lastError"] == "" for t in active), active

        for job, name, other in (("moat", EXPIRY_V1, EXPIRY_V2),
                                 ("moat_v2", EXPIRY_V2, EXPIRY_V1)):
            res = prom.query('%s{job="%s"}' % (name, job))
            assert len(res) == 2 * len(LOGICAL_NAMES), res
            per_node = {}
            for r in res:
                m = r["metric"]
                n = by_instance[m["instance"]]
                assert m["node"] == str(n.uid), m
                assert m["cluster"] == FQDN, m
                assert m["path"] == cert_path(n, m["logical_name"]), m
                ts, value = r["value"]
                want = not_after(cert_path(n, m["logical_name"])) - ts
                assert abs(float(value) - want) <= SLACK, (job, m, value, want)
                per_node.setdefault(m["node"], []).append(m["logical_name"])
            assert sorted(per_node) == ["1", "2"], per_node
            for ln in per_node.values():
                assert sorted(ln) == sorted(LOGICAL_NAMES), per_node
            # each path serves only its own name for the expiry gauge
            assert prom.query('%s{job="%s"}' % (other, job)) == []

        # The other families arrive too, one per node and job.
        res = prom.query('moat_store_up{job="moat"}')
        assert sorted((r["metric"]["node"], r["value"][1]) for r in res) == \
            [("1", "1"), ("2", "1")], res
        res = prom.query('moat_tls_handshakes_total{job="moat_v2",'
                         'endpoint="metrics_exporter",result="ok"}')
        assert sorted(r["metric"]["node"] for r in res) == ["1", "2"], res
        assert all(float(r["value"][1]) >= 1 for r in res), res
    finally:
        prom.stop()


# -- 2. database traffic -------------------------------------------------------

def test_database_traffic(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="metered")
    uid, port = db["uid"], db["port"]
    payload = os.urandom(48 * 1024)

    before = metrics(n)
    hs0 = one(before, "moat_tls_handshakes_total", endpoint="bdb", bdb=uid,
              result="ok")
    rx0 = one(before, "moat_bdb_received_bytes_total", bdb=uid)
    tx0 = one(before, "moat_bdb_sent_bytes_total", bdb=uid)
    c = redis_client(n, port)
    try:
        assert c.set("blob", payload) is True
        assert c.get("blob") == payload
        sock = c.connection._sock
        assert sock.version() == "TLSv1.3", sock.version()

        def grown(s):
            return (one(s, "moat_tls_handshakes_total", endpoint="bdb",
                        bdb=uid, result="ok") >= hs0 + 1 and
                    one(s, "moat_bdb_received_bytes_total", bdb=uid) >=
                    rx0 + len(payload) and
                    one(s, "moat_bdb_sent_bytes_total", bdb=uid) >=
                    tx0 + len(payload) and
                    one(s, "moat_connections", endpoint="bdb", bdb=uid,
                        version="TLSv1.3") >= 1)
        s = poll(n, grown, what="handshake, bytes and connection of bdb %d"
                 % uid)
        # One client, one handshake; nothing refused.
        assert one(s, "moat_tls_handshakes_total", endpoint="bdb", bdb=uid,
                   result="ok") == hs0 + 1
        for res in HS_RESULTS[1:]:
            assert one(s, "moat_tls_handshakes_total", endpoint="bdb",
                       bdb=uid, result=res) == 0, res
        assert one(s, "moat_connections", endpoint="bdb", bdb=uid,
                   version="TLSv1.2") == 0
        assert one(s, "moat_connections", endpoint="bdb", bdb=uid,
                   version="TLSv1.3") == 1
        # The counters are the same under /v2.
        s2 = metrics(n, "/v2")
        assert one(s2, "moat_bdb_received_bytes_total", bdb=uid) >= \
            rx0 + len(payload)
    finally:
        # Redis.close() only returns a single connection to the pool: close
        # the socket itself.
        c.close()
        c.connection_pool.disconnect()
    poll(n, lambda s: one(s, "moat_connections", endpoint="bdb", bdb=uid,
                          version="TLSv1.3") == 0,
         what="bdb %d's connection gone from moat_connections" % uid)


# -- 3. refused TLS versions ------------------------------------------------------

def hs(samples, endpoint, result, bdb=None):
    kw = {"endpoint": endpoint, "result": result}
    if bdb is not None:
        kw["bdb"] = bdb
    return one(samples, "moat_tls_handshakes_total", **kw)


def test_version_refused_is_counted(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="strict")
    uid, port = db["uid"], db["port"]
    ctx12 = tls_client_context(cafile=n.ca,
                               max_version=ssl.TLSVersion.TLSv1_2)

    # Data plane.
    base = metrics(n)
    r = n.sock("PUT", "/v1/cluster", {"min_data_TLS_version": "1.3"})
    assert r.status_code == 200, r
    with pytest.raises((ssl.SSLError, OSError)):
        tls_data_connect(n, port, ctx12).close()
    s = poll(n, lambda s: hs(s, "bdb", "version_refused", uid) >=
             hs(base, "bdb", "version_refused", uid) + 1,
             what="bdb version_refused")
    assert hs(s, "bdb", "version_refused", uid) == \
        hs(base, "bdb", "version_refused", uid) + 1
    assert hs(s, "bdb", "error", uid) == hs(base, "bdb", "error", uid)
    assert hs(s, "bdb", "ok", uid) == hs(base, "bdb", "ok", uid)
    # TLS 1.3 still comes in, and counts as ok.
    tls_data_connect(n, port).close()
    poll(n, lambda s: hs(s, "bdb", "ok", uid) == hs(base, "bdb", "ok", uid)
         + 1, what="bdb ok after a TLS 1.3 handshake")

    # Control plane: the metrics port (and the API port) follow the
    # control minimum.
    base = metrics(n)
    r = n.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.3"})
    assert r.status_code == 200, r
    for port_ in (n.metrics_port, n.port):
        with pytest.raises((ssl.SSLError, OSError)):
            served_cert_der(n.addr, port_, FQDN,
                            max_version=ssl.TLSVersion.TLSv1_2)
    s = metrics(n)   # a TLS 1.3 scrape still works
    for ep in ("metrics_exporter", "api"):
        assert hs(s, ep, "version_refused") == \
            hs(base, ep, "version_refused") + 1, ep
        assert hs(s, ep, "error") == hs(base, ep, "error"), ep
    # the data counter did not move with them
    assert hs(s, "bdb", "version_refused", uid) == \
        hs(base, "bdb", "version_refused", uid)


# -- 4. hot swap of the metrics_exporter certificate ---------------------------

def test_hot_swap_metrics_certificate(node, test_ca):
    n = node
    bundle = os.path.join(n.tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(n.ca).read() + test_ca.cert_pem)
    old_fp = certgen.fingerprint_der(
        served_cert_der(n.addr, n.metrics_port, FQDN, cafile=n.ca))
    assert old_fp == n.cert_info("metrics_exporter")["fingerprint_sha256"]
    # The served name is the cluster FQDN (the default context checks it).
    s = metrics(n)
    assert one(s, "moat_cert_version", logical_name="metrics_exporter") == 1
    old_na = not_after(n.cert_file("metrics_exporter"))
    assert one(s, "moat_cert_not_after_timestamp_seconds",
               logical_name="metrics_exporter") == old_na

    ka = KeepAlive(n.addr, n.metrics_port, tls_client_context(cafile=bundle),
                   FQDN)
    try:
        r = ka.request("GET", "/")
        assert r.status_code == 200, r
        # A leaf that expires 100 days from now: the gauges must move.
        leaf = certgen.make_leaf(test_ca, days=100,
                                 sans=certgen.service_sans(FQDN, (n.addr,)))
        new_na = calendar.timegm(leaf.cert.not_valid_after.utctimetuple())
        assert abs(new_na - old_na) > 86400 * 30
        r = n.sock("PUT", "/v1/cluster/update_cert",
                   {"name": "metrics_exporter", "key": leaf.key_pem,
                    "certificate": leaf.cert_pem})
        assert r.status_code == 200, r
        assert r.json()["fingerprint_sha256"] == leaf.fingerprint

        # A new connection sees the new certificate, no restart.
        got = certgen.fingerprint_der(
            served_cert_der(n.addr, n.metrics_port, FQDN, cafile=bundle))
        assert got == leaf.fingerprint
        # The connection opened before is still answered (old certificate).
        r = ka.request("GET", "/v2")
        assert r.status_code == 200, r
        assert ka.open and ka.requests == 2
        assert certgen.fingerprint_der(ka.peer_der) == old_fp
        s = parse(r.text)
    finally:
        ka.close()
    assert one(s, "moat_cert_version", logical_name="metrics_exporter") == 2
    assert one(s, "moat_cert_not_after_timestamp_seconds",
               logical_name="metrics_exporter") == new_na
    assert abs(one(s, EXPIRY_V2, logical_name="metrics_exporter") -
               (new_na - time.time())) <= SLACK
    # The others did not change.
    for name in ("api", "cm", "proxy", "syncer"):
        assert one(s, "moat_cert_version", logical_name=name) == 1, name
    s = parse(scrape(n, "/", cafile=bundle).text)
    assert abs(one(s, EXPIRY_V1, logical_name="metrics_exporter") -
               (new_na - time.time())) <= SLACK
    # The old chain no longer verifies against the cluster CA alone.
    with pytest.raises(ssl.SSLError):
        served_cert_der(n.addr, n.metrics_port, FQDN, cafile=n.ca)


# -- 5. paths, errors and no secrets ----------------------------------------------

@pytest.mark.parametrize("path,expiry", [("/", EXPIRY_V1),
                                         ("/metrics", EXPIRY_V1),
                                         ("/v2", EXPIRY_V2),
                                         ("/v2/node", EXPIRY_V2)])
def test_paths(ro_node, path, expiry):
    n = ro_node
    r = scrape(n, path)
    assert r.status_code == 200, r
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    assert "version=0.0.4" in r.headers["Content-Type"], r.headers
    s = parse(r.text)
    check_expiry_series(n, s, expiry)
    other = EXPIRY_V2 if expiry == EXPIRY_V1 else EXPIRY_V1
    assert not series(s, other), other
    for name in CERT_NAMES:
        assert one(s, "moat_cert_version", logical_name=name) >= 1, name
    for ep in ("api", "cm", "metrics_exporter"):
        for res in HS_RESULTS:
            assert len(series(s, "moat_tls_handshakes_total", endpoint=ep,
                              result=res)) == 1, (ep, res)
    # This very request: one TLS 1.3 connection open on the metrics port.
    assert one(s, "moat_connections", endpoint="metrics_exporter",
               version="TLSv1.3") >= 1
    assert one(s, "moat_store_up") == 1
    assert one(s, "moat_store_applied_revision") >= 1
    assert abs(one(s, "moat_apply_last_success_timestamp_seconds") -
               time.time()) < 3600
    assert one(s, "moat_applies_total", result="ok") >= 1
    assert one(s, "moat_rollouts_total", result="complete") >= 1
    keys = [open(n.key_file(name)).read() for name in CERT_NAMES]
    assert_no_private_key(r.text, keys=keys)


def test_not_found_and_method_not_allowed(ro_node):
    n = ro_node
    keys = [open(n.key_file(name)).read() for name in CERT_NAMES]
    for path in ("/nope", "/metrics/", "/v3", "/v1/cluster", "/ca.pem"):
        r = scrape(n, path)
        assert r.status_code == 404, (path, r)
        assert r.headers["Content-Type"].startswith("text/plain"), \
            (path, r.headers)
        assert EXPIRY_V1 not in r.text and EXPIRY_V2 not in r.text
        assert_no_private_key(r.text, keys=keys)
    for method, path in (("POST", "/"), ("PUT", "/metrics"),
                         ("DELETE", "/v2")):
        r = scrape(n, path, method=method)
        assert r.status_code == 405, (method, path, r)
        assert r.headers.get("Allow") == "GET", r.headers
        assert EXPIRY_V1 not in r.text and EXPIRY_V2 not in r.text
        assert_no_private_key(r.text, keys=keys)
    # The port still serves afterwards.
    assert scrape(n, "/").status_code == 200


@pytest.mark.parametrize("method,path,status", [("GET", "/nope", 404),
                                                ("POST", "/", 405)])
def test_error_answers_are_text_plain(ro_node, method, path, status):
    r = scrape(ro_node, path, method=method)
    assert r.status_code == status, r
    assert r.headers.get("Content-Type", "").startswith("text/plain"), \
        "%s %s -> %d with Content-Type %r" % (
            method, path, status, r.headers.get("Content-Type"))


def test_plain_http_and_wrong_name_get_nothing(ro_node):
    """Only HTTPS, and only with a certificate valid for the cluster FQDN."""
    n = ro_node
    with socket.create_connection((n.addr, n.metrics_port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
    assert EXPIRY_V1.encode() not in got, got[:300]
    # A client checking for a name the certificate does not cover refuses.
    with pytest.raises(ssl.SSLCertVerificationError):
        served_cert_der(n.addr, n.metrics_port, "other.example.com",
                        cafile=n.ca)


# -- 6. refused client certificates -------------------------------------------

def test_client_cert_refused_is_counted(db_node, test_ca):
    """A database that requires client certificates from test_ca: a client
    with none, and one from another CA, are each counted as
    client_cert_refused (not as a generic error); one from test_ca as ok."""
    n = db_node
    sans = ["DNS:client.example"]
    good = certgen.make_leaf(test_ca, sans=sans, cn="good")
    other = certgen.make_leaf(certgen.make_ca("moat other CA"), sans=sans,
                              cn="other")
    db = make_bdb(n, tls=True, name="mtls",
                  enforce_client_authentication="enabled",
                  authentication_ssl_client_certs=[
                      {"client_cert": test_ca.cert_pem}])
    uid, port = str(db["uid"]), db["port"]

    def attempt(leaf):
        ctx = tls_client_context(cafile=n.ca)
        if leaf is not None:
            d = moatlib.short_tmpdir("moat-mtls-")
            cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            with open(cert, "w") as f:
                f.write(leaf.cert_pem)
            with open(key, "w") as f:
                f.write(leaf.key_pem)
            ctx.load_cert_chain(cert, key)
            shutil.rmtree(d, ignore_errors=True)
        try:
            s = tls_data_connect(n, port, ctx)
        except (ssl.SSLError, OSError):
            return False
        try:
            # TLS 1.3: the server's verdict on the client's certificate
            # arrives after the client's side of the handshake is done.
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
        except (ssl.SSLError, OSError):
            return False
        finally:
            s.close()

    base = metrics(n)
    assert not attempt(None)
    assert not attempt(other)
    assert attempt(good)
    after = poll(n, lambda s: hs(s, "bdb", "client_cert_refused", uid) >=
                 hs(base, "bdb", "client_cert_refused", uid) + 2,
                 what="two client_cert_refused handshakes")
    assert hs(after, "bdb", "client_cert_refused", uid) - \
        hs(base, "bdb", "client_cert_refused", uid) == 2
    assert hs(after, "bdb", "ok", uid) - hs(base, "bdb", "ok", uid) == 1
    assert hs(after, "bdb", "error", uid) == hs(base, "bdb", "error", uid)
