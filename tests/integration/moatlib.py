"""Helpers to run real moatd/moatadm processes and talk to them.

Used by conftest.py (fixtures) and imported directly by the test modules.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import requests
import urllib3

import certgen

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

# requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's
# verify= and sends loopback traffic to *_proxy: neither may apply here.
for _v in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
           "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_v, None)

BUILD = os.environ.get("MOAT_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
MOATD = os.path.join(BUILD, "moatd")
# Latency bounds hold for the optimized build; the sanitizer build
# (`make SANITIZE=1 test`, build-asan) runs every instruction several
# times slower, so its bounds are scaled (MOAT_TIME_SCALE overrides).
TIME_SCALE = float(os.environ.get("MOAT_TIME_SCALE") or
                   (4 if "asan" in os.path.basename(os.path.normpath(BUILD))
                    else 1))
MOATADM = os.path.join(BUILD, "moatadm")
# moatd's --data-path for every node a test starts (empty: moatd's
# default); the Makefile runs the data path's tests once more on the
# other path.
DATA_PATH = os.environ.get("MOAT_DATA_PATH", "")

FQDN = "cluster.moat.test"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Adm1n-password-0k"  # 17 characters
CERT_NAMES = ("api", "cm", "proxy", "syncer", "metrics_exporter")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FP_RE = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")

# Every moatd this process started and has not stopped yet (pid -> Node),
# so that a session finalizer can stop leftovers by PID.
LIVE = {}


def binaries_missing():
    missing = [p for p in (MOATD, MOATADM) if not os.access(p, os.X_OK)]
    return missing


# `make test` runs two pytest processes (xdist).  A port from the kernel
# (bind to 0) is an ephemeral one, which the other process's outgoing
# connections may take before moatd binds it; so ports come from below the
# ephemeral range (32768), from a slice of its own for each process, and
# above the databases' 10000-19999.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_SLICE = 6000
_BASE = 20000 + _SLICE * (int(_WORKER[2:]) % 2 if _WORKER[2:].isdigit()
                          else 0)
_next_port = [_BASE + os.getpid() % _SLICE]


def free_port(addr="127.0.0.1"):
    """A TCP port of this process's slice that is free on addr now."""
    for _ in range(_SLICE):
        port = _next_port[0]
        _next_port[0] = _BASE + (port - _BASE + 1) % _SLICE
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port from %d to %d" % (_BASE,
                                                        _BASE + _SLICE - 1))


def port_free_on(addr, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
        except OSError:
            return False
    return True


def stop_process(p, timeout=5.0):
    """SIGTERM p by its PID, SIGKILL if it is still there after timeout;
    waits for the exit.  True when SIGKILL was needed."""
    if p.poll() is not None:
        return False
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout)
        return True


def short_tmpdir(prefix="moat-"):
    # Unix socket paths are limited to 108 bytes: keep data dirs short
    # instead of using pytest's long tmp_path names.
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def non_loopback_ipv4():
    """A local IPv4 address outside 127/8 that moatd could bind, or None."""
    candidates = []
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"],
                             capture_output=True, text=True, timeout=5).stdout
        candidates = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    except (OSError, subprocess.SubprocessError):
        pass
    if not candidates:
        try:
            out = subprocess.run(["hostname", "-I"], capture_output=True,
                                 text=True, timeout=5).stdout
            candidates = out.split()
        except (OSError, subprocess.SubprocessError):
            pass
    for ip in candidates:
        if ip.startswith("127.") or ":" in ip:
            continue
        try:
            with socket.socket() as s:
                s.bind((ip, 0))
        except OSError:
            continue
        return ip
    return None


