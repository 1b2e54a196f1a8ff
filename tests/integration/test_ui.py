"""The management UI on the cm port (docs/ui.md), in a real browser.

Each browser test starts a real moatd (conftest's fixtures), then runs one
scenario of tests/ui/run.mjs: playwright-core driving Debian's chromium,
which trusts exactly the CA files the test names (no certificate error is
ignored).  The scenario drives the page and hands back what it saw; the
test then checks the server's side from here (the certificate the cm port
serves, the API's state, TLS handshakes).

A scenario that fails leaves screenshots (failure-<n>.png) and the page's
DOM in its artifact directory, printed in the test's output; a test that
passes removes it.  MOAT_UI_SCREENSHOTS=1 also writes the README's two
screenshots (ui-certificates.png, ui-replace-error.png) to docs/img/, or
to MOAT_UI_SCREENSHOTS_DIR.

Needs: node >= 20, /usr/bin/chromium, certutil, and tests/ui/node_modules
(scripts/deps installs all of them).  Nothing here is skipped.
"""

import http.client
import http.server
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest
import requests

import certgen
import moatlib
from moatlib import (KeepAlive, assert_error, free_db_port, served_cert_der,
                     served_fingerprint, tls_client_context,
                     wait_bdb_active, wait_for)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UI_DIR = os.path.join(REPO, "tests", "ui")
RUN = os.path.join(UI_DIR, "run.mjs")
CHROMIUM = os.environ.get("MOAT_CHROMIUM", "/usr/bin/chromium")
SHOTS_DIR = os.environ.get("MOAT_UI_SCREENSHOTS_DIR") or \
    os.path.join(REPO, "docs", "img")
TEST_CA_CN = "moat integration test CA"  # conftest's test_ca
CM_UP_TIMEOUT = 10.0


# -- the harness --------------------------------------------------------------

def _harness_missing():
    """What the browser tests need and this machine lacks (scripts/deps
    installs all of it)."""
    missing = []
    node = shutil.which("node")
    if not node:
        missing.append("node (Debian package nodejs)")
    else:
        v = subprocess.run([node, "--version"], capture_output=True,
                           text=True, timeout=30).stdout.strip()
        try:
            major = int(v.lstrip("v").split(".")[0])
        except ValueError:
            major = 0
        if major < 20:
            missing.append("node >= 20 (found %s; playwright-core needs 20)"
                           % (v or "?"))
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM + " (Debian package chromium)")
    if not shutil.which("certutil"):
        missing.append("certutil (Debian package libnss3-tools)")
    if not os.path.isfile(os.path.join(UI_DIR, "node_modules",
                                       "playwright-core", "package.json")):
        missing.append("tests/ui/node_modules (npm ci in tests/ui)")
    return missing


def _run_pids(out):
    """PIDs of the live processes of the scenario whose artifact directory
    is out: node carries MOAT_UI_RUN=out in its environment; chromium (which
    playwright starts in a session of its own), its helpers and crash
    handlers, whose environment chromium empties, name their profile or
    database under out on their command line."""
    env_mark = ("MOAT_UI_RUN=%s" % out).encode()
    path_mark = (out + "/").encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        if s[s.rindex(")") + 2:].split()[0] == "Z":
            continue
        if env_mark in env or path_mark in cmd:
            pids.append(int(d))
    return pids


