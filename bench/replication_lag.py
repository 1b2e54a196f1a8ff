#!/usr/bin/python3
"""bench/replication_lag.py — end-to-end Replica Of lag, as a client sees
it, under a steady write load: steady, while certificates rotate, and after
a forced cut of the replication link.

Two single-node moat clusters: the source on 127.0.0.1, the destination on
127.0.0.2, each with its own CA.  The source database requires client
certificates and trusts the destination cluster's CA; the destination
database replicates it over TLS (replica_sources, server_cert = the source
cluster's CA, replication_tls_sni = redis-<port>.<source fqdn>).

    bench/replication_lag.py [--duration 30] [--rate 2000] [--quick]
    bench/replication_lag.py --source-only --quick    # no replication
    MOAT_BUILD=build-b bench/replication_lag.py       # or --moatd PATH

A figure, not a test: nothing is asserted.  It exits non-zero, with the
reason, only when the set-up fails.  Every process it starts is stopped by
PID at the end (also on Ctrl-C); the work dir under /tmp is removed.

Only the Python standard library; Debian's /usr/bin/python3.
"""

import argparse
import datetime
import http.client
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from bench import cmd_out, log, table  # the side-by-side bench's helpers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

SRC_ADDR, DST_ADDR = "127.0.0.1", "127.0.0.2"
SRC_FQDN, DST_FQDN = "source.bench.moat.local", "replica.bench.moat.local"
ADMIN_USER = "admin@moat.local"
ADMIN_PASS = "benchpassword"
SRC_DB_PASS = "bench-source-pass-0k"
PROBE_KEY = "lag:probe"
MEMORY = 256 * 1024 * 1024

PHASES = [
    ("steady", "steady write load, nothing else"),
    ("rotations", "source proxy and destination syncer rotated in turn"),
    ("link cut", "CLIENT KILL TYPE replica on the source shard"),
]


class SetupError(Exception):
    """The bench could not get to the point of measuring; says why."""


def oneline(text, most=400):
    return " ".join(str(text).split())[:most]


# ---------------------------------------------------------------------------
# RESP: a minimal client over any stream socket (TLS or unix)

class RespError(str):
    """An error reply (-ERR ...), returned rather than raised so that a
    pipeline can count them."""


class RespConn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *cmds):
        self.sock.sendall(b"".join(self.encode(c) for c in cmds))

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("connection closed by the server")
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n + 2]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError("unexpected reply %r" % line[:80])

    def call(self, *args):
        self.send(args)
        return self.read()


def tls_resp(addr, port, ca, servername, cert=None, key=None, password=None,
             timeout=5.0):
    """A RESP connection to a database endpoint over TLS (the chain and the
    name are verified), authenticated when a password is given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((addr, port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=servername)
    except BaseException:
        raw.close()
        raise
    s.settimeout(timeout)
    c = RespConn(s)
    if password:
        r = c.call("AUTH", password)
        if isinstance(r, RespError):
            c.close()
            raise ConnectionError("AUTH refused: %s" % r)
    return c


def unix_resp(path, password=None, timeout=5.0):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except BaseException:
        s.close()
        raise
    c = RespConn(s)
    if password:
        r = c.call("AUTH", password)
        if isinstance(r, RespError):
            c.close()
            raise ConnectionError("AUTH refused: %s" % r)
    return c


def parse_info(text):
    out = {}
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for line in str(text).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


# ---------------------------------------------------------------------------
# processes: every one we start is stopped by PID

def proc_stat(pid):
    """(comm, state, starttime) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return s[s.index("(") + 1:s.rindex(")")], rest[0], int(rest[19])


def kill_remembered(pid, start, comm_prefix, timeout=5.0):
    """SIGTERM then SIGKILL pid, only while it is the very process we saw
    (same start time and name): a recycled PID is left alone."""
    def same():
        st = proc_stat(pid)
        return st is not None and st[1] not in "ZX" and st[2] == start \
            and st[0].startswith(comm_prefix)
    if not same():
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while same() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not same():
            return True
    return True


def descendants(pid):
    """(pid, starttime) of pid's redis-server descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(
            (int(d), s[s.index("(") + 1:s.rindex(")")], int(rest[19])))
    out, todo = [], [pid]
    while todo:
        for c, comm, start in kids.get(todo.pop(), []):
            todo.append(c)
            if comm.startswith("redis-server"):
                out.append((c, start))
    return out


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def bindable(addr, port):
    with socket.socket() as s:
        try:
            s.bind((addr, port))
        except OSError:
            return False
    return True


def free_db_port(addr, taken):
    """A port in moat's database range (10000-19999) free on addr."""
    for _ in range(2000):
        p = random.randint(10000, 19999)
        if p not in taken and bindable(addr, p) and bindable("0.0.0.0", p):
            taken.add(p)
            return p
    raise SetupError("no free port in 10000-19999 on %s" % addr)