class Resp:
    """Minimal response (same attribute names as requests.Response)."""

    def __init__(self, status, headers, body):
        self.status_code = status
        self.status = status
        self.headers = headers
        self.content = body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)

    def __repr__(self):
        return "<Resp %d %s>" % (self.status_code, self.text[:300])


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def encode_body(body):
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def unix_request(path, method, url, body=None, headers=None, timeout=30):
    data = encode_body(body)
    hdrs = {"Host": "localhost"}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    conn = UnixHTTPConnection(path, timeout=timeout)
    try:
        try:
            conn.request(method, url, body=data, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (e.g. 413) and close before reading a
            # large body; the answer is still there to read.
            pass
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()


def basic_auth_header(user, password):
    tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return "Basic " + tok


def tls_client_context(cafile=None, min_version=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def served_cert_der(addr, port, servername=FQDN, timeout=10, **ctxargs):
    """DER of the certificate the TLS port presents on a fresh handshake."""
    ctx = tls_client_context(**ctxargs)
    with socket.create_connection((addr, port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=servername) as t:
            return t.getpeercert(binary_form=True)


def served_fingerprint(addr, port, servername=FQDN):
    return certgen.fingerprint_der(served_cert_der(addr, port, servername))


class KeepAlive:
    """One TLS connection reused for many HTTP/1.1 requests.

    Wraps http.client.HTTPSConnection with auto_open disabled: if the server
    closes the connection, the next request raises instead of silently
    reconnecting, so "the same connection" can be asserted.
    """

    def __init__(self, addr, port, ctx, server_hostname, auth=None, timeout=10):
        self.conn = http.client.HTTPSConnection(
            addr, port, context=ctx, timeout=timeout)
        # http.client passes the host as server_hostname; override for SNI.
        self.server_hostname = server_hostname
        raw = socket.create_connection((addr, port), timeout=timeout)
        self.conn.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        self.conn.auto_open = 0
        self.auth = auth
        self.addr = addr
        self.requests = 0

    @property
    def tls_version(self):
        return self.conn.sock.version() if self.conn.sock else None

    @property
    def peer_der(self):
        return self.conn.sock.getpeercert(binary_form=True)

    def request(self, method, path, body=None):
        hdrs = {"Host": self.addr, "Connection": "keep-alive"}
        if self.auth:
            hdrs["Authorization"] = basic_auth_header(*self.auth)
        data = encode_body(body)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=hdrs)
        r = self.conn.getresponse()
        out = Resp(r.status, r.headers, r.read())
        self.requests += 1
        return out

    @property
    def open(self):
        return self.conn.sock is not None

    def close(self):
        self.conn.close()


def openssl_s_client(addr, port, *extra, servername=FQDN, timeout=20):
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (addr, port)]
    if servername:
        cmd += ["-servername", servername]
    cmd += list(extra)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def openssl_fingerprint(pem_text):
    """`openssl x509 -noout -fingerprint -sha256` of the first cert in text."""
    p = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                       input=pem_text, capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().split("=", 1)[1]


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Node:
    """One moatd process on loopback with its own data dir."""

    def __init__(self, addr="127.0.0.1", fqdn=FQDN, api_port=None,
                 bootstrap_token=None, extra_args=(), data_dir=None):
        self.addr = addr
        self.fqdn = fqdn
        self.tmp = short_tmpdir()
        self.data_dir = data_dir or os.path.join(self.tmp, "d")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.tmp, "moatd.log")
        self.port = api_port or free_port(addr)
        self.cm_port = free_port(addr)
        self.metrics_port = free_port(addr)
        self.bootstrap_token = bootstrap_token
        self.extra_args = list(extra_args)
        self.email = ADMIN_EMAIL
        self.password = ADMIN_PASSWORD
        self.proc = None
        self.died = None  # (returncode) if moatd exited while we expected it up
        self.needed_sigkill = False  # SIGTERM did not stop it within 5 s
        self.bad_exit = None  # non-zero exit status after SIGTERM
        self._session = None

    # -- paths -----------------------------------------------------------
    @property
    def sock_path(self):
        return os.path.join(self.data_dir, "moatd.sock")

    @property
    def certs_dir(self):
        return os.path.join(self.data_dir, "certs")

    @property
    def ca(self):
        return os.path.join(self.certs_dir, "ca.pem")

    def cert_file(self, name):
        return os.path.join(self.certs_dir, "%s_cert.pem" % name)

    def key_file(self, name):
        return os.path.join(self.certs_dir, "%s_key.pem" % name)

    @property
    def base(self):
        return "https://%s:%d" % (self.addr, self.port)

    def url(self, path):
        return self.base + path

    @property
    def creds(self):
        return (self.email, self.password)

    @property
    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- process ---------------------------------------------------------
    def argv(self):
        a = [MOATD, "--data-dir", self.data_dir, "--addr", self.addr,
             "--api-port", str(self.port), "--cm-port", str(self.cm_port),
             "--metrics-port", str(self.metrics_port)]
        if self.bootstrap_token:
            # A file, never the command line (ps would show it).
            path = os.path.join(self.tmp, "bootstrap-token")
            with open(path, "w") as f:
                f.write(self.bootstrap_token + "\n")
            os.chmod(path, 0o600)
            a += ["--bootstrap-token-file", path]
        # `make test` runs the data path's tests on both paths.
        if DATA_PATH:
            a += ["--data-path", DATA_PATH]
        return a + self.extra_args

    def start(self):
        assert self.proc is None
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf,
                                         start_new_session=True)
        finally:
            logf.close()
        LIVE[self.proc.pid] = self
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                LIVE.pop(self.proc.pid, None)
                self.proc = None
                raise RuntimeError("moatd exited with %s during startup:\n%s"
                                   % (rc, self.log))
            if os.path.exists(self.sock_path) and self._tcp_up():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "moatd not ready after %.0fs (port %d, socket %s):\n%s"
                    % (START_TIMEOUT, self.port, self.sock_path, self.log))
            time.sleep(0.05)

    def _tcp_up(self):
        try:
            with socket.create_connection((self.addr, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self):
        """SIGTERM by PID, SIGKILL after 5 s.  Returns the exit status."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is not None and self.died is None:
            self.died = p.returncode
        elif stop_process(p, STOP_TIMEOUT):
            self.needed_sigkill = True
        LIVE.pop(p.pid, None)
        self.proc = None
        if not self.needed_sigkill and p.returncode != 0 and \
                self.died is None:
            self.bad_exit = p.returncode
        if self._session is not None:
            self._session.close()
            self._session = None
        return p.returncode

    def restart(self):
        rc = self.stop()
        self.start()
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- clients ---------------------------------------------------------
    def sock(self, method, path, body=None, headers=None, timeout=60):
        """HTTP over the control socket (local admin, no auth)."""
        return unix_request(self.sock_path, method, path, body, headers,
                            timeout)

    @property
    def session(self):
        """requests.Session verifying against ca.pem, authenticated as admin."""
        if self._session is None:
            s = requests.Session()
            s.trust_env = False
            s.verify = self.ca
            s.auth = self.creds
            self._session = s
        return self._session

    def https(self, method, path, body=None, auth="admin", verify=None,
              headers=None, timeout=60):
        """One HTTPS request.  body: dict/list -> JSON, str/bytes -> raw."""
        if auth == "admin":
            auth = self.creds
        hdrs = dict(headers or {})
        data = encode_body(body)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        return requests.request(method, self.url(path), data=data,
                                headers=hdrs, auth=auth,
                                verify=self.ca if verify is None else verify,
                                timeout=timeout)

    def adm(self, *words, data_dir=None, timeout=60, input=None, env=None):
        """moatadm with these words; env adds to the environment (a
        password goes there or to input, never on the command line)."""
        full = dict(os.environ)
        full.pop("MOAT_PASSWORD", None)
        full.update(env or {})
        return subprocess.run(
            [MOATADM, "--data-dir", data_dir or self.data_dir] + list(words),
            capture_output=True, text=True, timeout=timeout, env=full,
            stdin=subprocess.DEVNULL if input is None else None, input=input)

    def create_cluster(self, via="sock", fqdn=None, email=None, password=None):
        body = create_body(fqdn or self.fqdn, email or self.email,
                           password or self.password)
        if via == "sock":
            r = self.sock("POST", "/v1/bootstrap/create_cluster", body)
        else:
            r = self.https("POST", "/v1/bootstrap/create_cluster", body,
                           auth=None, verify=False)
        assert r.status_code == 200, "create_cluster: %s %s\n%s" % (
            r.status_code, r.text, self.log[-3000:])
        return r

    # -- observations ----------------------------------------------------
    def served_der(self, servername=None):
        return served_cert_der(self.addr, self.port,
                               servername or self.fqdn)

    def served_fp(self, servername=None):
        return certgen.fingerprint_der(self.served_der(servername))

    def cert_info(self, name):
        """The certificate's description, without expires_in_seconds,
        which changes every second and would make equal states differ."""
        r = self.sock("GET", "/v1/cluster/certificates/%s" % name)
        assert r.status_code == 200, r
        info = r.json()
        assert isinstance(info.pop("expires_in_seconds"), int)
        return info

    def fingerprints(self):
        return {n: self.cert_info(n)["fingerprint_sha256"] for n in CERT_NAMES}

    def snapshot(self):
        """What must not change when a request is refused."""
        cluster = self.sock("GET", "/v1/cluster")
        assert cluster.status_code == 200, cluster
        files = {}
        for n in CERT_NAMES:
            for p in (self.cert_file(n), self.key_file(n)):
                files[os.path.basename(p)] = (sha256_file(p)
                                              if os.path.exists(p) else None)
        return {
            "fingerprints": self.fingerprints(),
            "served_api": self.served_fp(),
            "policy": cluster.json(),
            "files": files,
        }


def create_body(fqdn, email, password):
    """The RS create_cluster body."""
    return {"action": "create_cluster",
            "cluster": {"name": fqdn},
            "credentials": {"username": email, "password": password}}


def write_pair(where, leaf, name):
    """(cert file, key file) of leaf (a certgen.Issued) in where (a Node:
    its temp dir; or a directory), for a client that presents it
    (requests' cert=, load_cert_chain)."""
    d = getattr(where, "tmp", where)
    cert = os.path.join(d, name + ".crt")
    key = os.path.join(d, name + ".key")
    with open(cert, "w") as f:
        f.write(leaf.cert_pem)
    with open(key, "w") as f:
        f.write(leaf.key_pem)
    os.chmod(key, 0o600)
    return cert, key


def assert_error(r, status, code):
    """An error response per api.md: status, error_code, description."""
    assert r.status_code == status, "want %d %s, got %d: %s" % (
        status, code, r.status_code, r.text[:2000])
    try:
        body = r.json()
    except ValueError:
        raise AssertionError("error body is not JSON: %r" % r.text[:2000])
    assert body.get("error_code") == code, "want %s, got %r" % (code, body)
    d = body.get("description")
    assert isinstance(d, str) and d.strip(), "empty description: %r" % body
    assert_no_private_key(r.text)
    return body


# A PEM private key block with content, raw or JSON-escaped ("\n").  The
# bare words "PRIVATE KEY" are allowed: a description may name the PEM label
# it expected ("expected -----BEGIN PRIVATE KEY-----") without leaking a key.
PEM_KEY_RE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:\s|\\n|\\r)*[A-Za-z0-9+/=]{16}")


def assert_no_private_key(*texts, keys=()):
    """No private key material in texts: no PEM key block with content, and
    no piece of the given keys' base64 bodies."""
    for t in texts:
        if isinstance(t, bytes):
            t = t.decode("utf-8", "replace")
        m = PEM_KEY_RE.search(t)
        assert m is None, "private key material leaked: ...%s..." % (
            t[max(0, m.start() - 200):m.end() + 100])
        for k in keys:
            frag = key_body_fragment(k)
            assert frag not in t, "key fragment %s leaked: %s" % (frag, t[:500])


def key_body_fragment(key_pem):
    """A 40-char piece of a key's base64 body, to grep logs/responses for."""
    lines = [l for l in key_pem.splitlines() if l and not l.startswith("-----")]
    return lines[1][:40] if len(lines) > 1 else lines[0][:40]


# -- databases (bdbs) ---------------------------------------------------------
#
# Helpers for the database tests (test_bdbs.py, test_proxy*.py).  Nothing
# above depends on them.

# moatd's database ports are 10000-19999; each test process (xdist) picks
# from its own half, so that two never race for one.
DB_PORT_MIN = 10000 + 5000 * (_BASE != 20000)
DB_PORT_MAX = DB_PORT_MIN + 4999
BDB_ACTIVE_TIMEOUT = 10.0
_DB_PORTS_GIVEN = set()

# Every redis-server pid a test saw (pid -> starttime from /proc), so that a
# session finalizer can make sure none outlives its moatd (checked by PID).
REDIS_PIDS = {}


def free_db_port(addr="127.0.0.1"):
    """A port in 10000-19999 that was bindable on addr a moment ago and that
    this process has not handed out before (parallel runs pick at random)."""
    import random
    for _ in range(2000):
        p = random.randint(DB_PORT_MIN, DB_PORT_MAX)
        if p in _DB_PORTS_GIVEN:
            continue
        if port_free_on(addr, p) and port_free_on("0.0.0.0", p):
            _DB_PORTS_GIVEN.add(p)
            return p
    raise RuntimeError("no free port in %d-%d" % (DB_PORT_MIN, DB_PORT_MAX))


def proc_stat(pid):
    """(comm, state, starttime) of a pid from /proc, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, rest[0], int(rest[19])


def pid_running(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[1] != "Z"


def pid_gone(pid):
    """True if pid no longer exists at all (exited and reaped)."""
    return proc_stat(pid) is None


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it returns something true; return that or None."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def remember_redis_pid(pid):
    st = proc_stat(pid)
    if st is not None and st[0].startswith("redis-server"):
        REDIS_PIDS[pid] = st[2]


def kill_redis_leftovers():
    """SIGKILL, by PID, every remembered redis-server that still runs (same
    pid and start time, so a recycled pid is never hit).  Returns the list."""
    left = []
    for pid, start in list(REDIS_PIDS.items()):
        st = proc_stat(pid)
        if st is None or st[1] == "Z" or st[2] != start or \
                not st[0].startswith("redis-server"):
            REDIS_PIDS.pop(pid, None)
            continue
        left.append(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        REDIS_PIDS.pop(pid, None)
    return left


def bdb_dir(node, uid):
    return os.path.join(node.data_dir, "dbs", str(uid))


def redis_pid(node, uid):
    """The pid in <data-dir>/dbs/<uid>/redis.pid, or None."""
    try:
        with open(os.path.join(bdb_dir(node, uid), "redis.pid")) as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    if pid > 0:
        remember_redis_pid(pid)
    return pid or None


def bdb_create(node, body, expect=200):
    """POST /v1/bdbs through the control socket; returns the object."""
    r = node.sock("POST", "/v1/bdbs", body)
    assert r.status_code == expect, "create %r: %s %s" % (
        {k: v for k, v in body.items() if k != "authentication_ssl_client_certs"},
        r.status_code, r.text[:2000])
    return r.json()


def bdb_get(node, uid):
    r = node.sock("GET", "/v1/bdbs/%d" % uid)
    assert r.status_code == 200, r
    return r.json()


def wait_bdb_active(node, uid, timeout=BDB_ACTIVE_TIMEOUT):
    """Poll GET /v1/bdbs/<uid> until status is active; return the object."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        r = node.sock("GET", "/v1/bdbs/%d" % uid)
        if r.status_code == 200:
            last = r.json()
            if last.get("status") == "active":
                redis_pid(node, uid)
                return last
        else:
            last = r
        if time.monotonic() > deadline:
            raise AssertionError("database %d not active after %.0fs: %r"
                                 % (uid, timeout, last))
        time.sleep(0.05)


def make_bdb(node, tls=True, **fields):
    """Create a database on a free port and wait until it is active."""
    body = {"name": fields.pop("name", "db%d" % free_db_port()),
            "port": fields.pop("port", None) or free_db_port(node.addr),
            "tls_mode": "enabled" if tls else "disabled"}
    body.update(fields)
    obj = bdb_create(node, body)
    return wait_bdb_active(node, obj["uid"])


def dns_name(node, port):
    return "redis-%d.%s" % (port, node.fqdn)


def redis_client(node, port, tls=True, ca=None, **kw):
    """redis-py client to a database endpoint (one connection, no retry)."""
    import redis
    args = dict(host=node.addr, port=port, socket_timeout=10,
                socket_connect_timeout=10, single_connection_client=True)
    if tls:
        args.update(ssl=True, ssl_ca_certs=ca or node.ca)
    args.update(kw)
    return redis.Redis(**args)


def redis_cli(*args, timeout=20, input=None):
    return subprocess.run(["redis-cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL if input is None else None,
                          input=input)


def resp_ping(sock, timeout=5):
    """Send PING on a (TLS) socket and return what came back (b"" on EOF)."""
    sock.settimeout(timeout)
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    return sock.recv(64)


def tls_data_connect(node, port, ctx=None, servername=None, timeout=10):
    """A TLS socket to a database endpoint (handshake done)."""
    ctx = ctx or tls_client_context(cafile=node.ca)
    raw = socket.create_connection((node.addr, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=servername or
                               dns_name(node, port))
    except BaseException:
        raw.close()
        raise


# -- control plane: etcd clusters, multi-node clusters, raw clients -----------
#
# Helpers for test_control_plane.py, test_store_move.py and test_roles.py.
# Nothing above depends on them.

class EtcdCluster:
    """n etcd members, member i on 127.0.0.<i+1> (client and peer URLs), each
    with its own data dir under one temp dir.  Every member is stopped by
    PID in close() (SIGTERM, SIGKILL after 10 s)."""

    def __init__(self, n=3):
        self.dir = short_tmpdir("moat-etcd-")
        self.addrs = ["127.0.0.%d" % (i + 1) for i in range(n)]
        self.cport = [free_port(a) for a in self.addrs]
        self.pport = [free_port(a) for a in self.addrs]
        self.procs = [None] * n
        self.initial = ",".join("m%d=http://%s:%d" % (i, a, self.pport[i])
                                for i, a in enumerate(self.addrs))
        self.url = "etcd://" + ",".join(
            "%s:%d" % (a, self.cport[i]) for i, a in enumerate(self.addrs))

    def __len__(self):
        return len(self.addrs)

    def client_url(self, i):
        return "http://%s:%d" % (self.addrs[i], self.cport[i])

    def start(self, i):
        assert self.procs[i] is None
        a = self.addrs[i]
        log = open(os.path.join(self.dir, "m%d.log" % i), "ab")
        try:
            self.procs[i] = subprocess.Popen(
                ["etcd", "--name", "m%d" % i,
                 "--data-dir", os.path.join(self.dir, "m%d" % i),
                 "--listen-client-urls", "http://%s:%d" % (a, self.cport[i]),
                 "--advertise-client-urls",
                 "http://%s:%d" % (a, self.cport[i]),
                 "--listen-peer-urls", "http://%s:%d" % (a, self.pport[i]),
                 "--initial-advertise-peer-urls",
                 "http://%s:%d" % (a, self.pport[i]),
                 "--initial-cluster", self.initial,
                 # Ignored once the member has a data dir (restarts).
                 "--initial-cluster-state", "new",
                 "--initial-cluster-token", os.path.basename(self.dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()

    def start_all(self):
        for i in range(len(self)):
            if self.procs[i] is None:
                self.start(i)
        self.wait_healthy()

    def stop(self, i):
        p = self.procs[i]
        if p is None:
            return
        self.procs[i] = None
        stop_process(p, 10)

    def stop_all(self):
        for i in range(len(self)):
            self.stop(i)

    def close(self):
        self.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        out = []
        for i in range(len(self)):
            try:
                with open(os.path.join(self.dir, "m%d.log" % i),
                          errors="replace") as f:
                    out.append("== etcd m%d ==\n%s" % (i, f.read()[-2000:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def call(self, path, body, i=None, timeout=3):
        """POST to the JSON gateway of member i (or of the first that
        answers); returns the decoded answer or raises."""
        last = None
        for j in ([i] if i is not None else range(len(self))):
            if self.procs[j] is None:
                continue
            try:
                r = requests.post(self.client_url(j) + path, json=body,
                                  timeout=timeout)
                if r.status_code == 200:
                    return r.json()
                last = AssertionError("etcd %s: %d %s" % (path, r.status_code,
                                                          r.text[:300]))
            except requests.RequestException as ex:
                last = ex
        raise last or AssertionError("no etcd member running")

    def wait_healthy(self, timeout=30):
        """Until a write succeeds through every running member."""
        deadline = time.monotonic() + timeout
        key = base64.b64encode(b"/moat-test/health").decode()
        while True:
            try:
                for j in range(len(self)):
                    if self.procs[j] is not None:
                        self.call("/v3/kv/put", {"key": key, "value": key},
                                  i=j, timeout=2)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise AssertionError("etcd members did not form a "
                                         "cluster:\n" + self.logs())
                time.sleep(0.2)

    def key_count(self):
        """How many keys the store holds (all of them; a consistent read)."""
        j = self.call("/v3/kv/range", {"key": "AA==", "range_end": "AA==",
                                       "count_only": True})
        return int(j.get("count", 0))

    def lease_of_key_ending(self, suffix):
        """(lease id, granted TTL) of the lease holding a key whose last
        path component is `suffix`, or None.  (The key layout is moatd's;
        callers must cope with None.)"""
        try:
            leases = self.call("/v3/lease/leases", {}).get("leases") or []
            for le in leases:
                t = self.call("/v3/lease/timetolive",
                              {"ID": le["ID"], "keys": True})
                for k in t.get("keys") or []:
                    name = base64.b64decode(k).decode("utf-8", "replace")
                    if name.rstrip("/").rsplit("/", 1)[-1] == str(suffix):
                        return le["ID"], int(t.get("grantedTTL", 0))
        except Exception:
            return None
        return None

    def lease_ttl(self, lease_id):
        t = self.call("/v3/lease/timetolive", {"ID": lease_id})
        return int(t.get("TTL", -1))


def join_body(node, password=None):
    """The RS join_cluster body, joining through `node`."""
    return {"action": "join_cluster",
            "cluster": {"nodes": ["%s:%d" % (node.addr, node.port)]},
            "credentials": {"username": node.email,
                            "password": password or node.password}}


def make_cluster(make_node, store_url, count):
    """count nodes on 127.0.0.1..count sharing store_url: node 1 creates the
    cluster (uid 1), the others join through it (uid 2, 3, ...).  Every
    node gets `.uid`.  make_node is conftest's factory, which stops them."""
    first = make_node(addr="127.0.0.1", extra_args=["--store", store_url])
    first.uid = 1
    nodes = [first]
    for i in range(2, count + 1):
        n = make_node(addr="127.0.0.%d" % i, api_port=first.port, create=False)
        r = n.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
        assert r.status_code == 200, "join of node %d: %s %s" % (
            i, r.status_code, r.text[:2000])
        n.uid = r.json().get("node_uid", i)
        nodes.append(n)
    return nodes


def https_request(addr, port, method, path, body=None, auth=None,
                  source=None, cafile=None, servername=FQDN, timeout=30,
                  max_version=None, pair=None, authz=None):
    """One HTTPS request on a fresh connection, optionally from a chosen
    local source address (e.g. "127.0.0.23"), presenting the client
    certificate pair (cert file, key file), with credentials (auth) or a
    ready-made Authorization value (authz).  Returns a Resp."""
    ctx = tls_client_context(cafile=cafile, max_version=max_version)
    if pair:
        ctx.load_cert_chain(*pair)
    raw = socket.create_connection((addr, port), timeout=timeout,
                                   source_address=(source, 0) if source
                                   else None)
    conn = http.client.HTTPSConnection(addr, port, context=ctx,
                                       timeout=timeout)
    try:
        # wrap_socket takes raw's descriptor over: conn.close() closes it.
        conn.sock = ctx.wrap_socket(raw, server_hostname=servername)
        conn.auto_open = 0
        hdrs = {"Host": addr, "Connection": "close"}
        if auth:
            hdrs["Authorization"] = basic_auth_header(*auth)
        if authz:
            hdrs["Authorization"] = authz
        data = encode_body(body)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()
        raw.close()


def timed(fn, *args, **kw):
    """(seconds, result) of fn(*args, **kw)."""
    t0 = time.monotonic()
    out = fn(*args, **kw)
    return time.monotonic() - t0, out


def spawn(node):
    """Start node's moatd WITHOUT waiting for it to be ready (Node.start
    waits); registered like Node.start so that node.stop() and the
    fixtures' teardown stop it by PID.  Returns time.monotonic() taken just
    before the process was created."""
    assert node.proc is None
    logf = open(node.log_path, "ab")
    try:
        t0 = time.monotonic()
        node.proc = subprocess.Popen(node.argv(), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf,
                                     start_new_session=True)
    finally:
        logf.close()
    LIVE[node.proc.pid] = node
    return t0


def sock_many(node, requests_, threads=8, timeout=120):
    """Send [(method, path, body), ...] through node's control socket from
    `threads` parallel clients; returns the Resps in the same order."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=threads) as ex:
        futs = [ex.submit(node.sock, m, p, b, None, timeout)
                for m, p, b in requests_]
        return [f.result() for f in futs]


class LoadClient(threading.Thread):
    """One redis-py client on one TLS connection to a database, running
    commands without pause until stop is set: SET/GET pairs, or (batch)
    pipelines of batch_size commands.  Every exception is a failed command
    (kept in failures); a new socket under the client (a reconnect) is
    counted in sock_changes.  client_id, tls_version and peer (the
    served certificate's fingerprint) are read when it connects."""

    def __init__(self, n, port, cafile, idx, batch, stop, batch_size=50):
        import redis
        import certgen
        super().__init__(name="client-%d" % idx, daemon=True)
        self.idx, self.batch, self.stop = idx, batch, stop
        self.batch_size = batch_size
        self.r = redis.Redis(host=n.addr, port=port, ssl=True,
                             ssl_ca_certs=cafile or n.ca, socket_timeout=15,
                             socket_connect_timeout=10,
                             single_connection_client=True)
        # single_connection_client connected in the constructor.
        self.sock = self.r.connection._sock
        self.client_id = self.r.client_id()
        self.tls_version = self.sock.version()
        self.peer = certgen.fingerprint_der(
            self.sock.getpeercert(binary_form=True))
        self.commands = 0
        self.failures = []
        self.sock_changes = 0

    def one(self, i):
        key = "c%d:%d" % (self.idx, i % 100)
        val = "%d-%d" % (self.idx, i)
        if not self.batch:
            assert self.r.set(key, val) is True
            got = self.r.get(key)
            assert got == val.encode(), (key, got, val)
            return 2
        pipe = self.r.pipeline(transaction=False)
        for j in range(self.batch_size // 2):
            pipe.set("%s:%d" % (key, j), "%s:%d" % (val, j))
            pipe.get("%s:%d" % (key, j))
        res = pipe.execute()
        want = []
        for j in range(self.batch_size // 2):
            want += [True, ("%s:%d" % (val, j)).encode()]
        assert res == want, (res[:6], want[:6])
        return self.batch_size // 2 * 2

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.commands += self.one(i)
            except Exception as e:  # every exception is a failed command
                self.failures.append("%d: %r" % (i, e))
                if len(self.failures) > 50:
                    return
            if self.r.connection._sock is not self.sock:
                self.sock_changes += 1
                self.sock = self.r.connection._sock
            i += 1