def _kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class UI:
    """Runs browser scenarios; keeps their artifacts when the test fails."""

    def __init__(self, request):
        self.request = request
        self.dirs = []
        self.failed_before = request.session.testsfailed

    def run(self, scenario, node=None, timeout=120, **kw):
        """Run scenario against node's UI; return what it handed back.
        kw are the scenario's arguments (trust= replaces the default, the
        cluster CA)."""
        out = tempfile.mkdtemp(prefix="moat-ui-%s-" % scenario, dir="/tmp")
        self.dirs.append(out)
        a = {"out": out, "chromium": CHROMIUM, "timeout_ms": timeout * 1000,
             "shots": SHOTS_DIR if os.environ.get("MOAT_UI_SCREENSHOTS") == "1"
             else ""}
        if node is not None:
            a.update(url=ui_url(node), email=node.email,
                     password=node.password, fqdn=node.fqdn, addr=node.addr,
                     trust=[node.ca], ca_file=node.ca)
        # Playwright's own TLS client (it presents a context's client
        # certificates) checks the server against Node's CAs: node_ca adds
        # one there, as the browser's trust is added in its NSS database.
        node_ca = kw.pop("node_ca", None)
        a.update(kw)
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                    "no_proxy")}
        env.update(MOAT_UI_ARGS=json.dumps(a), TMPDIR=out, MOAT_UI_RUN=out)
        if node_ca is not None:
            env["NODE_EXTRA_CA_CERTS"] = node_ca
        print("ui scenario %s: artifacts in %s" % (scenario, out))
        with open(os.path.join(out, "node.out"), "wb") as so, \
                open(os.path.join(out, "node.err"), "wb") as se:
            p = subprocess.Popen([shutil.which("node"), RUN, scenario],
                                 cwd=UI_DIR,
                                 stdin=subprocess.DEVNULL, stdout=so,
                                 stderr=se, env=env, start_new_session=True)
        timed_out = False
        try:
            p.wait(timeout + 30)
        except BaseException as ex:  # its own deadline failed, or ^C
            timed_out = isinstance(ex, subprocess.TimeoutExpired)
            # playwright closes chromium on SIGTERM.
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
            if not timed_out:
                _kill_pids(_run_pids(out))
                raise
        # Every process of the scenario ends with it.
        left = wait_for(lambda: not _run_pids(out), 5) is None
        if left:
            pids = _run_pids(out)
            _kill_pids(pids)
            pytest.fail("scenario %s left processes behind (killed by PID: "
                        "%s)" % (scenario, pids), pytrace=False)
        err = _read(os.path.join(out, "node.err"))
        if timed_out or p.returncode != 0:
            pytest.fail("browser scenario %s %s:\n%s\n-- run.log (tail) --\n"
                        "%s\n(artifacts, screenshots: %s)"
                        % (scenario, "timed out" if timed_out else
                           "failed (exit %s)" % p.returncode,
                           err[-4000:] or _read(os.path.join(out, "node.out"))
                           [-2000:],
                           _read(os.path.join(out, "run.log"))[-3000:], out),
                        pytrace=False)
        with open(os.path.join(out, "result.json")) as f:
            return json.load(f)

    def close(self):
        if self.request.session.testsfailed > self.failed_before:
            for d in self.dirs:
                print("kept UI artifacts of the failed test: %s" % d)
            return
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@pytest.fixture
def ui(request):
    missing = _harness_missing()
    if missing:
        pytest.fail("the browser tests need: %s; run scripts/deps"
                    % ", ".join(missing), pytrace=False)
    u = UI(request)
    yield u
    u.close()


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="moat-uit-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ui_url(node, path="/"):
    return "https://%s:%d%s" % (node.addr, node.cm_port, path)


def wait_cm(node):
    """Until the cm port completes a TLS handshake; fail if it never does."""
    last = [None]

    def up():
        try:
            return served_cert_der(node.addr, node.cm_port, node.fqdn,
                                   timeout=2)
        except (OSError, ssl.SSLError) as ex:
            last[0] = ex
            return None
    if not wait_for(up, CM_UP_TIMEOUT, 0.1):
        pytest.fail("nothing serves TLS on the cm port %s:%d %.0f s after "
                    "moatd started (%s)" % (node.addr, node.cm_port,
                                            CM_UP_TIMEOUT, last[0]),
                    pytrace=False)
    return node


def cm_get(node, path, cookie=None, verify=None, **kw):
    """One request to the UI's port (verifying the cluster CA by default)."""
    headers = kw.pop("headers", {})
    if cookie is not None:
        headers["Cookie"] = "moat_session=%s" % cookie
    return requests.request(kw.pop("method", "GET"), ui_url(node, path),
                            headers=headers,
                            verify=node.ca if verify is None else verify,
                            timeout=30, **kw)


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def cert_infos(node):
    out = {}
    for name in moatlib.CERT_NAMES:
        r = node.sock("GET", "/v1/cluster/certificates/%s" % name)
        assert r.status_code == 200, r
        out[name] = r.json()
    return out


