"""OCSP stapling of the proxy certificate (/v1/ocsp, RS's API).

Tested against `openssl ocsp` run as the responder: a tiny HTTP server
bound to 127.0.0.1 (written into the test's tmp dir, run with
/usr/bin/python3, stopped by PID) runs, for each POST,
`openssl ocsp -index index.txt -CA ca.crt -rsigner ... -reqin ... -respout`
and answers the DER.  index.txt is re-read on every query, so a test
revokes a certificate by rewriting it.  (`openssl ocsp -port` cannot bind
to 127.0.0.1 in OpenSSL 3.0, hence the wrapper.)

Queries are triggered with POST /v1/ocsp/test rather than by waiting for
query_frequency; the background job is covered once (and once for its
failure path, with recovery_max_tries 1).
"""

import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import (AuthorityInformationAccessOID,
                                   ExtendedKeyUsageOID, NameOID)

import certgen
from moatlib import (FQDN, ISO_RE, TIME_SCALE, assert_error,
                     assert_no_private_key, free_port, make_bdb, make_cluster,
                     openssl_s_client, redis_client, short_tmpdir, wait_for)

PYTHON = "/usr/bin/python3"
JOB_WAIT = 15.0 * TIME_SCALE     # the background job ticks every 5 s
APPLY_WAIT = 10.0 * TIME_SCALE   # a stored change reaching the databases

DEFAULTS = {"ocsp_functionality": False, "query_frequency": 3600,
            "recovery_frequency": 60, "recovery_max_tries": 5,
            "response_timeout": 1}
STATUS_FIELDS = {"cert_status", "responder_url", "produced_at",
                 "this_update", "next_update", "revocation_time",
                 "fetched_at", "fetched_by", "failed_queries", "last_error"}
TEST_FIELDS = STATUS_FIELDS - {"failed_queries", "last_error"}