class Cluster:
    """One single-node moat cluster: a moatd on its own address and data
    dir, created through its control socket."""

    def __init__(self, role, addr, fqdn, moatd, tmp):
        self.role, self.addr, self.fqdn, self.moatd = role, addr, fqdn, moatd
        self.dir = os.path.join(tmp, role)
        self.data = os.path.join(self.dir, "d")
        os.makedirs(self.data, mode=0o700)
        self.log_path = os.path.join(self.dir, "moatd.log")
        self.sock = os.path.join(self.data, "moatd.sock")
        self.proc = None
        self.shards = {}        # pid -> starttime of the redis-servers seen

    @property
    def ca(self):
        return os.path.join(self.data, "certs", "ca.pem")

    def shard_sock(self, uid):
        return os.path.join(self.data, "dbs", str(uid), "redis.sock")

    def log_tail(self, n=6):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def start(self):
        argv = [self.moatd, "--data-dir", self.data, "--addr", self.addr,
                "--api-port", str(free_port(self.addr)),
                "--cm-port", str(free_port(self.addr)),
                "--metrics-port", str(free_port(self.addr))]
        with open(self.log_path, "ab") as f:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise SetupError("%s moatd exited with status %s: %s" % (
                    self.role, self.proc.returncode, self.log_tail()))
            try:
                self.api("GET", "/v1/cluster", timeout=2)
                break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise SetupError("%s moatd: control socket %s did not "
                                 "answer in 20 s: %s" % (
                                     self.role, self.sock, self.log_tail()))
            time.sleep(0.1)
        st, body = self.api("POST", "/v1/bootstrap/create_cluster", {
            "action": "create_cluster", "cluster": {"name": self.fqdn},
            "credentials": {"username": ADMIN_USER, "password": ADMIN_PASS}})
        if st != 200:
            raise SetupError("%s create_cluster: HTTP %d %s" % (
                self.role, st, oneline(body)))

    def api(self, method, url, body=None, timeout=60):
        """One request on the control socket (local admin).  (status,
        decoded JSON or the raw text)."""
        c = UnixHTTP(self.sock, timeout)
        headers = {"Content-Type": "application/json"}
        try:
            c.request(method, url, headers=headers,
                      body=json.dumps(body) if body is not None else None)
            r = c.getresponse()
            text = r.read().decode(errors="replace")
        finally:
            c.close()
        try:
            return r.status, json.loads(text) if text else {}
        except ValueError:
            return r.status, text

    def create_db(self, body, timeout=30):
        """POST /v1/bdbs, then wait until the database is active."""
        st, obj = self.api("POST", "/v1/bdbs", body)
        if st != 200 or not isinstance(obj, dict) or "uid" not in obj:
            shown = json.loads(json.dumps(body))
            shown.pop("authentication_ssl_client_certs", None)
            shown.pop("authentication_redis_pass", None)
            for rs in shown.get("replica_sources") or []:
                rs["server_cert"] = "<PEM>"
                rs["uri"] = rs["uri"].replace(SRC_DB_PASS, "********")
            hint = ""
            if "replica_sources" in body and "replica_sources" in str(obj):
                hint = (" -- this moatd does not take replica_sources: "
                        "Replica Of (issue 9) is not in this build? "
                        "--source-only measures everything else")
            raise SetupError("%s POST /v1/bdbs %s: HTTP %d %s%s" % (
                self.role, json.dumps(shown), st, oneline(obj), hint))
        uid = obj["uid"]
        deadline = time.monotonic() + timeout
        while True:
            st, obj = self.api("GET", "/v1/bdbs/%d" % uid)
            if st == 200 and obj.get("status") == "active":
                self.remember_shard(uid)
                return obj
            if self.proc.poll() is not None:
                raise SetupError("%s moatd exited with status %s: %s" % (
                    self.role, self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise SetupError("%s database %d not active after %d s: "
                                 "%s" % (self.role, uid, timeout,
                                         oneline(obj)))
            time.sleep(0.1)

    def remember_shard(self, uid):
        try:
            with open(os.path.join(self.data, "dbs", str(uid),
                                   "redis.pid")) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return
        st = proc_stat(pid) if pid > 0 else None
        if st is not None and st[0].startswith("redis-server"):
            self.shards[pid] = st[2]

    def strays(self):
        """redis-servers that name our data dir in their title (a shard
        whose moatd died), as (pid, starttime)."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(
                        errors="replace")
            except OSError:
                continue
            st = proc_stat(int(d))
            if st and st[0].startswith("redis-server") and \
                    (self.data + "/") in cmd:
                out.append((int(d), st[2]))
        return out

    def stop(self):
        """moatd by PID (it stops its shards), then any shard left over."""
        p = self.proc
        if p is not None and p.poll() is None:
            for pid, start in descendants(p.pid):
                self.shards[pid] = start
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for pid, start in list(self.shards.items()) + self.strays():
            kill_remembered(pid, start, "redis-server")
        self.shards = {}


def make_client_cert(tmp):
    """The bench's own client certificate (ECDSA P-256, self-signed), which
    the source database trusts as a leaf beside the destination CA: the
    write load and the probe writer present it."""
    key = os.path.join(tmp, "client.key")
    crt = os.path.join(tmp, "client.crt")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", crt, "-days", "7",
         "-subj", "/CN=moat-bench-writer",
         "-addext", "extendedKeyUsage=clientAuth"],
        capture_output=True, text=True)
    if r.returncode != 0:
        raise SetupError("openssl could not make the client certificate: "
                         + oneline(r.stderr))
    return crt, key


# ---------------------------------------------------------------------------
# workers: separate processes, so that the GIL does not blur the timings

def worker_signals(parent):
    # Ctrl-C reaches the whole process group: the parent handles it and
    # stops us.  SIGTERM (the parent's fallback) ends us at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    return lambda: os.getppid() != parent


def load_worker(cfg, pipe, stop, parent):
    """SET (90 %) and DEL (10 %) over a keyspace at cfg["rate"] writes/s,
    pipelined in batches every ~10 ms; counts per 0.1 s bucket."""
    orphan = worker_signals(parent)
    rng = random.Random(cfg["seed"])
    filler = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                   for _ in range(4096))
    size = cfg["value_size"]

    def connect():
        return tls_resp(*cfg["endpoint"], cert=cfg["cert"], key=cfg["key"],
                        password=cfg["password"])
    try:
        c = connect()
    except Exception as e:
        pipe.send({"error": "%s: %s" % (type(e).__name__, e)})
        return
    pipe.send({"ready": True})
    rate = float(cfg["rate"])
    buckets, errors, reconnects, dropped = {}, 0, 0, 0
    samples = []
    first_error = None
    start, done, n = time.monotonic(), 0, 0
    while not stop.is_set() and not orphan():
        now = time.monotonic()
        due = int((now - start) * rate) - done
        if due > rate:           # more than 1 s behind: drop, do not burst
            dropped += due
            done += due
            due = 0
        due = min(due, max(1, int(rate * 0.05)))
        if due > 0:
            cmds = []
            for _ in range(due):
                n += 1
                k = "k:%d" % rng.randrange(cfg["keys"])
                if rng.random() < 0.1:
                    cmds.append(("DEL", k))
                else:
                    off = rng.randrange(4096 - size) if size < 4096 else 0
                    v = (b"%d:" % n) + filler[off:off + size]
                    cmds.append(("SET", k, v[:max(size, 1)]))
            t0 = time.monotonic()
            try:
                if c is None:
                    c = connect()
                    reconnects += 1
                c.send(*cmds)
                for _ in cmds:
                    if isinstance(c.read(), RespError):
                        errors += 1
            except Exception as e:
                errors += len(cmds)
                first_error = first_error or "%s: %s" % (type(e).__name__, e)
                if c is not None:
                    c.close()
                c = None
                time.sleep(0.1)
            t1 = time.monotonic()
            if len(samples) < 20000:
                samples.append(t1 - t0)
            b = int(t0 * 10)
            buckets[b] = buckets.get(b, 0) + len(cmds)
            done += len(cmds)
        wait = start + (done + 1) / rate - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.01))
    if c is not None:
        c.close()
    pipe.send({"buckets": buckets, "errors": errors,
               "reconnects": reconnects, "dropped": dropped, "sent": done,
               "batch_rtt_p50": statistics.median(samples) if samples
               else None, "first_error": first_error})


def probe_worker(cfg, pipe, stop_write, stop_all, written, seen, parent):
    """Every probe interval, SET the probe key on the source to
    "<seq> <monotonic ns>"; between writes, GET it on the reader endpoint
    every poll interval.  A seq is visible when the reader first returns
    it or a later one; its lag is that reply's arrival minus the SET's
    sending (same machine, same CLOCK_MONOTONIC)."""
    orphan = worker_signals(parent)

    def writer():
        return tls_resp(*cfg["writer"], cert=cfg["cert"], key=cfg["key"],
                        password=cfg["password"])

    def reader():
        r = cfg["reader"]
        return tls_resp(*r["endpoint"], cert=r.get("cert"),
                        key=r.get("key"), password=r.get("password"))
    try:
        w, r = writer(), reader()
    except Exception as e:
        pipe.send({"error": "%s: %s" % (type(e).__name__, e)})
        return
    pipe.send({"ready": True})
    interval = cfg["interval"]
    poll = cfg["poll"]
    sent = {}                   # seq -> monotonic time the SET was sent
    samples = []                # (seq, t_sent, t_seen)
    wrtt, rrtt = [], []
    seq = last = 0
    werr = rerr = wrec = rrec = 0
    errs = []
    next_write = time.monotonic()
    while not stop_all.is_set() and not orphan():
        now = time.monotonic()
        if not stop_write.is_set() and now >= next_write:
            seq += 1
            t0 = time.monotonic()
            try:
                if w is None:
                    w = writer()
                    wrec += 1
                    t0 = time.monotonic()
                rep = w.call("SET", PROBE_KEY,
                             "%d %d" % (seq, time.monotonic_ns()))
                if isinstance(rep, RespError):
                    raise ConnectionError(rep)
                sent[seq] = t0
                wrtt.append(time.monotonic() - t0)
                written.value = seq
            except Exception as e:
                seq -= 1
                werr += 1
                if len(errs) < 20:
                    errs.append("probe write: %s: %s" % (type(e).__name__, e))
                if w is not None:
                    w.close()
                w = None
                time.sleep(0.05)
            next_write += interval
            if next_write < time.monotonic():
                next_write = time.monotonic() + interval
        t0 = time.monotonic()
        try:
            if r is None:
                r = reader()
                rrec += 1
                t0 = time.monotonic()
            v = r.call("GET", PROBE_KEY)
            t1 = time.monotonic()
            rrtt.append(t1 - t0)
            if isinstance(v, bytes):
                s = int(v.split(b" ", 1)[0])
                if s > last:
                    for k in range(last + 1, s + 1):
                        if k in sent:
                            samples.append((k, sent.pop(k), t1))
                    last = s
                    seen.value = s
            # None (not there yet) or an error reply (LOADING while the
            # replica loads): not visible.
        except Exception as e:
            rerr += 1
            if len(errs) < 20:
                errs.append("probe read: %s: %s" % (type(e).__name__, e))
            if r is not None:
                r.close()
            r = None
            time.sleep(0.05)
        wait = min(next_write if not stop_write.is_set() else 1e18,
                   time.monotonic() + poll) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    for c in (w, r):
        if c is not None:
            c.close()
    pipe.send({"samples": samples, "unseen": sorted(sent.items()),
               "written": seq, "seen": last,
               "write_rtt_p50": statistics.median(wrtt) if wrtt else None,
               "read_rtt_p50": statistics.median(rrtt) if rrtt else None,
               "reads": len(rrtt), "write_errors": werr, "read_errors": rerr,
               "write_reconnects": wrec, "read_reconnects": rrec,
               "errors": errs})


class Worker:
    """A worker process, its pipe and its stop event."""

    def __init__(self, mp, name, target, args, stop):
        self.name = name
        self.stop_ev = stop
        self.parent_end, child_end = mp.Pipe(duplex=False)
        self.proc = mp.Process(target=target, name=name,
                               args=args[:1] + (child_end,) + args[1:]
                               + (os.getpid(),), daemon=True)
        self.proc.start()
        child_end.close()
        self.result = None

    def wait_ready(self, timeout=20):
        if not self.parent_end.poll(timeout):
            raise SetupError("%s did not connect in %d s" % (self.name,
                                                            timeout))
        msg = self.parent_end.recv()
        if "error" in msg:
            raise SetupError("%s could not connect: %s" % (self.name,
                                                           msg["error"]))

    def finish(self, timeout=15):
        """Ask it to stop, collect its result, make sure it is gone."""
        self.stop_ev.set()
        try:
            if self.result is None and self.parent_end.poll(timeout):
                self.result = self.parent_end.recv()
        except (EOFError, OSError):
            pass
        self.kill()
        return self.result

    def kill(self):
        p = self.proc
        if p.pid is None:
            return
        p.join(2)
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            p.join(3)
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.join(3)


# ---------------------------------------------------------------------------
# the run

def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def lag_stats(vals):
    v = sorted(vals)
    out = {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90),
           "p99": percentile(v, 99), "max": v[-1] if v else None,
           "mean": statistics.fmean(v) if v else None}
    return {k: round(x, 3) if isinstance(x, float) else x
            for k, x in out.items()}


class Run:
    def __init__(self, args, tmp):
        self.a = args
        self.tmp = tmp
        self.src = self.dst = None
        self.src_uid = self.dst_uid = None
        self.workers = []
        self.errors = []
        self.api_samples = []       # (t, status, lag, last_error)
        self.info_samples = []      # (t, connected_slaves, sync_full,
        #                              sync_partial_ok)
        self.events = []            # {"t", "what", ...}
        self.counters = []          # (label, source INFO subset)
        self.phases = []            # {"name", "t0", "t1"}
        self.t_origin = time.monotonic()

    # -- observations ------------------------------------------------------
    def src_info(self):
        c = unix_resp(self.src.shard_sock(self.src_uid), SRC_DB_PASS)
        try:
            stats = parse_info(c.call("INFO", "stats"))
            repl = parse_info(c.call("INFO", "replication"))
        finally:
            c.close()
        return {"sync_full": stats.get("sync_full"),
                "sync_partial_ok": stats.get("sync_partial_ok"),
                "sync_partial_err": stats.get("sync_partial_err"),
                "connected_slaves": repl.get("connected_slaves"),
                "master_repl_offset": repl.get("master_repl_offset")}

    def dst_info(self):
        c = unix_resp(self.dst.shard_sock(self.dst_uid))
        try:
            r = c.call("INFO", "replication")
        finally:
            c.close()
        if isinstance(r, RespError):
            return {"error": str(r)}
        repl = parse_info(r)
        return {k: repl.get(k) for k in (
            "role", "master_link_status", "slave_repl_offset",
            "master_sync_in_progress", "master_link_down_since_seconds")}

    def count(self, label):
        try:
            v = self.src_info()
        except Exception as e:
            v = {"error": "%s: %s" % (type(e).__name__, e)}
        if self.dst_uid is not None:
            try:
                v["destination"] = self.dst_info()
            except Exception as e:
                v["destination"] = {"error": str(e)}
        self.counters.append((label, v))
        return v

    def api_source(self):
        """replica_sources[0] of the destination, as GET /v1/bdbs says."""
        st, obj = self.dst.api("GET", "/v1/bdbs/%d" % self.dst_uid,
                               timeout=10)
        if st != 200:
            raise RuntimeError("GET /v1/bdbs/%d: HTTP %d %s" % (
                self.dst_uid, st, oneline(obj)))
        rs = obj.get("replica_sources") or []
        return rs[0] if rs else None

    def sample_api(self):
        if self.dst_uid is None:
            return
        t = time.monotonic()
        try:
            rs = self.api_source()
        except Exception as e:
            self.api_samples.append((t, "error", None, oneline(e)))
            return
        if rs is None:
            self.api_samples.append((t, "none", None, ""))
            return
        self.api_samples.append((t, rs.get("status"), rs.get("lag"),
                                 rs.get("last_error") or ""))

    def sample_info(self):
        t = time.monotonic()
        try:
            v = self.src_info()
        except Exception:
            return
        self.info_samples.append((t, v["connected_slaves"], v["sync_full"],
                                  v["sync_partial_ok"]))

    def check_alive(self):
        for cl in (self.src, self.dst):
            if cl and cl.proc.poll() is not None and \
                    not getattr(cl, "reported", False):
                cl.reported = True
                self.error("%s moatd exited with status %s: %s" % (
                    cl.role, cl.proc.returncode, cl.log_tail()))
        for w in self.workers:
            if not w.proc.is_alive() and not getattr(w, "reported", False):
                w.reported = True
                self.error("%s exited early (status %s)" % (
                    w.name, w.proc.exitcode))

    def error(self, msg):
        self.errors.append(msg)
        log("   ERROR: " + msg)

    # -- set-up --------------------------------------------------------------
    def setup(self):
        a = self.a
        cert, key = make_client_cert(self.tmp)
        self.cert, self.key = cert, key
        log("== starting the source cluster (%s, %s) and the destination "
            "cluster (%s, %s)" % (SRC_ADDR, SRC_FQDN, DST_ADDR, DST_FQDN))
        self.src = Cluster("source", SRC_ADDR, SRC_FQDN, a.moatd, self.tmp)
        self.dst = Cluster("destination", DST_ADDR, DST_FQDN, a.moatd,
                           self.tmp)
        self.src.start()
        self.dst.start()
        with open(self.dst.ca) as f:
            dst_ca = f.read()
        with open(self.src.ca) as f:
            src_ca = f.read()
        with open(cert) as f:
            bench_cert = f.read()
        taken = set()
        self.src_port = free_db_port(SRC_ADDR, taken)
        self.dst_port = free_db_port(DST_ADDR, taken)
        self.src_sni = "redis-%d.%s" % (self.src_port, SRC_FQDN)
        self.dst_sni = "redis-%d.%s" % (self.dst_port, DST_FQDN)
        log("== source database on %s:%d (client certificates required: "
            "the destination CA, and the bench's writer)" % (
                SRC_ADDR, self.src_port))
        obj = self.src.create_db({
            "name": "source", "port": self.src_port, "tls_mode": "enabled",
            "memory_size": MEMORY,
            "authentication_redis_pass": SRC_DB_PASS,
            "enforce_client_authentication": "enabled",
            "authentication_ssl_client_certs": [
                {"client_cert": dst_ca}, {"client_cert": bench_cert}]})
        self.src_uid = obj["uid"]
        self.count("source created, before any replica")

        src_ep = (SRC_ADDR, self.src_port, self.src.ca, self.src_sni)
        mp = multiprocessing.get_context("fork")
        self.mp = mp
        per = a.rate / a.writers
        self.load_stop = mp.Event()
        for i in range(a.writers):
            w = Worker(mp, "writer %d" % (i + 1), load_worker, (
                {"endpoint": src_ep, "cert": cert, "key": key,
                 "password": SRC_DB_PASS, "rate": per, "keys": a.keys,
                 "value_size": a.value_size, "seed": i + 1},
                self.load_stop), self.load_stop)
            self.workers.append(w)
            w.wait_ready()
        log("== write load: %d writer(s), %g writes/s in all, %d keys, "
            "%d-byte values" % (a.writers, a.rate, a.keys, a.value_size))
        time.sleep(a.prefill)

        if a.source_only:
            reader = {"endpoint": src_ep, "cert": cert, "key": key,
                      "password": SRC_DB_PASS}
        else:
            log("== destination database on %s:%d replicating the source"
                % (DST_ADDR, self.dst_port))
            uri = "redis://:%s@%s:%d" % (SRC_DB_PASS, SRC_ADDR,
                                         self.src_port)
            obj = self.dst.create_db({
                "name": "replica", "port": self.dst_port,
                "tls_mode": "enabled", "memory_size": MEMORY,
                "data_persistence": "snapshot",
                "replica_sources": [{
                    "uri": uri, "encryption": True, "server_cert": src_ca,
                    "replication_tls_sni": self.src_sni}],
                "replica_sync": "enabled"})
            self.dst_uid = obj["uid"]
            if not obj.get("replica_sources") and \
                    "replica_sources" not in obj:
                self.error("the destination database does not report "
                           "replica_sources: %s" % oneline(obj))
            reader = {"endpoint": (DST_ADDR, self.dst_port, self.dst.ca,
                                   self.dst_sni)}

        self.written = mp.Value("q", 0, lock=False)
        self.seen = mp.Value("q", 0, lock=False)
        self.probe_stop_write = mp.Event()
        self.probe_stop = mp.Event()
        self.probe = Worker(mp, "probe", probe_worker, (
            {"writer": src_ep, "cert": cert, "key": key,
             "password": SRC_DB_PASS, "reader": reader,
             "interval": a.probe_ms / 1000.0, "poll": a.poll_ms / 1000.0},
            self.probe_stop_write, self.probe_stop, self.written,
            self.seen), self.probe_stop)
        self.workers.append(self.probe)
        self.probe.wait_ready()

        log("== waiting for the first sync (at most %d s)" % a.sync_timeout)
        t0 = time.monotonic()
        deadline = t0 + a.sync_timeout
        status = last_err = caught_since = None
        while True:
            self.check_alive()
            if self.dst_uid is not None:
                try:
                    rs = self.api_source()
                    status = rs.get("status") if rs else None
                    last_err = rs.get("last_error") if rs else None
                except Exception as e:
                    status, last_err = None, str(e)
            caught = self.written.value > 0 and \
                self.seen.value >= self.written.value - 1
            if not caught:
                caught_since = None
            elif caught_since is None:
                caught_since = time.monotonic()
            if caught and (self.dst_uid is None or status in
                           ("in-sync", None)):
                break
            if caught and time.monotonic() - caught_since > 10:
                # The data flows but the API does not say so: measure
                # anyway, and say it.
                self.error("the probe reads back on the replica but the "
                           "API status has been %r for 10 s (last_error "
                           "%r)" % (status, last_err))
                break
            if time.monotonic() > deadline or self.probe_stop.is_set() or \
                    not self.probe.proc.is_alive():
                what = ("the probe key written on the source (seq %d) was "
                        "read back up to seq %d" % (self.written.value,
                                                    self.seen.value))
                raise SetupError(
                    "no first sync after %d s: %s; API status %r, "
                    "last_error %r; destination moatd: %s" % (
                        a.sync_timeout, what, status, last_err,
                        self.dst.log_tail()))
            time.sleep(0.2)
        self.first_sync_s = time.monotonic() - t0
        self.events.append({"t": time.monotonic(), "what": "first sync",
                            "seconds": round(self.first_sync_s, 3)})
        log("   in sync after %.1f s (API status %r)" % (
            self.first_sync_s, status))
        time.sleep(a.warmup)
        self.count("after set-up" if a.source_only else
                   "after the first sync")

    # -- phases --------------------------------------------------------------
    def phase(self, name, actions):
        """Run one phase for --duration seconds; actions: [(offset s,
        callable)], run in order at their time.  The source INFO is sampled
        every 0.1 s and the destination API every --api-interval."""
        a = self.a
        t0 = time.monotonic()
        log("== phase %r: %g s" % (name, a.duration))
        pending = sorted(actions, key=lambda x: x[0])
        next_api = t0
        next_info = t0
        while True:
            now = time.monotonic()
            if now >= t0 + a.duration:
                break
            while pending and now >= t0 + pending[0][0]:
                _, fn = pending.pop(0)
                fn()
                now = time.monotonic()
            if now >= next_info:
                self.sample_info()
                next_info = now + 0.1
            if now >= next_api:
                self.sample_api()
                self.check_alive()
                next_api = now + a.api_interval
            time.sleep(max(0.0, min(0.02, t0 + a.duration - now)))
        t1 = time.monotonic()
        self.phases.append({"name": name, "t0": t0, "t1": t1})
        self.count("after %s" % name)

    def rotate(self, cluster, cert_name):
        t = time.monotonic()
        try:
            st, body = cluster.api("POST", "/v1/cluster/certificates/rotate",
                                   {"name": cert_name})
        except Exception as e:
            st, body = None, "%s: %s" % (type(e).__name__, e)
        dt = time.monotonic() - t
        ev = {"t": t, "what": "rotate", "cluster": cluster.role,
              "name": cert_name, "status": st, "seconds": round(dt, 4)}
        if st == 200 and isinstance(body, dict):
            for c in body.get("certificates") or []:
                if c.get("name") == cert_name:
                    ev["version"] = c.get("version")
        else:
            ev["error"] = oneline(body)
            self.error("rotate %s on the %s: HTTP %s %s" % (
                cert_name, cluster.role, st, oneline(body)))
        self.events.append(ev)

    def cut(self):
        t = time.monotonic()
        before = self.info_samples[-1] if self.info_samples else None
        try:
            c = unix_resp(self.src.shard_sock(self.src_uid), SRC_DB_PASS)
            try:
                r = c.call("CLIENT", "KILL", "TYPE", "replica")
            finally:
                c.close()
        except Exception as e:
            r = RespError("%s: %s" % (type(e).__name__, e))
        ev = {"t": t, "what": "cut", "killed": r if isinstance(r, int)
              else None, "reply": str(r),
              "sync_full_before": before[2] if before else None,
              "sync_partial_ok_before": before[3] if before else None}
        if isinstance(r, RespError):
            self.error("CLIENT KILL TYPE replica: %s" % r)
        log("   link cut: CLIENT KILL TYPE replica -> %s" % r)
        self.events.append(ev)

    def measure(self):
        a = self.a
        self.phase("steady", [])
        rot = []
        for i in range(a.rotations):
            at = (i + 0.5) * a.duration / a.rotations
            if i % 2 == 0:
                rot.append((at, lambda: self.rotate(self.src, "proxy")))
            else:
                rot.append((at, lambda: self.rotate(self.dst, "syncer")))
        self.phase("rotations", rot)
        cuts = []
        for i in range(a.cuts):
            off = min(1.0, a.duration / 4) + i * a.duration / a.cuts
            cuts.append((off, self.cut))
        self.phase("link cut", cuts)

    def finish(self):
        """Stop the load, then one last probe, wait until the reader has
        seen it, stop the probe, and collect what every worker measured."""
        self.load_stop.set()
        self.load_results = [w.finish() for w in self.workers
                             if w is not self.probe]
        time.sleep(max(self.a.probe_ms / 1000.0 * 3, 0.05))
        self.probe_stop_write.set()
        deadline = time.monotonic() + self.a.drain_timeout
        while self.seen.value < self.written.value and \
                time.monotonic() < deadline and self.probe.proc.is_alive():
            time.sleep(0.05)
        self.drained = self.seen.value >= self.written.value
        self.probe_result = self.probe.finish() or {}
        self.count("at the end (load stopped, probe drained)")
        self.sample_api()
        self.compare()
        self.adm_status = None
        adm = os.path.join(os.path.dirname(self.a.moatd), "moatadm")
        if self.dst_uid is not None and os.access(adm, os.X_OK):
            try:
                r = subprocess.run([adm, "--data-dir", self.dst.data,
                                    "status"], stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True,
                                   timeout=20)
                self.adm_status = (r.stdout + r.stderr).strip()
            except (OSError, subprocess.TimeoutExpired) as e:
                self.adm_status = "moatadm status: %s" % e

    def compare(self):
        """Every key of the keyspace on both shards (unix sockets), and
        DEBUG DIGEST where the shards allow it."""
        self.data_check = {}
        if self.dst_uid is None:
            return
        dc = self.data_check
        try:
            s = unix_resp(self.src.shard_sock(self.src_uid), SRC_DB_PASS,
                          timeout=30)
            d = unix_resp(self.dst.shard_sock(self.dst_uid), timeout=30)
        except Exception as e:
            dc["error"] = "%s: %s" % (type(e).__name__, e)
            return
        try:
            diff = 0
            keys = ["k:%d" % i for i in range(self.a.keys)] + [PROBE_KEY]
            for i in range(0, len(keys), 1000):
                part = keys[i:i + 1000]
                a, b = s.call("MGET", *part), d.call("MGET", *part)
                if isinstance(a, RespError) or isinstance(b, RespError):
                    dc["error"] = "MGET: %s / %s" % (a if isinstance(
                        a, RespError) else "ok", b)
                    return
                diff += sum(1 for x, y in zip(a, b) if x != y)
            dc["keys_compared"] = len(keys)
            dc["keys_different"] = diff
            dc["dbsize"] = [s.call("DBSIZE"), d.call("DBSIZE")]
            ds, dd = s.call("DEBUG", "DIGEST"), d.call("DEBUG", "DIGEST")
            if isinstance(ds, RespError) or isinstance(dd, RespError):
                # Redis 7 refuses DEBUG unless enable-debug-command allows
                # it: keep the first sentence of the reason.
                dc["digest"] = "unavailable (%s)" % str(
                    ds if isinstance(ds, RespError) else dd).split(".")[0]
            else:
                dc["digest"] = "equal" if ds == dd else "different"
        except Exception as e:
            dc["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            s.close()
            d.close()

    # -- results -------------------------------------------------------------
    def results(self):
        pr = self.probe_result
        samples = pr.get("samples") or []
        unseen = pr.get("unseen") or []
        out = {"phases": []}
        for ph in self.phases:
            t0, t1 = ph["t0"], ph["t1"]
            lags = [(ts - t0, (tv - ts) * 1000.0) for _, ts, tv in samples
                    if t0 <= ts < t1]
            un = [ts for _, ts in unseen if t0 <= ts < t1]
            api = [x for x in self.api_samples if t0 <= x[0] < t1]
            api_lags = [x[2] for x in api if isinstance(x[2], (int, float))]
            statuses = {}
            for x in api:
                statuses[x[1]] = statuses.get(x[1], 0) + 1
            errors = sorted({x[3] for x in api if x[3]})
            # Writes in the 0.1 s buckets that lie wholly in the phase.
            sent, lo, hi = 0, math.ceil(t0 * 10), math.floor(t1 * 10) - 1
            for lr in self.load_results:
                for b, n in (lr or {}).get("buckets", {}).items():
                    if lo <= b <= hi:
                        sent += n
            evs = [e for e in self.events if t0 <= e["t"] < t1]
            rot = [e for e in evs if e["what"] == "rotate"]
            cuts = [e for e in evs if e["what"] == "cut"]
            r = {"name": ph["name"], "seconds": round(t1 - t0, 3),
                 "lag_ms": lag_stats([l for _, l in lags]),
                 "unseen": len(un),
                 "api": {"samples": len(api), "statuses": statuses,
                         "lag_ms": lag_stats(api_lags),
                         "last_errors": errors},
                 "writes_per_s": sent / ((hi - lo + 1) / 10.0)
                 if hi >= lo else None,
                 "rotations": [{k: v for k, v in e.items() if k != "t"}
                               for e in rot],
                 "cuts": [], "lags": [[round(x, 4), round(y, 3)]
                                      for x, y in lags]}
            for e in cuts:
                c = {k: v for k, v in e.items() if k != "t"}
                back = None
                for t, conn, full, part in self.info_samples:
                    if t <= e["t"]:
                        continue
                    if (full is not None and c["sync_full_before"]
                            is not None and full > c["sync_full_before"]) \
                            or (part is not None and
                                c["sync_partial_ok_before"] is not None and
                                part > c["sync_partial_ok_before"]):
                        back = t - e["t"]
                        c["resync"] = ("full" if full > c["sync_full_before"]
                                       else "partial")
                        break
                c["link_back_s"] = round(back, 3) if back is not None \
                    else None
                # The probes written after the cut: the worst is what a
                # client saw of the reconnection.
                after = [l for x, l in lags if x + t0 >= e["t"]]
                c["worst_lag_after_ms"] = max(after) if after else None
                r["cuts"].append(c)
            out["phases"].append(r)
        return out


# ---------------------------------------------------------------------------
# report

def fmt(v, how="f1"):
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


def machine_info(args):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rev = cmd_out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", REPO, "status", "--porcelain",
                     "--untracked-files=no"])
    return [
        ("nproc", str(os.cpu_count())),
        ("cpu", cpu),
        ("kernel", platform.release()),
        ("openssl", cmd_out(["openssl", "version"])),
        ("redis-server", cmd_out(["redis-server", "--version"])),
        ("python", platform.python_version()),
        ("moat", "%s%s (%s)" % (rev, " + local changes" if dirty else "",
                                args.moatd)),
        ("loadavg at start", open("/proc/loadavg").read().strip()),
    ]


def ratio(a, b):
    return a / b if a is not None and b else None


def report(args, run, res, info, started, elapsed):
    a = args
    out = []
    title = "# moat replication lag — %s\n" % started.strftime(
        "%Y-%m-%d %H:%M:%S")
    out.append(title)
    if a.source_only:
        out.append("**--source-only smoke run: no replication.** The probe "
                   "is read back from the source endpoint itself, so the "
                   "\"lag\" below is the measuring floor (two TLS round "
                   "trips and the poll interval), not replication.\n")
    out.append(
        "Source: a single-node cluster on %s (`%s`), database on port %d, "
        "client certificates required (the destination cluster's CA and "
        "the bench's writer leaf), password. Destination: a single-node "
        "cluster on %s (`%s`)%s. Write load: %d writer(s), %g writes/s in "
        "all (SET 90 %%, DEL 10 %%, %d keys, %d-byte values), TLS with a "
        "client certificate. Probe: a SET of `%s` = `<seq> <monotonic "
        "ns>` every %g ms on the source, a GET on the %s every %g ms. "
        "%g s per phase. Total %.0f s.\n" % (
            SRC_ADDR, SRC_FQDN, run.src_port, DST_ADDR, DST_FQDN,
            "" if a.source_only else
            ", database on port %d replicating the source over TLS "
            "(`server_cert` = the source CA, `replication_tls_sni` = `%s`, "
            "`data_persistence` snapshot), read through its TLS endpoint"
            % (run.dst_port, run.src_sni),
            a.writers, a.rate, a.keys, a.value_size, PROBE_KEY, a.probe_ms,
            "source (no replica)" if a.source_only else "replica",
            a.poll_ms, a.duration, elapsed))
    phases = res["phases"]
    steady = phases[0]["lag_ms"] if phases else {}
    out.append("## Lag as a client sees it (ms)\n")
    rows = []
    for p in phases:
        l = p["lag_ms"]
        api = p["api"]
        rows.append([p["name"], fmt(l["n"], "int"), fmt(l["p50"]),
                     fmt(l["p90"]), fmt(l["p99"]), fmt(l["max"]),
                     fmt(p["unseen"], "int"),
                     fmt(ratio(l["p50"], steady.get("p50")), "f2"),
                     fmt(ratio(l["p99"], steady.get("p99")), "f2"),
                     fmt(api["lag_ms"]["max"], "int")
                     if api["samples"] else "—",
                     ", ".join("%s ×%d" % kv for kv in
                               sorted(api["statuses"].items(),
                                      key=lambda kv: str(kv[0])))
                     or "—",
                     fmt(p["writes_per_s"], "int")])
    out.append(table(["phase", "probes", "p50", "p90", "p99", "max",
                      "unseen", "p50 / steady", "p99 / steady",
                      "API lag max", "API status (samples)", "writes/s"],
                     rows) + "\n")
    out.append(
        "A probe's lag is the arrival of the first GET on the %s that "
        "returns its seq (or a later one) minus the sending of its SET on "
        "the source: an upper bound that includes a SET and a GET round "
        "trip (median %s ms and %s ms) and up to one poll interval (%g ms). "
        "\"unseen\": probes of the phase never read back by the end. "
        "\"API lag\": the `lag` field of `replica_sources[0]` in `GET "
        "/v1/bdbs/<uid>`, sampled every %g s.\n" % (
            "source" if a.source_only else "replica",
            fmt(run.probe_result.get("write_rtt_p50") and
                run.probe_result["write_rtt_p50"] * 1000, "f3"),
            fmt(run.probe_result.get("read_rtt_p50") and
                run.probe_result["read_rtt_p50"] * 1000, "f3"),
            a.poll_ms, a.api_interval))

    out.append("## Source shard replication counters\n")
    rows = []
    for label, v in run.counters:
        d = v.get("destination") or {}
        rows.append([label, fmt(v.get("sync_full"), "int"),
                     fmt(v.get("sync_partial_ok"), "int"),
                     fmt(v.get("sync_partial_err"), "int"),
                     fmt(v.get("connected_slaves"), "int"),
                     d.get("master_link_status") or d.get("error") or "—"
                     if d else "—"])
    out.append(table(["when", "sync_full", "sync_partial_ok",
                      "sync_partial_err", "connected replicas",
                      "destination master_link_status"], rows,
                     numeric=False) + "\n")
    base = dict(run.counters).get("after the first sync") or {}
    end = run.counters[-1][1] if run.counters else {}
    if not a.source_only and base.get("sync_full") is not None and \
            end.get("sync_full") is not None:
        full = end["sync_full"] - base["sync_full"]
        part = (end.get("sync_partial_ok") or 0) - \
            (base.get("sync_partial_ok") or 0)
        out.append("**Full resyncs after the first sync: %d** (partial: %d; "
                   "link cuts: %d; rotations: %d).\n" % (
                       full, part, sum(len(p["cuts"]) for p in phases),
                       sum(len(p["rotations"]) for p in phases)))

    out.append("## Rotations and link cuts\n")
    rows = []
    for p in phases:
        rot = p["rotations"]
        for who, name in (("source", "proxy"), ("destination", "syncer")):
            rs = [e for e in rot if e["cluster"] == who and e["name"] == name]
            if not rs:
                continue
            ok = [e for e in rs if e["status"] == 200]
            secs = sorted(e["seconds"] * 1000 for e in rs)
            rows.append([p["name"], "rotate %s %s" % (who, name),
                         "%d (%d failed)" % (len(rs), len(rs) - len(ok)),
                         "call median %s ms, max %s ms" % (
                             fmt(statistics.median(secs)), fmt(secs[-1]))])
        for c in p["cuts"]:
            if c.get("killed") == 0:
                how = "no replica connection on the source to cut"
            elif c.get("link_back_s") is None:
                how = "no new sync on the source by the end of the phase"
            else:
                how = "link back (a new %s sync on the source) after %s s" \
                    % (c.get("resync"), fmt(c.get("link_back_s"), "f2"))
            how += "; worst probe lag after the cut %s ms" % fmt(
                c.get("worst_lag_after_ms"))
            rows.append([p["name"], "CLIENT KILL TYPE replica",
                         "killed %s" % c.get("reply"), how])
    if not rows:
        rows.append(["—", "none", "", ""])
    out.append(table(["phase", "action", "count", "how"], rows,
                     numeric=False) + "\n")
    errs = [(p["name"], e) for p in phases for e in p["api"]["last_errors"]]
    if errs:
        out.append("API `last_error` seen:\n")
        for name, e in errs:
            out.append("- %s: %s" % (name, e))
        out.append("")

    out.append("## End state\n")
    pr = run.probe_result
    lines = [
        "%s: %s s" % ("probe first read back" if a.source_only else
                      "first sync (probe read back on the replica)",
                      fmt(getattr(run, "first_sync_s", None), "f2")),
        "probe: %d written, last seen %d, drained at the end: %s" % (
            pr.get("written", 0), pr.get("seen", 0),
            "yes" if run.drained else "no (after %g s)" % a.drain_timeout),
        "probe errors: write %d (reconnects %d), read %d (reconnects %d)" % (
            pr.get("write_errors", 0), pr.get("write_reconnects", 0),
            pr.get("read_errors", 0), pr.get("read_reconnects", 0)),
    ]
    for i, lr in enumerate(run.load_results):
        if lr:
            lines.append(
                "writer %d: %d writes, %d errors, %d reconnects, %d dropped "
                "(more than 1 s behind), batch round trip p50 %s ms%s" % (
                    i + 1, lr["sent"], lr["errors"], lr["reconnects"],
                    lr["dropped"], fmt(lr["batch_rtt_p50"] and
                                       lr["batch_rtt_p50"] * 1000, "f2"),
                    "; first error: " + lr["first_error"]
                    if lr.get("first_error") else ""))
        else:
            lines.append("writer %d: no result" % (i + 1))
    dc = getattr(run, "data_check", {})
    if dc:
        if "error" in dc:
            lines.append("data check: %s" % dc["error"])
        if "keys_compared" in dc:
            lines.append("data check (both shards, unix sockets): %d keys "
                         "compared, %d different; DBSIZE %s / %s; DEBUG "
                         "DIGEST %s" % (dc["keys_compared"],
                                        dc["keys_different"],
                                        dc["dbsize"][0], dc["dbsize"][1],
                                        dc.get("digest", "—")))
    for l in lines:
        out.append("- " + l)
    out.append("")
    if getattr(run, "adm_status", None):
        out.append("`moatadm status` on the destination at the end:\n")
        out.append("```\n%s\n```\n" % run.adm_status)
    out.append("## Machine\n")
    out.append(table(["", ""], [[k, v.replace("|", "/")] for k, v in info],
                     numeric=False) + "\n")
    if run.errors:
        out.append("## Errors\n")
        for e in run.errors:
            out.append("- " + e)
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------

def main():
    default_moatd = os.path.join(os.environ.get("MOAT_BUILD") or
                                 os.path.join(REPO, "build"), "moatd")
    ap = argparse.ArgumentParser(
        description="moat Replica Of: end-to-end replication lag under a "
        "steady write load, steady / during certificate rotations / after "
        "a link cut. A figure, not a test.")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds per phase (default 30, --quick 5)")
    ap.add_argument("--rate", type=float, default=2000,
                    help="writes/s to the source, all writers together "
                    "(default 2000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 5 s per phase, shorter waits")
    ap.add_argument("--writers", type=int, default=2,
                    help="write-load clients, each its own process and TLS "
                    "connection (default 2)")
    ap.add_argument("--keys", type=int, default=10000,
                    help="keyspace of the write load (default 10000)")
    ap.add_argument("--value-size", type=int, default=100,
                    help="bytes per value (default 100)")
    ap.add_argument("--probe-ms", type=float, default=10,
                    help="a timestamped probe write every N ms (default 10)")
    ap.add_argument("--poll-ms", type=float, default=1,
                    help="read the probe on the replica every N ms "
                    "(default 1)")
    ap.add_argument("--rotations", type=int, default=20,
                    help="certificate rotations in the rotation phase, "
                    "alternating source proxy / destination syncer "
                    "(default 20: 10 of each)")
    ap.add_argument("--cuts", type=int, default=1,
                    help="link cuts in the last phase (default 1)")
    ap.add_argument("--api-interval", type=float, default=0.5,
                    help="seconds between GET /v1/bdbs/<uid> samples "
                    "(default 0.5)")
    ap.add_argument("--sync-timeout", type=float, default=None,
                    help="seconds to wait for the first sync (default 60, "
                    "--quick 30)")
    ap.add_argument("--source-only", action="store_true",
                    help="smoke check without replication: no destination "
                    "database; the probe is read back from the source "
                    "(measures the floor; exercises everything else)")
    ap.add_argument("--moatd", default=default_moatd,
                    help="moatd binary (default $MOAT_BUILD/moatd, else "
                    "build/moatd)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="directory for replication-<timestamp>.md/.json")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep the work dir (moatd and shard logs)")
    a = ap.parse_args()
    if a.duration is None:
        a.duration = 5.0 if a.quick else 30.0
    if a.sync_timeout is None:
        a.sync_timeout = 30.0 if a.quick else 60.0
    a.prefill = 1.0 if a.quick else 3.0
    a.warmup = 1.0 if a.quick else 2.0
    a.drain_timeout = 15.0
    for name, v, lo in (("--duration", a.duration, 1), ("--rate", a.rate, 1),
                        ("--writers", a.writers, 1), ("--keys", a.keys, 1),
                        ("--value-size", a.value_size, 1),
                        ("--probe-ms", a.probe_ms, 1),
                        ("--poll-ms", a.poll_ms, 0.1),
                        ("--rotations", a.rotations, 0),
                        ("--cuts", a.cuts, 0),
                        ("--api-interval", a.api_interval, 0.05)):
        if v < lo:
            ap.error("%s must be at least %g" % (name, lo))
    if a.value_size > 4000:
        ap.error("--value-size must be at most 4000")
    a.moatd = os.path.abspath(a.moatd)
    if not os.access(a.moatd, os.X_OK):
        sys.exit("replication_lag: no %s: build it (make all), or point "
                 "--moatd / MOAT_BUILD at another build" % a.moatd)
    for tool in ("redis-server", "openssl"):
        if shutil.which(tool) is None:
            sys.exit("replication_lag: %s not found; run bench/deps" % tool)

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    started = datetime.datetime.now()
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="moat-repl-", dir="/tmp")
    run = Run(a, tmp)
    status = 0
    try:
        info = machine_info(a)
        try:
            run.setup()
        except SetupError as e:
            log("replication_lag: set-up failed: %s" % e)
            status = 2
            return status
        run.measure()
        run.finish()
        res = run.results()
        info.append(("loadavg at end", open("/proc/loadavg").read().strip()))
        md = report(a, run, res, info, started, time.monotonic() - t_start)
        print(md)
        os.makedirs(a.out, exist_ok=True)
        stamp = started.strftime("%Y%m%d-%H%M%S")
        path = os.path.join(a.out, "replication-%s.md" % stamp)
        with open(path, "w") as f:
            f.write(md)
        pr = {k: v for k, v in run.probe_result.items()
              if k not in ("samples", "unseen")}
        with open(os.path.join(a.out, "replication-%s.json" % stamp),
                  "w") as f:
            json.dump({
                "args": vars(a), "machine": info,
                "source": {"addr": SRC_ADDR, "fqdn": SRC_FQDN,
                           "port": run.src_port},
                "destination": None if a.source_only else {
                    "addr": DST_ADDR, "fqdn": DST_FQDN,
                    "port": run.dst_port, "sni": run.src_sni},
                "first_sync_s": getattr(run, "first_sync_s", None),
                "phases": res["phases"],
                "counters": [{"when": l, **v} for l, v in run.counters],
                "api_samples": [[round(t - run.t_origin, 3), s, lag, e]
                                for t, s, lag, e in run.api_samples],
                "probe": pr,
                "writers": [{k: v for k, v in (lr or {}).items()
                             if k != "buckets"} for lr in run.load_results],
                "data_check": getattr(run, "data_check", {}),
                "moatadm_status": run.adm_status,
                "errors": run.errors}, f, indent=1, default=str)
        log("replication_lag: wrote %s" % path)
        return status
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        for w in run.workers:
            w.stop_ev.set()
        for w in run.workers:
            w.kill()
        for cl in (run.dst, run.src):
            if cl is not None:
                cl.stop()
        if a.keep_tmp:
            log("replication_lag: work dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
