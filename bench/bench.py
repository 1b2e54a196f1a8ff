#!/usr/bin/python3
"""bench/bench.py — moat's TLS proxy side by side with Redis's own TLS port,
stunnel and haproxy, on loopback, every target in front of the same kind of
shard (a redis-server on a unix socket only).  Run it through bench/run.

Only the Python standard library; Debian's /usr/bin/python3.
"""

import argparse
import base64
import csv
import datetime
import http.client
import io
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
CLIENTS = 50

ALL_TARGETS = ["redis-plain", "redis-tls", "stunnel", "haproxy-1t",
               "haproxy", "moat", "moat-epoll", "moat-1w"]
# moat runs moatd's default data path (io_uring); moat-epoll the other
# one (--data-path epoll), so one run compares them.  moat-1w is moatd
# with --workers 1: how the worker count plays when the clients and the
# shard share the cores (not in the default run).
DEFAULT_TARGETS = ALL_TARGETS[:-1]
REFS = ["haproxy", "haproxy-1t", "redis-tls"]

MOAT_FQDN = "bench.moat.local"
MOAT_USER = "admin@moat.local"
MOAT_PASS = "benchpassword"


class Skip(Exception):
    """A target that cannot run here; the message says why."""


def oneline(text, most=300):
    return " ".join(text.split())[:most]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# processes: everything started is recorded and stopped by PID on exit