# The responder: openssl ocsp behind a loopback-only http.server.  Each
# request is appended to requests.log; the signer is whatever
# signer.crt/signer.key hold at that moment.
SERVER = r'''
import http.server, os, subprocess, sys, tempfile
port, d = int(sys.argv[1]), sys.argv[2]

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(os.path.join(d, "requests.log"), "a") as f:
            f.write("%d\n" % len(body))
        with tempfile.TemporaryDirectory() as t:
            with open(t + "/req", "wb") as f:
                f.write(body)
            p = subprocess.run(
                ["openssl", "ocsp", "-index", d + "/index.txt",
                 "-CA", d + "/ca.crt", "-rsigner", d + "/signer.crt",
                 "-rkey", d + "/signer.key", "-reqin", t + "/req",
                 "-respout", t + "/resp", "-nmin", "5"],
                capture_output=True)
            if p.returncode != 0:
                sys.stderr.write(p.stderr.decode(errors="replace"))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with open(t + "/resp", "rb") as f:
                out = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def ossl_time(dt):
    return dt.strftime("%y%m%d%H%M%SZ")


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def serial_hex(n):
    """A serial the way openssl's index.txt holds it (BN_bn2hex)."""
    h = "%X" % n
    return ("0" + h) if len(h) % 2 else h


class Responder:
    """openssl ocsp as an HTTP responder on 127.0.0.1:<port>."""

    def __init__(self, ca=None):
        self.dir = short_tmpdir("moat-ocsp-")
        self.ca = ca or certgen.make_ca("moat OCSP test CA")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.entries = {}   # serial -> index line
        self._write("ca.crt", self.ca.cert_pem)
        self._write("ca.key", self.ca.key_pem)
        self.ca_file = os.path.join(self.dir, "ca.crt")
        self.sign_with(self.ca)
        self._write("index.txt", "")
        # Two proxy certificates have the same subject.
        self._write("index.txt.attr", "unique_subject = no\n")
        self._write("srv.py", SERVER)

    def _write(self, name, text):
        # Whole or not at all: the responder may be reading it.
        path = os.path.join(self.dir, name)
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)
        return path

    def sign_with(self, issued):
        """Responses are signed by this certificate's key from now on."""
        self._write("signer.crt", issued.cert_pem)
        self._write("signer.key", issued.key_pem)

    def _index(self):
        self._write("index.txt", "".join(self.entries.values()))

    def add(self, cert, revoked_at=None):
        """cert is valid (V), or revoked (R) at revoked_at."""
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        self.entries[cert.serial_number] = "\t".join((
            "R" if revoked_at else "V", ossl_time(cert.not_valid_after),
            ossl_time(revoked_at) if revoked_at else "",
            serial_hex(cert.serial_number), "unknown",
            "/CN=" + cn.value)) + "\n"
        self._index()

    def revoke(self, cert, when):
        self.add(cert, revoked_at=when)

    def start(self):
        assert self.proc is None
        log = open(os.path.join(self.dir, "srv.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                [PYTHON, os.path.join(self.dir, "srv.py"), str(self.port),
                 self.dir], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("responder exited: %s" % self.log)
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return True
            except OSError:
                return False
        assert wait_for(up, 10), "responder not listening: %s" % self.log
        return self

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def requests(self):
        try:
            with open(os.path.join(self.dir, "requests.log")) as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0

    @property
    def log(self):
        try:
            with open(os.path.join(self.dir, "srv.log"),
                      errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""


@pytest.fixture
def responders():
    made = []

    def make(ca=None, start=True):
        r = Responder(ca)
        made.append(r)
        if start:
            r.start()
        return r
    yield make
    for r in made:
        r.close()


@pytest.fixture
def responder(responders):
    return responders()


# -- helpers ------------------------------------------------------------------

class Proxy:
    """A proxy certificate with an OCSP URL, its key and its CA."""

    def __init__(self, cert, key, ca):
        self.cert, self.key, self.ca = cert, key, ca
        self.pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.key_pem = certgen.key_to_pem(key)
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self.serial = cert.serial_number


def make_proxy(ca, url, ips=("127.0.0.1",), fqdn=FQDN):
    """A proxy certificate issued by ca naming url as its OCSP responder
    (Authority Information Access); url None leaves the extension out."""
    key = certgen.make_key("ec256")
    now = certgen.utcnow()
    sans = [x509.DNSName(fqdn), x509.DNSName("*." + fqdn)] + [
        x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                     fqdn)]))
         .issuer_name(ca.cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                        critical=True)
         .add_extension(x509.SubjectAlternativeName(sans), critical=False)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH,
              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .add_extension(x509.KeyUsage(True, False, False, False, False,
                                      False, False, False, False),
                        critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca.key.public_key()), critical=False))
    if url is not None:
        b = b.add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(url))]),
            critical=False)
    return Proxy(b.sign(ca.key, hashes.SHA256()), key, ca)


# Every key these tests hand out, to look for in every answer.
SECRETS = []


def call(n, method, path, body=None, **kw):
    """n.https (the control socket for a node on another address than
    127.0.0.1, which the api certificate does not name), and no private
    key (nor a piece of ours) in the answer."""
    if (n.addr != "127.0.0.1" or getattr(n, "via_sock", False)) and not kw:
        r = n.sock(method, path, body)
    else:
        r = n.https(method, path, body, **kw)
    assert_no_private_key(r.text, keys=SECRETS)
    return r


# What moat adds to RS's OCSP objects, for the api and cm certificates it
# staples too: checked for agreement with RS's fields, then left out so
# that the tests below compare RS's shapes.
MOAT_EXTRAS = ("responder_urls", "certificates", "fingerprint_sha256",
               "name")


def rs_shape(j):
    j = dict(j)
    urls = j.pop("responder_urls", None)
    if urls is not None:
        assert set(urls) == {"proxy", "api", "cm"}, urls
        assert urls["proxy"] == j["responder_url"], j
    certs = j.pop("certificates", None)
    if certs is not None:
        assert set(certs) == {"proxy", "api", "cm"}, certs
        proxy = dict(certs["proxy"])
        assert {k: v for k, v in proxy.items() if k in j} == \
            {k: v for k, v in j.items() if k in proxy}, (proxy, j)
    name = j.pop("name", None)
    assert name in (None, "proxy"), j
    j.pop("fingerprint_sha256", None)
    return j


def ok(n, method, path, body=None):
    r = call(n, method, path, body)
    assert r.status_code == 200, "%s %s %r: %d %s" % (
        method, path, body, r.status_code, r.text[:2000])
    return rs_shape(r.json()) if path.startswith("/v1/ocsp") else r.json()


def upload_proxy(n, proxy):
    SECRETS.extend([proxy.key_pem, proxy.ca.key_pem])
    r = call(n, "PUT", "/v1/cluster/update_cert",
             {"name": "proxy", "certificate": proxy.pem + proxy.ca.cert_pem,
              "key": proxy.key_pem})
    assert r.status_code == 200, r.text
    return r.json()


def install_proxy(n, resp, ips=("127.0.0.1",)):
    """A proxy certificate naming resp, valid in resp's index, on n."""
    proxy = make_proxy(resp.ca, resp.url, ips=ips, fqdn=n.fqdn)
    resp.add(proxy.cert)
    upload_proxy(n, proxy)
    return proxy


def status(n):
    s = ok(n, "GET", "/v1/ocsp/status")
    assert set(s) == STATUS_FIELDS, s
    return s


def enable(n, **more):
    body = dict(ocsp_functionality=True, **more)
    got = ok(n, "PUT", "/v1/ocsp", body)
    assert got["ocsp_functionality"] is True, got
    return got


def ocsp_test(n):
    return call(n, "POST", "/v1/ocsp/test")


def check_answer(a, want, url, node_uid=1):
    assert a["cert_status"] == want, a
    assert a["responder_url"] == url, a
    for f in ("produced_at", "this_update", "next_update", "fetched_at"):
        assert isinstance(a[f], str) and ISO_RE.match(a[f]), (f, a)
    assert a["fetched_by"] == node_uid, a
    assert a["this_update"] <= a["next_update"], a
    if want == "REVOKED":
        assert isinstance(a["revocation_time"], str) and \
            ISO_RE.match(a["revocation_time"]), a
    else:
        assert a["revocation_time"] is None, a


def staple(addr, port, fqdn=FQDN):
    """What a fresh `openssl s_client -status` to addr:port gets stapled:
    None (no response sent) or {"status": "good"|"revoked"|..., "serial",
    "text"}."""
    p = openssl_s_client(addr, port, "-status", servername=fqdn)
    out = p.stdout
    if "OCSP response: no response sent" in out:
        return None
    m = re.search(r"OCSP Response Status: (\w+)", out)
    assert m, "no OCSP part in s_client output (rc %d):\n%s\n%s" % (
        p.returncode, out[-3000:], p.stderr[-2000:])
    st = re.search(r"Cert Status: (\w+)", out)
    ser = re.search(r"Serial Number: ([0-9A-Fa-f]+)", out)
    return {"response": m.group(1), "status": st and st.group(1),
            "serial": ser and int(ser.group(1), 16), "text": out}


def wait_staple(addr, port, pred, fqdn=FQDN, timeout=APPLY_WAIT):
    last = []

    def check():
        s = staple(addr, port, fqdn)
        last[:] = [s]
        return pred(s)
    assert wait_for(check, timeout, 0.2), \
        "staple on %s:%d never matched; last: %r" % (
            addr, port, last and (last[0] and last[0]["text"][-2500:]))
    return last[0]


def good_for(proxy):
    return lambda s: s is not None and s["response"] == "successful" and \
        s["status"] == "good" and s["serial"] == proxy.serial


def alert(n, name):
    a = ok(n, "GET", "/v1/cluster/alerts/" + name)
    assert isinstance(a.get("state"), bool), a
    return a


def events(n, typ):
    body = ok(n, "GET", "/v1/logs")
    return [e for e in body if e.get("type") == typ]


def served_serial(addr, port, fqdn=FQDN):
    from moatlib import served_cert_der
    der = served_cert_der(addr, port, fqdn)
    return x509.load_der_x509_certificate(der).serial_number


# -- 1. settings --------------------------------------------------------------

def test_defaults_validation_and_no_responder_url(node):
    n = node
    got = ok(n, "GET", "/v1/ocsp")
    assert got == dict(DEFAULTS, responder_url=None), got
    assert status(n) == {f: (0 if f == "failed_queries" else None)
                         for f in STATUS_FIELDS}

    bad = [{}, {"query_frequency": 59}, {"query_frequency": 86401},
           {"recovery_frequency": 59}, {"recovery_frequency": 86401},
           {"recovery_max_tries": 0}, {"recovery_max_tries": 101},
           {"response_timeout": 0}, {"response_timeout": 61},
           {"query_frequency": 60.5}, {"query_frequency": "600"},
           {"query_frequency": True}, {"query_frequency": None},
           {"ocsp_functionality": "true"}, {"ocsp_functionality": 1},
           {"responder_url": "http://127.0.0.1:1"},
           {"responder_url": None},
           {"no_such_field": 1},
           # one bad field spoils the good ones
           {"query_frequency": 600, "response_timeout": 0},
           {"recovery_max_tries": 3, "extra": True}]
    for body in bad:
        r = call(n, "PUT", "/v1/ocsp", body)
        assert_error(r, 400, "invalid_schema")
        assert ok(n, "GET", "/v1/ocsp") == \
            dict(DEFAULTS, responder_url=None), body
    for raw in ("", "[]", "not json", "null", '"x"'):
        r = call(n, "PUT", "/v1/ocsp", raw)
        assert r.status_code == 400, (raw, r.status_code, r.text)
    assert ok(n, "GET", "/v1/ocsp") == dict(DEFAULTS, responder_url=None)

    # The bounds are accepted; the answer has the GET shape.
    for body in ({"query_frequency": 60, "recovery_frequency": 86400,
                  "recovery_max_tries": 1, "response_timeout": 60},
                 {"query_frequency": 86400, "recovery_frequency": 60,
                  "recovery_max_tries": 100, "response_timeout": 1},
                 {"query_frequency": 900, "ocsp_functionality": False}):
        got = ok(n, "PUT", "/v1/ocsp", body)
        assert set(got) == set(DEFAULTS) | {"responder_url"}, got
        for k, v in body.items():
            assert got[k] == v, (body, got)
        assert ok(n, "GET", "/v1/ocsp") == got
    want = dict(DEFAULTS, query_frequency=900, recovery_frequency=60,
                recovery_max_tries=100, response_timeout=1,
                responder_url=None)
    assert ok(n, "GET", "/v1/ocsp") == want

    # The cluster-CA-issued proxy certificate names no responder.
    r = call(n, "PUT", "/v1/ocsp", {"ocsp_functionality": True})
    body = assert_error(r, 400, "no_responder_url")
    r = call(n, "PUT", "/v1/ocsp", {"ocsp_functionality": True,
                                    "query_frequency": 120})
    assert_error(r, 400, "no_responder_url")
    assert ok(n, "GET", "/v1/ocsp") == want
    assert_error(ocsp_test(n), 400, "no_responder_url")
    assert status(n)["cert_status"] is None

    # A proxy certificate from our CA without AIA: still none.
    ca = certgen.make_ca("moat OCSP no-AIA CA")
    upload_proxy(n, make_proxy(ca, None, fqdn=n.fqdn))
    assert ok(n, "GET", "/v1/ocsp")["responder_url"] is None
    assert_error(call(n, "PUT", "/v1/ocsp", {"ocsp_functionality": True}),
                 400, "no_responder_url")
    assert_error(ocsp_test(n), 400, "no_responder_url")


def test_admin_only(node, responder):
    n = node
    install_proxy(n, responder)
    r = requests.get(n.url("/v1/ocsp"), verify=n.ca, timeout=30)
    assert_error(r, 401, "unauthorized")
    viewer = ("ocsp-viewer@example.com", "Viewer-password-1")
    r = n.session.post(n.url("/v1/users"), timeout=30,
                       json={"email": viewer[0], "password": viewer[1],
                             "role": "cluster_viewer"})
    assert r.status_code in (200, 201), r.text
    for method, path, body in (("GET", "/v1/ocsp", None),
                               ("PUT", "/v1/ocsp",
                                {"ocsp_functionality": True}),
                               ("GET", "/v1/ocsp/status", None),
                               ("POST", "/v1/ocsp/test", None)):
        r = call(n, method, path, body, auth=viewer)
        assert_error(r, 403, "forbidden")
    assert ok(n, "GET", "/v1/ocsp")["ocsp_functionality"] is False
    assert responder.requests == 0


# -- 2. the background job ----------------------------------------------------

def test_background_job_staples_good(node, responder):
    n = node
    db = make_bdb(n)
    port = db["port"]
    proxy = install_proxy(n, responder)
    got = ok(n, "GET", "/v1/ocsp")
    assert got == dict(DEFAULTS, responder_url=responder.url), got
    wait_for(lambda: served_serial(n.addr, port, n.fqdn) == proxy.serial,
             APPLY_WAIT, 0.2)
    assert served_serial(n.addr, port, n.fqdn) == proxy.serial
    assert staple(n.addr, port, n.fqdn) is None      # off: nothing stapled
    assert responder.requests == 0

    got = enable(n)
    assert got == dict(DEFAULTS, ocsp_functionality=True,
                       responder_url=responder.url), got
    # No POST /v1/ocsp/test: the job queries by itself.
    s = wait_for(lambda: (lambda s: s["cert_status"] and s)(status(n)),
                 JOB_WAIT, 0.25)
    assert s, "no answer within %.0fs: %r\nresponder: %s" % (
        JOB_WAIT, status(n), responder.log)
    check_answer(s, "GOOD", responder.url)
    assert s["failed_queries"] == 0, s
    assert s["last_error"] in ("", None), s
    assert responder.requests >= 1

    st = wait_staple(n.addr, port, good_for(proxy), n.fqdn)
    assert "OCSP Response Status: successful" in st["text"]
    assert "Cert Status: good" in st["text"]

    # A TLS client that does not ask for the status is unaffected.
    cafile = responder.ca_file
    c = redis_client(n, port, ca=cafile)
    try:
        assert c.ping() is True
        assert c.set("ocsp", "stapled") is True
        assert c.get("ocsp") == b"stapled"
    finally:
        c.close()

    ev = events(n, "ocsp_status_changed")
    assert [e["cert_status"] for e in ev] == ["GOOD"], ev
    assert ev[0]["responder_url"] == responder.url, ev
    assert ev[0]["fingerprint_sha256"] == certgen.fingerprint_der(proxy.der)
    for name in ("cluster_ocsp_status_revoked", "cluster_ocsp_query_failed"):
        assert alert(n, name)["state"] is False, name
    # Answered once: the next query is query_frequency (3600 s) away.
    before = responder.requests
    time.sleep(6)
    assert responder.requests == before
    assert status(n)["fetched_at"] == s["fetched_at"]


def test_background_failures_raise_the_alert(node, responders):
    """Nothing listens at the URL: with recovery_max_tries 1 the job's first
    failure is the last allowed, and cluster_ocsp_query_failed goes on."""
    n = node
    resp = responders(start=False)
    install_proxy(n, resp)
    enable(n, recovery_max_tries=1)
    a = wait_for(lambda: (lambda a: a["state"] and a)(
        alert(n, "cluster_ocsp_query_failed")), JOB_WAIT, 0.25)
    assert a, "alert not on within %.0fs: %r / %r" % (
        JOB_WAIT, alert(n, "cluster_ocsp_query_failed"), status(n))
    s = status(n)
    assert s["failed_queries"] == 1, s
    assert resp.url in (s["last_error"] or ""), s
    assert s["cert_status"] is None, s
    full = ok(n, "GET", "/v1/cluster/alerts")
    assert full["cluster_ocsp_query_failed"]["state"] is True, full
    assert events(n, "ocsp_query_failed"), ok(n, "GET", "/v1/logs")

    # The responder comes up: a query succeeds and the alert goes off.
    resp.start()
    a = ocsp_test(n)
    assert a.status_code == 200, a.text
    check_answer(a.json(), "GOOD", resp.url)
    s = status(n)
    assert s["failed_queries"] == 0 and s["cert_status"] == "GOOD", s
    assert alert(n, "cluster_ocsp_query_failed")["state"] is False


# -- 3. answers ---------------------------------------------------------------

def test_revoked(node, responder):
    n = node
    db = make_bdb(n)
    port = db["port"]
    proxy = install_proxy(n, responder)
    enable(n)
    r = ocsp_test(n)
    assert r.status_code == 200, r.text
    assert set(rs_shape(r.json())) == TEST_FIELDS, r.json()
    check_answer(r.json(), "GOOD", responder.url)
    wait_staple(n.addr, port, good_for(proxy), n.fqdn)

    when = certgen.utcnow() - datetime.timedelta(hours=1)
    responder.revoke(proxy.cert, when)
    r = ocsp_test(n)
    assert r.status_code == 200, r.text
    a = rs_shape(r.json())
    check_answer(a, "REVOKED", responder.url)
    assert a["revocation_time"] == iso(when), a
    s = status(n)
    assert {k: s[k] for k in TEST_FIELDS} == a, (s, a)
    assert s["failed_queries"] == 0, s

    st = wait_staple(n.addr, port, lambda s: s is not None and
                     s["status"] == "revoked", n.fqdn)
    assert st["serial"] == proxy.serial, st["text"]
    assert "OCSP Response Status: successful" in st["text"]

    al = alert(n, "cluster_ocsp_status_revoked")
    assert al["state"] is True, al
    assert [c["name"] for c in al["change_value"]["certificates"]] == \
        ["proxy"], al
    full = ok(n, "GET", "/v1/cluster/alerts")
    assert full["cluster_ocsp_status_revoked"]["state"] is True, full
    ev = events(n, "ocsp_status_changed")
    assert ev and ev[0]["cert_status"] == "REVOKED", ev
    assert ev[0]["was"] == "GOOD", ev
    assert ev[0]["severity"] == "WARNING", ev
    assert ev[0]["responder_url"] == responder.url, ev

    # Back to good (an un-revocation only a test CA does): the alert clears.
    responder.add(proxy.cert)
    r = ocsp_test(n)
    assert r.status_code == 200 and r.json()["cert_status"] == "GOOD", r.text
    assert alert(n, "cluster_ocsp_status_revoked")["state"] is False
    wait_staple(n.addr, port, good_for(proxy), n.fqdn)


def test_unknown_certificate(node, responder):
    """A serial the responder's index lacks: UNKNOWN (stored as is)."""
    n = node
    proxy = make_proxy(responder.ca, responder.url, fqdn=n.fqdn)
    upload_proxy(n, proxy)             # not in index.txt
    r = ocsp_test(n)
    assert r.status_code == 200, r.text
    check_answer(r.json(), "UNKNOWN", responder.url)
    # Off: a test records nothing.
    assert status(n)["cert_status"] is None


def test_responder_down(node, responder):
    n = node
    db = make_bdb(n)
    port = db["port"]
    proxy = install_proxy(n, responder)
    enable(n, recovery_max_tries=2)
    # Let the job's first query land (it is immediate) before testing.
    assert wait_for(lambda: status(n)["cert_status"] == "GOOD", JOB_WAIT,
                    0.25), status(n)
    wait_staple(n.addr, port, good_for(proxy), n.fqdn)

    responder.stop()
    r = ocsp_test(n)
    body = assert_error(r, 400, "invalid_ocsp_response")
    assert responder.url in body["description"], body
    s = status(n)
    assert s["failed_queries"] == 1, s
    assert responder.url in (s["last_error"] or ""), s
    # One failure of two allowed: the answer is kept and still stapled.
    assert s["cert_status"] == "GOOD", s
    assert good_for(proxy)(staple(n.addr, port, n.fqdn))
    assert alert(n, "cluster_ocsp_query_failed")["state"] is False

    r = ocsp_test(n)
    assert_error(r, 400, "invalid_ocsp_response")
    s = status(n)
    assert s["failed_queries"] == 2, s
    assert s["cert_status"] is None, s     # dropped: nothing stale stapled
    wait_staple(n.addr, port, lambda s: s is None, n.fqdn)
    assert alert(n, "cluster_ocsp_query_failed")["state"] is True
    ev = events(n, "ocsp_query_failed")
    assert ev and ev[0]["tries"] == 2, ev
    assert responder.url in ev[0]["last_error"], ev

    responder.start()
    r = ocsp_test(n)
    assert r.status_code == 200, r.text
    s = status(n)
    assert s["failed_queries"] == 0 and s["cert_status"] == "GOOD", s
    assert alert(n, "cluster_ocsp_query_failed")["state"] is False
    wait_staple(n.addr, port, good_for(proxy), n.fqdn)


def test_wrong_signer_is_refused(node, responder):
    n = node
    db = make_bdb(n)
    port = db["port"]
    proxy = install_proxy(n, responder)
    other = certgen.make_ca("moat unrelated CA")
    SECRETS.append(other.key_pem)
    responder.sign_with(other)

    # Off: refused, and nothing recorded.
    r = ocsp_test(n)
    body = assert_error(r, 400, "invalid_ocsp_response")
    # Refused for its signature (the responder did answer).
    assert "sign" in body["description"], body
    assert responder.requests == 1
    assert status(n) == {f: (0 if f == "failed_queries" else None)
                         for f in STATUS_FIELDS}

    enable(n)
    r = ocsp_test(n)
    assert_error(r, 400, "invalid_ocsp_response")
    s = status(n)
    assert s["cert_status"] is None, s
    assert s["failed_queries"] >= 1 and s["last_error"], s
    assert staple(n.addr, port, n.fqdn) is None

    # A certificate of the CA that is not an OCSP signer: refused too.
    not_delegated = certgen.make_leaf(responder.ca, cn="not an OCSP signer",
                                      eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    SECRETS.append(not_delegated.key_pem)
    responder.sign_with(not_delegated)
    body = assert_error(ocsp_test(n), 400, "invalid_ocsp_response")
    assert "sign" in body["description"], body
    assert status(n)["cert_status"] is None

    # A delegated responder (id-kp-OCSPSigning, issued by the CA): good.
    delegated = certgen.make_leaf(responder.ca, cn="moat OCSP responder",
                                  eku=(ExtendedKeyUsageOID.OCSP_SIGNING,))
    SECRETS.append(delegated.key_pem)
    responder.sign_with(delegated)
    r = ocsp_test(n)
    assert r.status_code == 200, r.text
    check_answer(r.json(), "GOOD", responder.url)
    wait_staple(n.addr, port, good_for(proxy), n.fqdn)


# -- 4. turning it off, replacing the certificate -----------------------------

def test_off_stops_stapling(node, responder):
    n = node
    db = make_bdb(n)
    port = db["port"]
    proxy = install_proxy(n, responder)
    enable(n)
    assert ocsp_test(n).status_code == 200
    wait_staple(n.addr, port, good_for(proxy), n.fqdn)
    c = redis_client(n, port, ca=responder.ca_file)
    assert c.set("k", "v") is True

    got = ok(n, "PUT", "/v1/ocsp", {"ocsp_functionality": False})
    assert got["ocsp_functionality"] is False, got
    assert status(n)["cert_status"] is None
    wait_staple(n.addr, port, lambda s: s is None, n.fqdn)
    assert c.get("k") == b"v"          # open connections keep going
    c.close()
    assert alert(n, "cluster_ocsp_status_revoked")["state"] is False

    # A test while off answers but staples nothing.
    r = ocsp_test(n)
    assert r.status_code == 200 and r.json()["cert_status"] == "GOOD", r.text
    assert status(n)["cert_status"] is None
    time.sleep(1)
    assert staple(n.addr, port, n.fqdn) is None


def test_replaced_proxy_certificate(node, responder):
    n = node
    db = make_bdb(n)
    port = db["port"]
    first = install_proxy(n, responder)
    enable(n)
    assert ocsp_test(n).status_code == 200
    wait_staple(n.addr, port, good_for(first), n.fqdn)

    second = make_proxy(responder.ca, responder.url, fqdn=n.fqdn)
    assert second.serial != first.serial
    responder.add(second.cert)
    upload_proxy(n, second)
    assert wait_for(lambda: served_serial(n.addr, port, n.fqdn) ==
                    second.serial, APPLY_WAIT, 0.1)
    # From the first handshake with the new certificate on, the old
    # staple is never served (the job may already have one for the new).
    for _ in range(5):
        s = staple(n.addr, port, n.fqdn)
        assert s is None or good_for(second)(s), s["text"]
    r = ocsp_test(n)
    assert r.status_code == 200, r.text
    check_answer(r.json(), "GOOD", responder.url)
    wait_staple(n.addr, port, good_for(second), n.fqdn)
    ev = events(n, "ocsp_status_changed")
    assert ev[0]["fingerprint_sha256"] == certgen.fingerprint_der(second.der)


# -- 5. two nodes -------------------------------------------------------------

def test_two_nodes_staple_one_answer(etcd1, make_node, responder):
    n1, n2 = make_cluster(make_node, etcd1.url, 2)
    proxy = install_proxy(n1, responder, ips=("127.0.0.1", "127.0.0.2"))
    dbs = []
    for n in (n1, n2):
        d = make_bdb(n)
        assert d["node_uid"] == n.uid, d
        dbs.append((n, d["port"]))
    for n, port in dbs:
        assert wait_for(lambda: served_serial(n.addr, port, n.fqdn) ==
                        proxy.serial, APPLY_WAIT, 0.2), n.addr
        assert staple(n.addr, port, n.fqdn) is None
    assert ok(n2, "GET", "/v1/ocsp")["responder_url"] == responder.url

    enable(n1)
    s = wait_for(lambda: (lambda s: s["cert_status"] and s)(status(n1)),
                 JOB_WAIT, 0.25)
    assert s, status(n1)
    check_answer(s, "GOOD", responder.url, node_uid=s["fetched_by"])
    assert s["fetched_by"] in (1, 2), s
    for n, port in dbs:
        wait_staple(n.addr, port, good_for(proxy), n.fqdn)
    assert status(n2) == status(n1)
    # Fetched once for the cluster, not once per node.
    time.sleep(6)
    assert responder.requests == 1, responder.requests
    assert status(n2) == s

    # A test on node 2 is stored for both.
    responder.revoke(proxy.cert, certgen.utcnow() - datetime.timedelta(
        minutes=10))
    r = ocsp_test(n2)
    assert r.status_code == 200 and r.json()["cert_status"] == "REVOKED", \
        r.text
    assert r.json()["fetched_by"] == 2, r.json()
    for n, port in dbs:
        wait_staple(n.addr, port, lambda s: s is not None and
                    s["status"] == "revoked", n.fqdn)
    assert alert(n1, "cluster_ocsp_status_revoked")["state"] is True


# -- 6. no keys ---------------------------------------------------------------

def test_no_private_key_anywhere(node, responder):
    n = node
    proxy = install_proxy(n, responder)
    texts = []
    enable(n)
    for method, path in (("GET", "/v1/ocsp"), ("POST", "/v1/ocsp/test"),
                         ("GET", "/v1/ocsp/status"),
                         ("GET", "/v1/cluster/alerts"), ("GET", "/v1/logs")):
        r = call(n, method, path)
        assert r.status_code == 200, (path, r.text)
        texts.append(r.text)
    responder.stop()
    r = ocsp_test(n)
    assert_error(r, 400, "invalid_ocsp_response")
    texts += [r.text, call(n, "GET", "/v1/ocsp/status").text]
    keys = [proxy.key_pem, responder.ca.key_pem]
    assert_no_private_key(*texts, keys=keys)
    assert_no_private_key(n.log, keys=keys)


# -- moat's own: the API and UI ports' certificates ----------------------------

def test_api_and_cm_certificates_are_stapled_too(node, responder):
    """RS staples the proxy certificate only; moat staples api and cm as
    well when they name a responder: the API and UI ports then staple
    their own answers, and POST /v1/ocsp/test takes {"name"}."""
    n = node
    api = make_proxy(responder.ca, responder.url, fqdn=n.fqdn)
    cm = make_proxy(responder.ca, responder.url, fqdn=n.fqdn)
    SECRETS.extend([api.key_pem, cm.key_pem, responder.ca.key_pem])
    for name, c in (("api", api), ("cm", cm)):
        responder.add(c.cert)
        r = call(n, "PUT", "/v1/cluster/update_cert",
                 {"name": name, "certificate": c.pem + responder.ca.cert_pem,
                  "key": c.key_pem})
        assert r.status_code == 200, r.text
        # The API port's certificate is the test CA's from now on.
        n.via_sock = True
    # The proxy certificate (the cluster CA's) names no responder, and
    # that is no reason to refuse: api and cm do.
    got = call(n, "GET", "/v1/ocsp").json()
    assert got["responder_url"] is None, got
    assert got["responder_urls"] == {"proxy": None, "api": responder.url,
                                     "cm": responder.url}, got
    enable(n)
    s = wait_for(lambda: (lambda s: s["certificates"]["api"]["cert_status"]
                          and s["certificates"]["cm"]["cert_status"] and s)(
        call(n, "GET", "/v1/ocsp/status").json()), JOB_WAIT, 0.25)
    assert s, call(n, "GET", "/v1/ocsp/status").text
    assert s["certificates"]["api"]["cert_status"] == "GOOD", s
    assert s["certificates"]["cm"]["cert_status"] == "GOOD", s
    assert s["certificates"]["proxy"]["cert_status"] is None, s
    assert s["cert_status"] is None, s            # RS's field: the proxy's
    wait_staple(n.addr, n.port, good_for(api), n.fqdn)
    wait_staple(n.addr, n.cm_port, good_for(cm), n.fqdn)
    # The API still answers, over a connection that got the staple.
    assert n.https("GET", "/v1/cluster", verify=responder.ca_file
                   ).status_code == 200

    # Revoked: tested by name, stapled, and the alert names the port's
    # certificate.
    responder.add(api.cert, revoked_at=certgen.utcnow() -
                  datetime.timedelta(minutes=10))
    r = call(n, "POST", "/v1/ocsp/test", {"name": "api"})
    assert r.status_code == 200 and r.json()["cert_status"] == "REVOKED", \
        r.text
    assert r.json()["name"] == "api", r.json()
    wait_staple(n.addr, n.port, lambda st: st is not None and
                st["status"] == "revoked", n.fqdn)
    a = alert(n, "cluster_ocsp_status_revoked")
    assert a["state"] is True, a
    assert [c["name"] for c in a["change_value"]["certificates"]] == \
        ["api"], a
    for body in ({"name": "syncer"}, {"name": 1}, {"other": "api"}):
        assert_error(call(n, "POST", "/v1/ocsp/test", body), 400,
                     "invalid_schema")
    assert_error(call(n, "POST", "/v1/ocsp/test", {"name": "proxy"}), 400,
                 "no_responder_url")
    # Off: the ports staple nothing any more.
    ok(n, "PUT", "/v1/ocsp", {"ocsp_functionality": False})
    wait_staple(n.addr, n.port, lambda st: st is None, n.fqdn)
    wait_staple(n.addr, n.cm_port, lambda st: st is None, n.fqdn)
    assert_no_private_key(call(n, "GET", "/v1/ocsp/status").text,
                          keys=SECRETS)