def good_cm_leaf(node, test_ca):
    return certgen.make_leaf(test_ca, sans=certgen.service_sans(
        node.fqdn, ips=(node.addr,)), eku=(certgen.SERVER_AUTH,))


def tls12_refused(addr, port, fqdn):
    try:
        served_cert_der(addr, port, fqdn, max_version=ssl.TLSVersion.TLSv1_2)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


# -- the harness alone (no moatd) ---------------------------------------------

class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>t</title><p id=hello>hello</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class _HTTPSServer:
    """A page on loopback over TLS, in a thread of this process."""

    def __init__(self, issued, d):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(write(d, "c%d.pem" % id(self), issued.cert_pem),
                            write(d, "k%d.pem" % id(self), issued.key_pem))
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.t.join(10)


def test_harness_chromium_trusts_only_the_given_ca(ui, test_ca, tmpdir_short):
    other_ca = certgen.make_ca("a CA the browser does not trust")
    sans = ["IP:127.0.0.1"]
    good = _HTTPSServer(certgen.make_leaf(test_ca, sans=sans), tmpdir_short)
    bad = _HTTPSServer(certgen.make_leaf(other_ca, sans=sans), tmpdir_short)
    try:
        r = ui.run("harness", url="https://127.0.0.1:%d/" % good.port,
                   untrusted_url="https://127.0.0.1:%d/" % bad.port,
                   also_visits=["https://127.0.0.1:%d/" % bad.port],
                   trust=[write(tmpdir_short, "ca.pem", test_ca.cert_pem)],
                   timeout=60)
    finally:
        good.close()
        bad.close()
    assert r["hello"] == "hello"
    assert r["issuer"] == TEST_CA_CN, r
    assert r["untrusted"] == "net::ERR_CERT_AUTHORITY_INVALID", r


# -- HTTP-level facts (no browser) --------------------------------------------

def _set_cookies(r):
    return r.raw.headers.getlist("Set-Cookie")


def _signin(node, email=None, password=None):
    return cm_get(node, "/ui/session", method="POST",
                  json={"email": email or node.email,
                        "password": password or node.password})


