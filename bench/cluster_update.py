#!/usr/bin/python3
"""Time from the start of a certificate update call to every node serving
the new certificate, on a 3-node cluster sharing a 3-member etcd, all on
loopback (127.0.0.1-3).  The call returns when every live node reports it
serves the change; this script also checks each node's API port with a
real handshake after every call.

    bench/cluster_update.py [--build build] [--n 20]

Prints the median, min and max of N updates (alternating the node the
call goes through).  Every process it starts is stopped by PID.
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def fingerprint(addr, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((addr, port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def unix_call(sock, method, path, body=None):
    import http.client

    class C(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(sock)
    c = C("localhost", timeout=60)
    c.request(method, path, body=json.dumps(body) if body is not None else None)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data or b"{}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    moatd = os.path.join(a.build, "moatd")
    tmp = tempfile.mkdtemp(prefix="moat-cu-", dir="/tmp")
    procs = []

    def stop_all():
        for p in reversed(procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)

    try:
        addrs = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        cp = [free_port(x) for x in addrs]
        pp = [free_port(x) for x in addrs]
        init = ",".join("m%d=http://%s:%d" % (i, addrs[i], pp[i]) for i in range(3))
        for i in range(3):
            log = open(os.path.join(tmp, "etcd%d.log" % i), "wb")
            procs.append(subprocess.Popen(
                ["etcd", "--name", "m%d" % i, "--data-dir",
                 os.path.join(tmp, "etcd%d" % i),
                 "--listen-client-urls", "http://%s:%d" % (addrs[i], cp[i]),
                 "--advertise-client-urls", "http://%s:%d" % (addrs[i], cp[i]),
                 "--listen-peer-urls", "http://%s:%d" % (addrs[i], pp[i]),
                 "--initial-advertise-peer-urls", "http://%s:%d" % (addrs[i], pp[i]),
                 "--initial-cluster", init], stdout=log, stderr=log))
        store = "etcd://" + ",".join("%s:%d" % (addrs[i], cp[i]) for i in range(3))
        api = free_port("127.0.0.1")
        socks = []
        for i, ad in enumerate(addrs):
            d = os.path.join(tmp, "node%d" % i)
            log = open(os.path.join(tmp, "node%d.log" % i), "wb")
            procs.append(subprocess.Popen(
                [moatd, "--data-dir", d, "--addr", ad, "--api-port", str(api),
                 "--store", store], stdout=log, stderr=log))
            socks.append(os.path.join(d, "moatd.sock"))
        deadline = time.monotonic() + 60
        while not all(os.path.exists(s) for s in socks):
            if time.monotonic() > deadline:
                sys.exit("nodes did not start; logs in %s" % tmp)
            time.sleep(0.1)
        st, body = unix_call(socks[0], "POST", "/v1/bootstrap/create_cluster", {
            "action": "create_cluster", "cluster": {"name": "bench.moat.local"},
            "credentials": {"username": "admin@moat.local",
                            "password": "benchpassword"}})
        assert st == 200, body
        for s in socks[1:]:
            st, body = unix_call(s, "POST", "/v1/bootstrap/join_cluster", {
                "action": "join_cluster",
                "cluster": {"nodes": ["127.0.0.1:%d" % api]},
                "credentials": {"username": "admin@moat.local",
                                "password": "benchpassword"}})
            assert st == 200, body
        times = []
        for k in range(a.n):
            via = socks[k % 3]
            t0 = time.monotonic()
            st, body = unix_call(via, "POST", "/v1/cluster/certificates/rotate",
                                 {"name": "api"})
            dt = time.monotonic() - t0
            assert st == 200, body
            fps = {fingerprint(ad, api) for ad in addrs}
            assert len(fps) == 1, fps
            times.append(dt * 1000)
        print("update call -> all 3 nodes serving the new api certificate "
              "(rotate, via each node in turn), n=%d" % a.n)
        print("median %.1f ms   min %.1f ms   max %.1f ms" % (
            statistics.median(times), min(times), max(times)))
    finally:
        stop_all()


if __name__ == "__main__":
    main()