class Procs:
    def __init__(self):
        self.live = []          # (Popen, name)
        self.extra = set()      # PIDs of grandchildren (moatd's shard)

    def start(self, name, argv, logpath, env=None):
        f = open(logpath, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        f.close()
        p.logpath = logpath
        self.live.append((p, name))
        return p

    def stop(self, p, timeout=10):
        """SIGTERM one process by PID, wait, SIGKILL if it lingers."""
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.live = [(q, n) for q, n in self.live if q is not p]

    def stop_extra(self, procs):
        """Stop (pid, comm) pairs that are not our children, checking the
        comm so that a PID reused meanwhile is left alone."""
        procs = [pc for pc in procs if pid_comm(pc[0]) == pc[1]]
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        for pid, comm in procs:
            while pid_comm(pid) == comm and time.time() < deadline:
                time.sleep(0.05)
            if pid_comm(pid) == comm:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.extra.difference_update(procs)

    def stop_all(self):
        for p, _ in reversed(list(self.live)):
            self.stop(p)
        self.stop_extra(list(self.extra))


PROCS = Procs()


def pid_comm(pid):
    """comm of a live (not zombie) process, else None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    if st[st.rindex(")") + 2] in "ZX":
        return None
    return st[st.index("(") + 1:st.rindex(")")]


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    comm = st[st.index("(") + 1:st.rindex(")")]
    rest = st[st.rindex(")") + 2:].split()
    return comm, rest


def cpu_seconds(pid):
    """utime+stime of the whole process: every thread, exited ones too,
    not its children."""
    _, rest = proc_stat(pid)
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def log_tail(p, n=4):
    try:
        with open(p.logpath, errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
        return " | ".join(lines[-n:])
    except (OSError, AttributeError):
        return ""


def machine_busy():
    """Busy CPU seconds of the whole machine so far (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...; steal is time
    # this VM did not run, so it is not counted.
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK


def other_busy(seconds):
    """CPUs kept busy by everything else while we wait (we run nothing)."""
    b0, w0 = machine_busy(), time.time()
    time.sleep(seconds)
    return (machine_busy() - b0) / (time.time() - w0)


def wait_quiet(limit, most=0.25):
    """Wait up to limit seconds for the machine to be quiet; returns the
    last busy figure."""
    deadline = time.time() + limit
    while True:
        busy = other_busy(2.0)
        if busy <= most or time.time() >= deadline:
            return busy
        log("   machine busy (%.2f CPUs used by other processes); waiting"
            % busy)


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def descendants(pid):
    """PIDs of pid's descendants, with their comm."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            comm, rest = proc_stat(int(d))
        except (OSError, ValueError):
            continue
        kids.setdefault(int(rest[1]), []).append((int(d), comm))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------
# network helpers

_used_ports = set()


def free_port(lo=None, hi=None):
    """A TCP port nobody listens on; in [lo, hi] when given (moat's
    database ports are 10000-19999), else one the kernel picks."""
    for _ in range(1000):
        s = socket.socket()
        try:
            s.bind((HOST, random.randint(lo, hi) if lo else 0))
            port = s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise Skip("no free port in %s-%s" % (lo, hi))


def client_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    # The certificates name the cluster FQDN or localhost; the chain is
    # verified, the name is not (redis-benchmark does not check it either).
    ctx.check_hostname = False
    return ctx


def pinged_socket(port, ctx, timeout):
    """Connect, (TLS), PING, expect +PONG; the open socket."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        if ctx is not None:
            s = ctx.wrap_socket(s)
        s.sendall(b"PING\r\n")
        buf = b""
        while not buf.endswith(b"\r\n"):
            d = s.recv(64)
            if not d:
                break
            buf += d
        if buf != b"+PONG\r\n":
            raise OSError("unexpected reply %r" % buf)
        return s
    except BaseException:
        s.close()
        raise


def ping_once(port, ctx, timeout=2.0):
    """Connect, (TLS), PING, expect +PONG.  Returns (version, cipher)."""
    s = pinged_socket(port, ctx, timeout)
    try:
        if ctx is not None:
            return s.version(), s.cipher()[0]
        return "plaintext", "-"
    finally:
        s.close()


def wait_ready(port, ctx, proc, what, timeout=20.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Skip("%s exited with status %s: %s"
                       % (what, proc.returncode, log_tail(proc)))
        try:
            return ping_once(port, ctx)
        except (OSError, ssl.SSLError) as e:
            last = e
        time.sleep(0.1)
    raise Skip("%s did not answer PING on %s:%d: %s" % (what, HOST, port,
                                                          last))


def wait_unix_ping(path, proc, what, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Skip("%s exited with status %s: %s"
                       % (what, proc.returncode, log_tail(proc)))
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(1)
            s.connect(path)
            s.sendall(b"PING\r\n")
            if s.recv(16) == b"+PONG\r\n":
                s.close()
                return
            s.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise Skip("%s did not answer on %s" % (what, path))


def resp_call(path, *args):
    """One command to a redis-server on a unix socket; the reply's first
    line, or for an array reply its elements."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        msg = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            msg += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(msg)
        f = s.makefile("rb")
        line = f.readline().rstrip(b"\r\n").decode()
        if not line.startswith("*"):
            return line
        out = []
        for _ in range(int(line[1:])):
            n = int(f.readline()[1:])
            out.append(f.read(n + 2)[:-2].decode() if n >= 0 else None)
        return out
    finally:
        s.close()


def shard_unix_socket(pid):
    """The unix socket a redis-server shows in its title."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    for word in cmd.split():
        if word.startswith("unixsocket:"):
            return word[len("unixsocket:"):]
    return None


def tls_probe(port, ca):
    """What the target negotiates with OpenSSL's default client."""
    try:
        r = subprocess.run(["openssl", "s_client", "-brief", "-connect",
                            "%s:%d" % (HOST, port), "-CAfile", ca],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    info = {}
    for line in (r.stderr + r.stdout).splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k = k.strip()
        if k in ("Protocol version", "Ciphersuite", "Peer signature type",
                 "Signature type", "Server Temp Key", "Verification"):
            info[k] = v.strip()
    return info


def cert_key_type(pem):
    try:
        r = subprocess.run(["openssl", "x509", "-in", pem, "-noout",
                            "-text"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    alg, curve = "?", ""
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("Public Key Algorithm:"):
            alg = line.split(":", 1)[1].strip()
        elif line.startswith("NIST CURVE:") or line.startswith("ASN1 OID:"):
            curve = curve or line.split(":", 1)[1].strip()
        elif line.startswith("Public-Key:") and alg == "rsaEncryption":
            curve = line.split(":", 1)[1].strip()
    return ("%s %s" % (alg, curve)).strip()


# ---------------------------------------------------------------------------
# targets

def shard_conf(d, extra):
    """The same redis-server settings for every target; extra sets the
    listeners."""
    lines = [
        "daemonize no",
        "unixsocket %s/redis.sock" % d,
        "unixsocketperm 700",
        'save ""',
        "appendonly no",
        "dir %s" % d,
        "maxclients 30000",
        'logfile ""',
    ] + extra
    path = os.path.join(d, "redis.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Target:
    tls = True
    desc = ""

    def __init__(self, name, env):
        self.name = name
        self.env = env          # shared: tmp dir, certs, args
        self.port = None
        self.ca = env["ca"]
        self.proxy_pid = None   # the process whose CPU and RSS we count
        self.shard_pid = None   # the redis-server behind it (None: same)
        self.procs = []
        self.extra = []
        self.skipped = None
        self.tls_info = {}
        self.cert = env["cert"]

    def dir(self, rep):
        d = os.path.join(self.env["tmp"], "%s-%d" % (self.name, rep))
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        return d

    def ctx(self):
        return client_ctx(self.ca) if self.tls else None

    def start_shard(self, d, extra=()):
        conf = shard_conf(d, ["port 0"] + list(extra))
        p = PROCS.start(self.name + " shard", ["redis-server", conf],
                        os.path.join(d, "redis.log"))
        self.procs.append(p)
        wait_unix_ping(os.path.join(d, "redis.sock"), p,
                       self.name + " redis-server")
        return p

    def start(self, rep):
        raise NotImplementedError

    def stop(self):
        for p in reversed(self.procs):
            PROCS.stop(p)
        PROCS.stop_extra(self.extra)
        self.procs, self.extra = [], []
        self.proxy_pid = self.shard_pid = None


class RedisPlain(Target):
    tls = False
    desc = "redis-server's own plaintext TCP port (reference)"

    def start(self, rep):
        d = self.dir(rep)
        self.port = free_port()
        conf = shard_conf(d, ["port %d" % self.port, "bind %s" % HOST])
        p = PROCS.start(self.name, ["redis-server", conf],
                        os.path.join(d, "redis.log"))
        self.procs.append(p)
        self.tls_info = {"negotiated": wait_ready(self.port, None, p,
                                                  self.name)}
        self.proxy_pid = p.pid


class RedisTLS(Target):
    desc = "redis-server's own TLS port (tls-port)"

    def start(self, rep):
        d = self.dir(rep)
        self.port = free_port()
        e = self.env
        conf = shard_conf(d, [
            "port 0", "bind %s" % HOST, "tls-port %d" % self.port,
            "tls-cert-file %s" % e["cert"], "tls-key-file %s" % e["key"],
            "tls-ca-cert-file %s" % e["ca"], "tls-auth-clients no"])
        p = PROCS.start(self.name, ["redis-server", conf],
                        os.path.join(d, "redis.log"))
        self.procs.append(p)
        self.tls_info = {"negotiated": wait_ready(self.port, self.ctx(), p,
                                                  self.name)}
        self.proxy_pid = p.pid


class Stunnel(Target):
    desc = "stunnel4 → unix socket of a redis-server"

    def start(self, rep):
        d = self.dir(rep)
        shard = self.start_shard(d)
        self.port = free_port()
        e = self.env
        conf = os.path.join(d, "stunnel.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\ndebug = 3\n"
                    "output = %s/stunnel.log\n"
                    "[redis]\naccept = %s:%d\nconnect = %s/redis.sock\n"
                    "cert = %s\nkey = %s\n"
                    % (d, HOST, self.port, d, e["cert"], e["key"]))
        p = PROCS.start(self.name, ["stunnel4", conf],
                        os.path.join(d, "stunnel.out"))
        self.procs.append(p)
        self.tls_info = {"negotiated": wait_ready(self.port, self.ctx(), p,
                                                  self.name)}
        self.proxy_pid, self.shard_pid = p.pid, shard.pid


class Haproxy(Target):
    def __init__(self, name, env, nbthread):
        super().__init__(name, env)
        self.nbthread = nbthread
        self.desc = ("haproxy mode tcp, ssl bind, %s → unix@ socket"
                     % ("nbthread %d" % nbthread if nbthread
                        else "default threads"))

    def start(self, rep):
        d = self.dir(rep)
        shard = self.start_shard(d)
        self.port = free_port()
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n")
            if self.nbthread:
                f.write("    nbthread %d\n" % self.nbthread)
            # haproxy wants 2 fds per connection plus a margin within
            # RLIMIT_NOFILE (main() raises it): the 10k test's.
            f.write("    maxconn 9950\n"
                    "defaults\n    mode tcp\n    maxconn 9950\n"
                    "    timeout connect 5s\n    timeout client 300s\n"
                    "    timeout server 300s\n"
                    "frontend fe\n    bind %s:%d ssl crt %s\n"
                    "    default_backend be\n"
                    "backend be\n    server s1 unix@%s/redis.sock\n"
                    % (HOST, self.port, self.env["pem"], d))
        p = PROCS.start(self.name, ["haproxy", "-db", "-f", cfg],
                        os.path.join(d, "haproxy.log"))
        self.procs.append(p)
        self.tls_info = {"negotiated": wait_ready(self.port, self.ctx(), p,
                                                  self.name)}
        self.proxy_pid, self.shard_pid = p.pid, shard.pid


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def control(sock, method, url, body=None, auth=False, proc=None):
    """One request on moatd's control socket.  A dropped connection is a
    Skip that says whether moatd is still alive."""
    try:
        return _control(sock, method, url, body, auth)
    except (OSError, http.client.HTTPException) as e:
        if proc is None:
            raise
        time.sleep(0.3)
        state = ("moatd exited with status %s" % proc.returncode
                 if proc.poll() is not None else "moatd still running")
        if proc.returncode is not None and proc.returncode < 0:
            state = "moatd died of signal %d" % -proc.returncode
        raise Skip("%s %s: %s (%s); log: %s" % (method, url, e or type(e),
                                                state, log_tail(proc, 2)))


def _control(sock, method, url, body=None, auth=False):
    c = UnixHTTPConnection(sock)
    headers = {"Content-Type": "application/json"}
    if auth:
        tok = base64.b64encode(("%s:%s" % (MOAT_USER, MOAT_PASS)).encode())
        headers["Authorization"] = "Basic " + tok.decode()
    try:
        c.request(method, url, body=json.dumps(body) if body else None,
                  headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


class Moat(Target):
    desc = "moatd's database endpoint (TLS with the cluster proxy cert)"

    def __init__(self, name, env, workers=0, data_path=None):
        super().__init__(name, env)
        self.workers = workers
        self.data_path = data_path
        if workers:
            self.desc += ", --workers %d" % workers
        if data_path:
            self.desc += ", --data-path %s" % data_path

    def start(self, rep):
        moatd = self.env["args"].moatd
        if not os.access(moatd, os.X_OK):
            raise Skip("no %s: build it with `make all`" % moatd)
        d = self.dir(rep)
        data = self.data = os.path.join(d, "data")
        os.makedirs(data, mode=0o700, exist_ok=True)
        sock = os.path.join(data, "moatd.sock")
        ports = [free_port() for _ in range(3)]
        argv = [moatd, "--data-dir", data, "--addr", HOST,
                "--api-port", str(ports[0]), "--cm-port", str(ports[1]),
                "--metrics-port", str(ports[2])]
        if self.workers:
            argv += ["--workers", str(self.workers)]
        if self.data_path:
            argv += ["--data-path", self.data_path]
        p = PROCS.start(self.name, argv, os.path.join(d, "moatd.log"))
        self.procs.append(p)
        self.proxy_pid = p.pid
        deadline = time.time() + 20
        while True:
            if p.poll() is not None:
                raise Skip("moatd exited with status %s: %s"
                           % (p.returncode, log_tail(p)))
            try:
                _control(sock, "GET", "/v1/cluster")
                break
            except OSError:
                pass
            if time.time() > deadline:
                raise Skip("moatd control socket %s did not answer" % sock)
            time.sleep(0.1)
        st, body = control(sock, "POST", "/v1/bootstrap/create_cluster", {
            "action": "create_cluster",
            "cluster": {"name": MOAT_FQDN},
            "credentials": {"username": MOAT_USER, "password": MOAT_PASS}},
            proc=p)
        if st // 100 != 2:
            raise Skip("create_cluster: HTTP %d %s" % (st, oneline(body)))
        self.port = free_port(10000, 19999)
        # Persistence off, as the other targets' shards.
        bdb = {"name": "bench", "port": self.port, "tls_mode": "enabled",
               "data_persistence": "disabled",
               "memory_size": 1073741824}
        st, body = control(sock, "POST", "/v1/bdbs", bdb, proc=p)
        if st in (401, 403):
            st, body = control(sock, "POST", "/v1/bdbs", bdb, auth=True,
                               proc=p)
        if st == 404 or st == 405 or st == 501:
            raise Skip("this moatd does not support POST /v1/bdbs yet "
                       "(HTTP %d)" % st)
        if st // 100 != 2:
            raise Skip("POST /v1/bdbs: HTTP %d %s" % (st, oneline(body)))
        self.ca = os.path.join(data, "certs", "ca.pem")
        self.cert = os.path.join(data, "certs", "proxy_cert.pem")
        neg = wait_ready(self.port, self.ctx(), p, "moat endpoint",
                         timeout=30)
        self.tls_info = {"negotiated": neg}
        shards = [c for c in descendants(p.pid)
                  if c[1].startswith("redis-server")]
        self.extra = descendants(p.pid)
        PROCS.extra.update(self.extra)
        if shards:
            self.shard_pid = shards[0][0]
            self.equalize_shard()

    def equalize_shard(self):
        """The database is created with data_persistence "disabled"; check
        on the shard's own socket that it has the other targets' settings,
        and adjust it (noted in the report) if a moatd does not know the
        field."""
        path = shard_unix_socket(self.shard_pid)
        if path is None:
            self.shard_note = "shard socket not found; left as moatd set it"
            return
        notes = []
        try:
            for key, want in (("appendonly", "no"), ("save", "")):
                got = resp_call(path, "CONFIG", "GET", key)
                have = got[1] if isinstance(got, list) and len(got) > 1 \
                    else None
                if have != want:
                    r = resp_call(path, "CONFIG", "SET", key, want)
                    notes.append("%s %r → %r (%s)" % (key, have, want, r))
        except (OSError, ValueError) as e:
            notes.append("could not adjust the shard: %s" % e)
        if notes:
            self.shard_note = ("shard adjusted by the bench with CONFIG SET "
                               "to match the others: " + "; ".join(notes))

    def stop(self):
        # moatd stops its own shard; whatever is left is killed by PID,
        # including a shard orphaned by a moatd that crashed.
        if self.procs and self.procs[0].poll() is None:
            self.extra = list(set(self.extra) |
                              set(descendants(self.procs[0].pid)))
        super().stop()
        PROCS.stop_extra(self.strays())

    def strays(self):
        """Processes that run from or name our data dir (redis-server
        shows its unix socket path in its title)."""
        data = getattr(self, "data", None)
        out = []
        if not data:
            return out
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(
                        errors="replace")
                cwd = os.readlink("/proc/%s/cwd" % d)
            except OSError:
                continue
            if data + "/" in cmd + "/" or (cwd + "/").startswith(data + "/"):
                comm = pid_comm(int(d))
                if comm:
                    out.append((int(d), comm))
        return out


def make_target(name, env):
    return {
        "redis-plain": lambda: RedisPlain(name, env),
        "redis-tls": lambda: RedisTLS(name, env),
        "stunnel": lambda: Stunnel(name, env),
        "haproxy-1t": lambda: Haproxy(name, env, 1),
        "haproxy": lambda: Haproxy(name, env, 0),
        "moat": lambda: Moat(name, env),
        "moat-epoll": lambda: Moat(name, env, data_path="epoll"),
        "moat-1w": lambda: Moat(name, env, 1),
    }[name]()


# ---------------------------------------------------------------------------
# measurements

def run_benchmark(t, extra, requests, timeout, clients=CLIENTS):
    """One redis-benchmark run against t.  Returns rows by test name plus
    CPU deltas of the proxy, the shard and the client."""
    argv = ["redis-benchmark", "-h", HOST, "-p", str(t.port),
            "-c", str(clients), "--csv", "-q"] + extra
    if t.tls:
        argv += ["--tls", "--cacert", t.ca]
    c0 = children_cpu()
    p0 = cpu_seconds(t.proxy_pid)
    s0 = cpu_seconds(t.shard_pid) if t.shard_pid else None
    m0 = machine_busy()
    w0 = time.time()
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError("redis-benchmark timed out after %ds" % timeout)
    wall = time.time() - w0
    m1 = machine_busy()
    p1 = cpu_seconds(t.proxy_pid)
    s1 = cpu_seconds(t.shard_pid) if t.shard_pid else None
    c1 = children_cpu()
    rows = {}
    for row in csv.reader(io.StringIO(r.stdout)):
        if len(row) >= 5 and row[0] != "test":
            try:
                rows[row[0]] = {"rps": float(row[1]), "p50": float(row[4])}
                if len(row) >= 7:
                    rows[row[0]]["p99"] = float(row[6])
            except ValueError:
                pass
    if r.returncode != 0 or not rows:
        raise RuntimeError("redis-benchmark failed (status %d): %s"
                           % (r.returncode,
                              (r.stderr.strip() or r.stdout.strip())[-300:]))
    return {
        "rows": rows, "wall": wall, "requests": requests,
        "proxy_cpu": p1 - p0,
        "shard_cpu": (s1 - s0) if s0 is not None else None,
        "client_cpu": c1 - c0,
        # CPU that neither the client, the proxy nor its shard used while
        # the run lasted: other processes on a shared machine (noise).
        "other_busy": max(0.0, (m1 - m0) - (p1 - p0) - (c1 - c0)
                          - ((s1 - s0) if s0 is not None else 0)) / wall,
    }


def m_keepalive(t, a, extra_args, n):
    res = run_benchmark(t, ["-t", "set,get", "-n", str(n)] + extra_args,
                        2 * n, timeout=60 + 2 * n // 2000)
    rows = res["rows"]
    if "SET" not in rows or "GET" not in rows:
        raise RuntimeError("missing SET/GET rows: %s" % list(rows))
    req = res["requests"]
    out = {
        "ops": (rows["SET"]["rps"] + rows["GET"]["rps"]) / 2,
        "p50": (rows["SET"]["p50"] + rows["GET"]["p50"]) / 2,
        "proxy_us": res["proxy_cpu"] * 1e6 / req,
        "client_us": res["client_cpu"] * 1e6 / req,
        "wall": res["wall"],
    }
    if res["shard_cpu"] is not None:
        out["shard_us"] = res["shard_cpu"] * 1e6 / req
    tot = res["proxy_cpu"] + (res["shard_cpu"] or 0) + res["client_cpu"]
    out["cpus_busy"] = tot / res["wall"]
    out["other_busy"] = res["other_busy"]
    return out


def m_p1(t, a):
    return m_keepalive(t, a, ["-P", "1"], a.n_p1)


def m_p16(t, a):
    return m_keepalive(t, a, ["-P", "16"], a.n_p16)


def m_d1k(t, a):
    return m_keepalive(t, a, ["-P", "1", "-d", "1024"], a.n_d1k)


def m_conn(t, a):
    n = a.n_conn
    res = run_benchmark(t, ["-k", "0", "-t", "ping_inline", "-n", str(n)],
                        n, timeout=60 + n // 50)
    row = res["rows"].get("PING_INLINE")
    if row is None:
        raise RuntimeError("no PING_INLINE row")
    # Each request is one new TCP+TLS connection; the ~c handshakes in
    # flight when the run ends are not counted (≤ c/n of the CPU).
    out = {
        "conn_s": row["rps"],
        "proxy_us": res["proxy_cpu"] * 1e6 / n,
        "client_us": res["client_cpu"] * 1e6 / n,
        "wall": res["wall"],
    }
    if res["shard_cpu"] is not None:
        out["shard_us"] = res["shard_cpu"] * 1e6 / n
    return out


def open_pinged(t, ctx, n, socks, most_failed=None):
    """Append to socks n connections to t that completed a handshake and
    one PING; returns how many failed (more than most_failed: an error,
    the socks opened so far stay in socks for the caller to close)."""
    failed = 0
    for _ in range(n):
        try:
            socks.append(pinged_socket(t.port, ctx, 10))
        except (OSError, ssl.SSLError):
            failed += 1
            if most_failed is not None and failed > most_failed:
                raise RuntimeError("%d of the first %d connections failed"
                                   % (failed, len(socks) + failed))
    return failed


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def m_idle(t, a):
    """RSS of the proxy process per idle connection that completed its
    handshake and one PING."""
    n = a.n_idle
    ctx = t.ctx()
    time.sleep(0.5)
    before = proc_status(t.proxy_pid, "VmRSS")
    socks = []
    try:
        failed = open_pinged(t, ctx, n, socks)
        time.sleep(1.0)
        after = proc_status(t.proxy_pid, "VmRSS")
        threads = proc_status(t.proxy_pid, "Threads")
    finally:
        close_all(socks)
    if not socks:
        raise RuntimeError("no idle connection could be opened")
    out = {"kib": (after - before) / len(socks), "rss_before": before,
           "rss_after": after, "threads": threads, "open": len(socks)}
    if failed:
        out["failed"] = failed
    return out


# The 10,000-connection row: targets that hold a connection in a thread
# each (stunnel) would need 10,000 threads; they sit it out.
C10K_ACTIVE = 100
C10K_SKIP = ("stunnel", "redis-plain")
# 9,800 + 100: a proxy holds two descriptors per connection, and the
# hard open files limit of the CI-class machine is 20,000 (not raisable
# there): 10,000 connections would need 20,000 plus its own.
C10K_IDLE = 9800


def m_c10k(t, a):
    """a.n_c10k TLS connections that completed a handshake and one PING
    and then stay idle, while C10K_ACTIVE more run -P 1: the proxy's RSS
    per connection, the active clients' p50/p99, and how long opening the
    idle ones took (one client, one after another: mostly the client's
    handshake CPU, compared within the run)."""
    if t.name in C10K_SKIP:
        raise Skip("one thread per connection" if t.name == "stunnel"
                   else "plaintext")
    n = a.n_c10k
    ctx = t.ctx()
    time.sleep(0.5)
    before = proc_status(t.proxy_pid, "VmRSS")
    c0 = cpu_seconds(t.proxy_pid)
    socks = []
    w0 = time.time()
    try:
        failed = open_pinged(t, ctx, n, socks, most_failed=n // 100)
        opened = time.time() - w0
        c1 = cpu_seconds(t.proxy_pid)
        time.sleep(1.0)
        after = proc_status(t.proxy_pid, "VmRSS")
        res = run_benchmark(t, ["-P", "1", "-t", "get", "-n",
                                str(a.n_c10k_req)], a.n_c10k_req,
                            timeout=60 + a.n_c10k_req // 1000,
                            clients=C10K_ACTIVE)
        for s in socks[::97]:    # the idle ones are still served
            s.sendall(b"PING\r\n")
            if not s.recv(64).startswith(b"+PONG"):
                raise RuntimeError("an idle connection did not answer")
    finally:
        close_all(socks)
    row = res["rows"].get("GET")
    if row is None:
        raise RuntimeError("no GET row")
    out = {"kib": (after - before) / len(socks), "open_s": opened,
           "accept_us": (c1 - c0) * 1e6 / len(socks), "open": len(socks),
           "ops": row["rps"], "p50": row["p50"], "p99": row.get("p99")}
    if failed:
        out["failed"] = failed
    return out


TESTS = [
    # name, function, what — the idle test runs first, on fresh processes
    ("idle", m_idle, "idle TLS connections"),
    ("c10k", m_c10k, "10,000 TLS connections"),
    ("p1", m_p1, "-P 1"),
    ("p16", m_p16, "-P 16"),
    ("d1k", m_d1k, "-d 1024"),
    ("conn", m_conn, "-k 0"),
]

# Table rows: label, test, key, format, higher_is_better
ROWS = [
    ("P1 ops/s", "p1", "ops", "int", True),
    ("P16 ops/s", "p16", "ops", "int", True),
    ("d1024 ops/s", "d1k", "ops", "int", True),
    ("new conn/s", "conn", "conn_s", "int", True),
    ("proxy CPU µs/request (P1)", "p1", "proxy_us", "f1", False),
    ("proxy CPU µs/new connection", "conn", "proxy_us", "int", False),
    ("idle KiB/conn (proxy RSS)", "idle", "kib", "f1", False),
    ("10k conns: KiB/conn (proxy RSS)", "c10k", "kib", "f1", False),
    ("10k conns: p99 ms of 100 active (-P 1)", "c10k", "p99", "f3", False),
    ("10k conns: s to open the idle ones", "c10k", "open_s", "f1", False),
    ("10k conns: proxy CPU µs/accepted conn", "c10k", "accept_us", "int",
     False),
]
CONTEXT_ROWS = [
    ("P1 p50 latency ms", "p1", "p50", "f3"),
    ("shard CPU µs/request (P1)", "p1", "shard_us", "f1"),
    ("client CPU µs/request (P1)", "p1", "client_us", "f1"),
    ("CPUs busy (P1: proxy+shard+client)", "p1", "cpus_busy", "f2"),
    ("other CPUs busy (P1: noise from outside)", "p1", "other_busy", "f2"),
    ("proxy CPU µs/request (P16)", "p16", "proxy_us", "f2"),
    ("proxy CPU µs/request (d1024)", "d1k", "proxy_us", "f1"),
    ("client CPU µs/new connection", "conn", "client_us", "int"),
    ("shard CPU µs/new connection", "conn", "shard_us", "int"),
    ("proxy RSS before idle test KiB", "idle", "rss_before", "int"),
    ("proxy threads with idle conns", "idle", "threads", "int"),
    ("10k conns: ops/s of 100 active (-P 1 GET)", "c10k", "ops", "int"),
    ("10k conns: p50 ms of 100 active", "c10k", "p50", "f3"),
]


# ---------------------------------------------------------------------------
# setup, machine info, report

def make_certs(tmp):
    key = os.path.join(tmp, "ec.key")
    crt = os.path.join(tmp, "ec.crt")
    pem = os.path.join(tmp, "ec.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    os.chmod(pem, 0o600)
    # Self-signed: the certificate is its own CA.
    return {"cert": crt, "key": key, "pem": pem, "ca": crt}


def cmd_out(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e


def machine_info(args):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        tw = open("/proc/sys/net/ipv4/tcp_tw_reuse").read().strip()
    except OSError:
        tw = "?"
    rev = cmd_out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", REPO, "status", "--porcelain",
                     "--untracked-files=no"])
    return [
        ("nproc", str(os.cpu_count())),
        ("cpu", cpu),
        ("kernel", platform.release()),
        ("openssl", cmd_out(["openssl", "version"])),
        ("haproxy", cmd_out(["haproxy", "-v"]).splitlines()[0]),
        ("stunnel", " / ".join(
            l for l in cmd_out(["stunnel4", "-version"]).splitlines()
            if l.startswith("stunnel") or "OpenSSL" in l)),
        ("redis-server", cmd_out(["redis-server", "--version"])),
        ("redis-benchmark", cmd_out(["redis-benchmark", "--version"])),
        ("python", platform.python_version()),
        ("moat", "%s%s (%s)" % (rev, " + local changes" if dirty else "",
                                args.moatd)),
        ("tcp_tw_reuse", tw),
        ("RLIMIT_NOFILE", str(resource.getrlimit(resource.RLIMIT_NOFILE))),
        ("loadavg at start", open("/proc/loadavg").read().strip()),
    ]


def fmt(v, how):
    if v is None:
        return "—"
    if how == "int":
        return "{:,}".format(int(round(v)))
    if how == "f1":
        return "%.1f" % v
    if how == "f2":
        return "%.2f" % v
    if how == "f3":
        return "%.3f" % v
    return str(v)


def values(results, target, test, key):
    return [r[target][test][key] for r in results
            if target in r and isinstance(r[target].get(test), dict)
            and r[target][test].get(key) is not None]


def median(vs):
    return statistics.median(vs) if vs else None


def ratio_median(results, target, ref, test, key):
    rs = []
    for r in results:
        try:
            a, b = r[target][test][key], r[ref][test][key]
        except (KeyError, TypeError):
            continue
        if a is not None and b:
            rs.append(a / b)
    return median(rs)


def table(header, rows, numeric=True):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i and numeric else "---"
                          for i in range(len(header))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out)


def report(args, targets, results, info, errors, started, elapsed):
    names = [t.name for t in targets if not t.skipped]

    def has(test, key):
        return any(values(results, n, test, key) for n in names)
    main_rows = [r for r in ROWS if has(r[1], r[2])]
    ctx_rows = [r for r in CONTEXT_ROWS if has(r[1], r[2])]
    out = []
    out.append("# moat bench — %s\n" % started.strftime("%Y-%m-%d %H:%M:%S"))
    out.append("%d rep(s)%s, targets in rotation (the starting target "
               "rotates each rep), all on %s; medians over reps. "
               "redis-benchmark -c %d; P1: -n %d per command (SET, GET), "
               "P16: -n %d, d1024: -n %d, new connections: -k 0 -t "
               "ping_inline -n %d; idle: %d connections. Total %.0f s.\n"
               % (args.reps, " (--quick)" if args.quick else "", HOST,
                  CLIENTS, args.n_p1, args.n_p16, args.n_d1k, args.n_conn,
                  args.n_idle, elapsed))
    out.append("## Medians\n")
    rows = []
    for label, test, key, how, up in main_rows:
        rows.append([label + (" ↑" if up else " ↓")] +
                    [fmt(median(values(results, n, test, key)), how)
                     for n in names])
    out.append(table(["metric"] + names, rows) + "\n")
    out.append("↑ higher is better, ↓ lower is better. For redis-plain and "
               "redis-tls the \"proxy\" is the redis-server itself "
               "(redis-plain: plaintext connections).\n")
    for ref in REFS:
        if ref not in names:
            continue
        out.append("## Ratio to %s\n" % ref)
        rows = []
        for label, test, key, how, up in main_rows:
            rows.append([label + (" ↑" if up else " ↓")] +
                        [fmt(ratio_median(results, n, ref, test, key), "f2")
                         for n in names])
        out.append(table(["metric"] + names, rows) + "\n")
    out.append("Each ratio is the median over reps of (target / reference) "
               "measured in the same rep; for ↓ rows below 1.00 is "
               "better.\n")
    out.append("## Context\n")
    rows = []
    for label, test, key, how in ctx_rows:
        rows.append([label] + [fmt(median(values(results, n, test, key)),
                                   how) for n in names])
    out.append(table(["metric"] + names, rows) + "\n")
    out.append("## Targets and TLS\n")
    rows = []
    for t in targets:
        if t.skipped:
            rows.append([t.name, "**skipped**: " + t.skipped, "", "", ""])
            continue
        neg = t.tls_info.get("negotiated", ("?", "?"))
        pr = t.tls_info.get("probe", {})
        desc = t.desc
        if getattr(t, "shard_note", None):
            desc += " (%s)" % t.shard_note
        rows.append([t.name, desc, "%s %s" % tuple(neg),
                     "; ".join("%s: %s" % kv for kv in pr.items()
                               if kv[0] != "Ciphersuite"),
                     t.tls_info.get("key", "-")])
    out.append(table(["target", "what", "negotiated (python client)",
                      "openssl s_client -brief", "certificate key"], rows,
                     numeric=False) + "\n")
    out.append("## Machine\n")
    out.append(table(["", ""], [[k, v.replace("|", "/")] for k, v in info],
                     numeric=False) + "\n")
    out.append("## Per rep\n")
    rows = []
    for i, r in enumerate(results):
        for n in names:
            row = [str(i + 1), n]
            for label, test, key, how, up in main_rows:
                m = r.get(n, {}).get(test)
                row.append(fmt(m.get(key), how) if isinstance(m, dict)
                           else "—")
            rows.append(row)
    out.append(table(["rep", "target"] + [x[0] for x in main_rows], rows)
               + "\n")
    if errors:
        out.append("## Errors\n")
        for e in errors:
            out.append("- " + e)
        out.append("")
    out.append("## Notes\n")
    out.append(
        "- CPU is utime+stime from /proc/PID/stat of the proxy process "
        "(all its threads, exited ones included, not its children), in "
        "10 ms ticks, divided by the requests or connections of the run. "
        "For moat, moatd's own process; its redis-server child is the "
        "shard.\n"
        "- The client (redis-benchmark) spends about as much CPU per TLS "
        "handshake as the server, and everything shares the same CPUs, so "
        "new conn/s mostly measures the client: compare proxy CPU "
        "µs/new connection.\n"
        "- With a proxy, client + proxy + shard keep the CPUs busy (see "
        "Context), so ops/s ratios reflect total CPU per request; proxy "
        "CPU µs/request is the proxy's own cost.\n"
        "- Idle: connections complete the handshake and one PING/+PONG, "
        "then VmRSS of the proxy process after 1 s minus before, on "
        "processes started fresh for the rep.\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description="moat's TLS proxy side by side with redis TLS, "
        "stunnel and haproxy")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions (default 3, --quick: 1)")
    ap.add_argument("--quick", action="store_true",
                    help="fast smoke run: 1 rep, small N")
    ap.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                    help="comma-separated subset of " + ",".join(ALL_TARGETS))
    ap.add_argument("--tests", default=",".join(t[0] for t in TESTS),
                    help="comma-separated subset of "
                    + ",".join(t[0] for t in TESTS))
    ap.add_argument("--n-p1", type=int, help="-n for P1 (200000)")
    ap.add_argument("--n-p16", type=int, help="-n for P16 (1000000)")
    ap.add_argument("--n-d1k", type=int, help="-n for d1024 (100000)")
    ap.add_argument("--n-conn", type=int, help="-n for -k 0 (4000)")
    ap.add_argument("--n-idle", type=int, help="idle connections (1000)")
    ap.add_argument("--n-c10k", type=int,
                    help="idle connections of the 10k test (%d)" % C10K_IDLE)
    ap.add_argument("--n-c10k-req", type=int,
                    help="-n of the 10k test's active clients (200000)")
    ap.add_argument("--moatd", default=os.path.join(REPO, "build", "moatd"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="directory for <timestamp>.md and .json")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each rep, wait up to SECONDS for other "
                    "processes to use under 0.25 CPUs")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep the work dir (logs, configs) for debugging")
    args = ap.parse_args()

    q = args.quick
    defaults = {"reps": (1, 3), "n_p1": (20000, 200000),
                "n_p16": (200000, 1000000), "n_d1k": (20000, 100000),
                "n_conn": (500, 4000), "n_idle": (200, 1000),
                "n_c10k": (1000, C10K_IDLE), "n_c10k_req": (20000, 200000)}
    for k, (quick, full) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, quick if q else full)
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    for n in names:
        if n not in ALL_TARGETS:
            ap.error("unknown target %r" % n)
    names = [n for n in ALL_TARGETS if n in names]
    tests = [t for t in TESTS if t[0] in args.tests.split(",")]

    for tool in ("redis-server", "redis-benchmark", "openssl", "haproxy",
                 "stunnel4"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s not found; run bench/deps" % tool)

    # The client ends live here; every proxy, which inherits the limit,
    # holds two descriptors per connection (client and shard side).
    conns = max(args.n_idle, args.n_c10k + C10K_ACTIVE)
    need = 2 * conns + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:    # root with CAP_SYS_RESOURCE may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        sys.exit("bench: RLIMIT_NOFILE %d < %d: a proxy holding %d "
                 "connections needs two descriptors each (lower --n-c10k)"
                 % (resource.getrlimit(resource.RLIMIT_NOFILE)[0], need,
                    conns))

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    started = datetime.datetime.now()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="moat-bench-")
    errors = []
    results = []
    try:
        env = {"tmp": tmp, "args": args}
        env.update(make_certs(tmp))
        info = machine_info(args)
        busy = other_busy(2.0)
        info.append(("CPUs busy with other work at start", "%.2f" % busy))
        if busy > 0.25:
            log("bench: WARNING: other processes keep %.2f CPUs busy; the "
                "figures will be noisy (see --wait-quiet)" % busy)
        targets = [make_target(n, env) for n in names]
        live = list(targets)
        for rep in range(args.reps):
            k = rep % len(live) if live else 0
            order = live[k:] + live[:k]
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
            log("== rep %d/%d: %s" % (rep + 1, args.reps,
                                      " ".join(t.name for t in order)))
            res = {}
            for t in order:
                try:
                    t.start(rep)
                    if t.tls:
                        t.tls_info["probe"] = tls_probe(t.port, t.ca)
                        t.tls_info["key"] = cert_key_type(t.cert)
                    res[t.name] = {}
                    t.started = True
                except Skip as e:
                    t.stop()
                    if getattr(t, "started", False):
                        # It ran in an earlier rep: keep those figures.
                        msg = "rep %d %s: did not start: %s" % (rep + 1,
                                                               t.name, e)
                        errors.append(msg)
                        log("   " + msg)
                        continue
                    t.skipped = str(e)
                    log("   %s: SKIPPED: %s" % (t.name, e))
            live = [t for t in live if not t.skipped]
            order = [t for t in order if not t.skipped and t.name in res]
            for tname, fn, what in tests:
                for t in order:
                    try:
                        m = fn(t, args)
                    except Skip as e:        # the test does not apply
                        log("   %-11s %-5s not measured: %s"
                            % (t.name, tname, e))
                        continue
                    except Exception as e:   # one failure ≠ the whole run
                        msg = "rep %d %s %s: %s" % (rep + 1, t.name, tname,
                                                     e)
                        errors.append(msg)
                        log("   " + msg)
                        continue
                    res[t.name][tname] = m
                    log("   %-11s %-5s %s" % (t.name, tname, ", ".join(
                        "%s=%s" % (kk, fmt(v, "f2")) for kk, v in m.items()
                        if isinstance(v, float))))
            for t in order:
                t.stop()
            results.append(res)
        elapsed = time.time() - t0
        info.append(("loadavg at end", open("/proc/loadavg").read().strip()))
        md = report(args, targets, results, info, errors, started, elapsed)
        print(md)
        os.makedirs(args.out, exist_ok=True)
        stamp = started.strftime("%Y%m%d-%H%M%S")
        path = os.path.join(args.out, stamp + ".md")
        with open(path, "w") as f:
            f.write(md)
        with open(os.path.join(args.out, stamp + ".json"), "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()},
                       "machine": info, "results": results,
                       "skipped": {t.name: t.skipped for t in targets
                                   if t.skipped},
                       "errors": errors}, f, indent=1)
        log("bench: wrote %s" % path)
    finally:
        PROCS.stop_all()
        if args.keep_tmp:
            log("bench: work dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