def test_cm_port_serves_cm_certificate_and_ca(node):
    wait_cm(node)
    fps = node.fingerprints()
    assert served_fingerprint(node.addr, node.cm_port) == fps["cm"]
    assert fps["cm"] != fps["api"]
    r = cm_get(node, "/ca.pem")
    assert r.status_code == 200, r.text[:500]
    assert "PRIVATE KEY" not in r.text
    served_ca = certgen.load_pem_chain(r.text)
    assert len(served_ca) == 1, r.text
    with open(node.ca) as f:
        assert certgen.fingerprint(served_ca[0]) == certgen.fingerprint(f.read())
    # It is the CA that issued what the port serves: trusting the
    # downloaded file alone is enough to reach the page.
    d = tempfile.mkdtemp(prefix="moat-uit-", dir="/tmp")
    try:
        r2 = cm_get(node, "/", verify=write(d, "ca.pem", r.text))
        assert r2.status_code == 200
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_page_served_with_csp(node):
    wait_cm(node)
    for path in ("/", "/index.html"):
        r = cm_get(node, path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers.get("Content-Type", "").startswith("text/html"), \
            r.headers
        csp = r.headers.get("Content-Security-Policy")
        assert csp, "%s served without a Content-Security-Policy" % path
        directives = {}
        for part in csp.split(";"):
            words = part.split()
            if words:
                directives[words[0].lower()] = [w.lower() for w in words[1:]]
        script = directives.get("script-src", directives.get("default-src"))
        assert script is not None, "CSP without script-src or default-src: " \
            + csp
        assert "'self'" in script, csp
        for bad in ("*", "'unsafe-inline'", "'unsafe-eval'", "http:",
                    "https:", "data:"):
            assert bad not in script, "CSP lets scripts from %s: %s" % (bad, csp)


def test_session_cookie_flags(node):
    wait_cm(node)
    assert cm_get(node, "/ui/session").status_code == 401
    assert cm_get(node, "/v1/cluster").status_code == 401
    r = _signin(node)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["email"] == node.email and body["role"] == "admin", body
    assert body.get("csrf_token"), body
    assert body.get("idle_timeout") == 900, body
    cookies = [c for c in _set_cookies(r) if c.startswith("moat_session=")]
    assert len(cookies) == 1, _set_cookies(r)
    parts = [p.strip() for p in cookies[0].split(";")]
    value = parts[0].split("=", 1)[1]
    attrs = {p.split("=", 1)[0].lower(): (p.split("=", 1) + [""])[1]
             for p in parts[1:]}
    assert "httponly" in attrs, cookies[0]
    assert "secure" in attrs, cookies[0]
    assert attrs.get("samesite", "").lower() == "strict", cookies[0]
    assert attrs.get("path") == "/", cookies[0]
    assert len(value) >= 22, "a session id that short can be guessed: %r" \
        % value
    r = cm_get(node, "/ui/session", cookie=value)
    assert r.status_code == 200 and r.json()["email"] == node.email, r.text
    r = cm_get(node, "/v1/cluster", cookie=value)
    assert r.status_code == 200 and r.json()["name"] == node.fqdn, r.text


def test_failed_signin_back_off(node):
    wait_cm(node)
    for i in range(5):
        r = _signin(node, password="wrong-password-%d" % i)
        assert_error(r, 401, "unauthorized")
    r = _signin(node)
    assert_error(r, 429, "too_many_failed_logins")
    assert int(r.headers.get("Retry-After", "0")) >= 1, r.headers


# -- in the browser ------------------------------------------------------------

def test_signin_wrong_then_right(ui, node):
    wait_cm(node)
    r = ui.run("signin", node, wrong_password="not-" + node.password)
    assert "unauthorized" in r["signin_error"]
    c = r["cookie"]
    assert c and c["httpOnly"] and c["secure"] and c["sameSite"] == "Strict", c
    s = cm_get(node, "/ui/session", cookie=c["value"])
    assert s.status_code == 200 and s.json()["email"] == node.email, s.text


def test_certificate_signin(ui, node, tmpdir_short):
    """A browser holding a client certificate signs in with the button,
    as the certificate user with its subject; one without gets refused."""
    import certgen
    wait_cm(node)
    ca = certgen.make_ca("UI clients CA")
    leaf = certgen.make_leaf(ca, cn="ui-operator")
    r = node.https("PUT", "/v1/cluster/update_cert",
                   {"name": "mtls_trusted_ca", "certificate": ca.cert_pem})
    assert r.status_code == 200, r.text
    r = node.https("PUT", "/v1/cluster",
                   {"mtls_certificate_authentication": True})
    assert r.status_code == 200, r.text
    r = node.https("POST", "/v1/users", {
        "email": "ui-operator@example.com", "role": "admin",
        "auth_method": "certificate",
        "certificate_subject_line": "CN=ui-operator, O=moat tests"})
    assert r.status_code == 200, r.text
    got = ui.run("cert_signin", node, cert_email="ui-operator@example.com",
                 node_ca=node.ca,
                 cert_file=write(tmpdir_short, "op.crt", leaf.cert_pem),
                 key_file=write(tmpdir_short, "op.key", leaf.key_pem))
    assert "ui-operator@example.com" in got["whoami"]
    assert "unauthorized" in got["refusal"]
    s = cm_get(node, "/ui/session", cookie=got["cookie"]["value"])
    # The session is tied to the certificate: a connection without it
    # does not carry it on.
    assert_error(s, 401, "unauthorized")


def test_signout(ui, node):
    wait_cm(node)
    r = ui.run("signout", node)
    # The server forgot the session, not only the page.
    assert_error(cm_get(node, "/ui/session", cookie=r["cookie"]["value"]),
                 401, "unauthorized")


def test_idle_timeout(ui, make_node):
    node = wait_cm(make_node(extra_args=["--ui-idle-timeout", "3"]))
    r = ui.run("idle", node, idle_timeout=3, timeout=90)
    assert_error(cm_get(node, "/ui/session", cookie=r["cookie"]["value"]),
                 401, "unauthorized")


def test_replace_cm_key_mismatch(ui, node, test_ca, tmpdir_short):
    wait_cm(node)
    leaf = good_cm_leaf(node, test_ca)
    before = node.snapshot()
    served = served_fingerprint(node.addr, node.cm_port)
    assert served == before["fingerprints"]["cm"]
    r = ui.run("replace_mismatch", node, certs=cert_infos(node),
               cert_file=write(tmpdir_short, "cm.pem", leaf.cert_pem),
               key_file=write(tmpdir_short, "other-key.pem",
                              certgen.key_to_pem(certgen.make_key())))
    assert "key_values_mismatch" in r["error"]
    assert served_fingerprint(node.addr, node.cm_port) == served
    assert node.snapshot() == before


def test_replace_cm_good_pair(ui, node, test_ca, tmpdir_short):
    wait_cm(node)
    leaf = good_cm_leaf(node, test_ca)
    old = served_fingerprint(node.addr, node.cm_port)
    api_before = node.served_fp()
    test_ca_file = write(tmpdir_short, "test-ca.pem", test_ca.cert_pem)
    r = ui.run("replace_good", node, trust=[node.ca, test_ca_file],
               old_fingerprint=old, new_fingerprint=leaf.fingerprint,
               new_issuer=TEST_CA_CN,
               cert_file=write(tmpdir_short, "cm.pem", leaf.cert_pem),
               key_file=write(tmpdir_short, "cm-key.pem", leaf.key_pem))
    # The next handshake on the cm port gets the new certificate; the API
    # port keeps its own.
    assert served_fingerprint(node.addr, node.cm_port) == leaf.fingerprint
    assert node.fingerprints()["cm"] == leaf.fingerprint
    assert node.served_fp() == api_before
    # The browser's session, on a fresh connection that trusts only the
    # new issuer.
    s = cm_get(node, "/ui/session", cookie=r["cookie"]["value"],
               verify=test_ca_file)
    assert s.status_code == 200 and s.json()["email"] == node.email, s.text


def test_overview_shows_expiry_alert(ui, node, test_ca):
    """An operator's proxy certificate 10 days from expiry: the overview
    says which alert is on, which certificate, and how long it has."""
    wait_cm(node)
    leaf = certgen.make_leaf(test_ca, sans=certgen.service_sans(
        node.fqdn, ips=(node.addr,)), days=10)
    r = node.sock("PUT", "/v1/cluster/update_cert", {
        "name": "proxy", "certificate": leaf.cert_pem, "key": leaf.key_pem})
    assert r.status_code == 200, r.text
    r = ui.run("overview_alert", node, alert="cluster_certs_about_to_expire",
               cert="proxy")
    assert "cluster_certs_about_to_expire" in r["said"], r
    assert "45 days" in r["said"] and "left" in r["said"], r
    assert r["alert_items"] == 1, r


def test_policy_min_control_tls13(ui, node):
    wait_cm(node)
    ctx = tls_client_context(cafile=node.ca,
                             max_version=ssl.TLSVersion.TLSv1_2)
    held = KeepAlive(node.addr, node.port, ctx, node.addr, auth=node.creds)
    try:
        assert held.tls_version == "TLSv1.2"
        assert held.request("GET", "/v1/cluster").status_code == 200
        r = ui.run("policy_tls13", node, min_would_close=1)
        assert r["would_close_total"] >= 1
        got = node.sock("GET", "/v1/cluster").json()
        assert got["min_control_TLS_version"] == "1.3", got
        for port in (node.port, node.cm_port):
            assert tls12_refused(node.addr, port, node.fqdn), \
                "port %d still accepts TLS 1.2" % port
            assert served_cert_der(node.addr, port, node.fqdn,
                                   min_version=ssl.TLSVersion.TLSv1_3)
        with pytest.raises((OSError, http.client.HTTPException)):
            r2 = held.request("GET", "/v1/cluster")
            raise AssertionError("the TLS 1.2 session still works: %s" % r2)
    finally:
        held.close()


def _runnable(command, node, bdb):
    """The page's redis-cli command, made runnable here: the CA path it
    leaves to the reader becomes the node's certs/ca.pem, and a host name
    no DNS knows (redis-<port>.<fqdn>) is reached at the address the API
    gives for it, still naming it in SNI."""
    argv = shlex.split(command)
    assert argv and argv[0] == "redis-cli", command
    assert "--tls" in argv, "no --tls in %r" % command
    out, i, host = [], 1, None
    ca_given = False
    while i < len(argv):
        w = argv[i]
        if w == "--cacert" and i + 1 < len(argv):
            out += [w, node.ca]
            ca_given = True
            i += 2
            continue
        if w.startswith("--cacert="):
            out.append("--cacert=" + node.ca)
            ca_given = True
        elif w == "-h" and i + 1 < len(argv):
            host = argv[i + 1]
            out += [w, host]
            i += 2
            continue
        else:
            out.append(w)
        i += 1
    assert ca_given, "the command does not say which CA to trust: %r" % command
    assert host, "the command names no host: %r" % command
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        ep = bdb["endpoints"][0]
        assert host == ep["dns_name"], (host, ep)
        out[out.index(host)] = ep["addr"][0]
        if "--sni" not in out:
            out += ["--sni", host]
    return ["redis-cli"] + out


def test_db_create_tls_from_page(ui, db_node):
    node = wait_cm(db_node)
    port = free_db_port(node.addr)
    name = "ui-db-%d" % port
    r = ui.run("db_create", node, db_name=name, db_port=port)
    bdb = wait_bdb_active(node, r["uid"])
    assert (bdb["name"], bdb["port"], bdb["tls_mode"]) == \
        (name, port, "enabled"), bdb
    argv = _runnable(r["command"], node, bdb)
    p = subprocess.run(argv + ["PING"], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    assert p.stdout.strip() == "PONG", "%s\n-> %r %r" % (argv, p.stdout,
                                                         p.stderr)


def test_db_viewer(ui, db_node):
    node = wait_cm(db_node)
    viewer = {"email": "viewer@example.com", "password": "Viewer-passw0rd",
              "role": "db_viewer"}
    u = node.sock("POST", "/v1/users", viewer)
    assert u.status_code == 200, u.text
    bdb = moatlib.make_bdb(node, tls=False)
    before = node.snapshot()
    r = ui.run("viewer", node, email=viewer["email"],
               password=viewer["password"], bdb_uid=bdb["uid"],
               certs={n: i["fingerprint_sha256"]
                      for n, i in cert_infos(node).items()})
    for what in ("forged", "rotate", "delete"):
        got = r[what]
        assert got["status"] == 403 and \
            got["body"].get("error_code") == "forbidden", (what, got)
    assert node.snapshot() == before
    assert node.sock("GET", "/v1/bdbs/%d" % bdb["uid"]).status_code == 200


def test_csrf_token_required(ui, node):
    wait_cm(node)
    without = {"email": "csrf-without@example.com",
               "password": "Csrf-passw0rd", "role": "db_viewer"}
    with_ = {"email": "csrf-with@example.com", "password": "Csrf-passw0rd",
             "role": "db_viewer"}
    before = node.snapshot()
    r = ui.run("csrf", node, user_without=without, user_with=with_)
    for what in ("put_without", "put_wrong", "user_without",
                 "signout_without"):
        got = r[what]
        assert got["status"] == 403 and \
            got["body"].get("error_code") == "csrf_token_invalid", (what, got)
    assert r["session_after"]["status"] == 200, r["session_after"]
    assert r["user_with"]["status"] == 200, r["user_with"]
    assert node.snapshot() == before
    emails = [x["email"] for x in node.sock("GET", "/v1/users").json()]
    assert without["email"] not in emails
    assert with_["email"] in emails
