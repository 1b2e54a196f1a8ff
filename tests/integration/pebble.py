"""Pebble (Debian's 2.4, /usr/bin/pebble) as the ACME server of the tests.

A Pebble object runs two processes on loopback, each stopped by PID:

    pebble-challtestsrv  only its mock DNS (and its management API): every
                         A query answers one address (default_ipv4,
                         127.0.0.1 unless told), AAAA answers nothing, so
                         pebble validates against a moatd node; TXT records
                         are set through add_txt/clear_txt for dns-01.
    pebble               the ACME server, resolving through that DNS, with
                         PEBBLE_VA_NOSLEEP=1 and its default 5 % of
                         rejected nonces (a client must retry badNonce).

Pebble's own HTTPS certificate comes from a CA made here (certgen):
`ca_pem` / `ca_file` is what a client (moat's `ca_bundle`) must trust to
reach `directory_url`.  `roots_pem()` is the root that signs the
certificates pebble issues; pebble makes a new one each time it starts,
and forgets its accounts and orders.  `stop()` / `start()` restart pebble
on the same ports; `close()` stops both and removes the files.

The fixture `make_pebble` (import it into a test module) makes Pebbles
and closes each at teardown, also when the test fails.

Run this file (`/usr/bin/python3 pebble.py`) for a self-check.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certgen  # noqa: E402
from moatlib import (free_port, port_free_on, short_tmpdir,  # noqa: E402
                     stop_process, wait_for)

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def free_udp_tcp_port(addr="127.0.0.1"):
    """A port free for both TCP and UDP on addr (the mock DNS binds both)."""
    for _ in range(200):
        port = free_port(addr)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((addr, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for TCP and UDP on %s" % addr)


def free_port_on_all(addrs):
    """A TCP port free on every address of addrs a moment ago."""
    for _ in range(200):
        port = free_port(addrs[0])
        if all(port_free_on(a, port) for a in addrs[1:]):
            return port
    raise RuntimeError("no port free on all of %s" % (addrs,))


def stop_pid(proc):
    """SIGTERM by PID, SIGKILL after STOP_TIMEOUT; the exit status."""
    if proc is None:
        return None
    stop_process(proc, STOP_TIMEOUT)
    return proc.returncode


def dns_query(server, port, name, qtype=1, timeout=1.0):
    """The answers (IPv4 strings for A, text for TXT) a DNS server at
    server:port gives for name; raises OSError when it does not answer."""
    qid = os.getpid() & 0xffff
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        data, _ = s.recvfrom(4096)
    ancount = struct.unpack(">H", data[6:8])[0]
    pos = len(q)               # the question is echoed as sent
    out = []
    for _ in range(ancount):
        if data[pos] & 0xc0 == 0xc0:
            pos += 2
        else:
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        rdata = data[pos:pos + rdlen]
        pos += rdlen
        if rtype == 1:
            out.append(".".join(str(b) for b in rdata))
        elif rtype == 16:
            out.append(rdata[1:1 + rdata[0]].decode())
    return out


class Pebble:
    """pebble + pebble-challtestsrv on loopback (see the module docstring).

    http_port: where pebble's http-01 validation connects (what moat's
    http_port must be); by default a port free on 127.0.0.1 and every
    address of node_addrs.  tls_port: where tls-alpn-01 validation connects
    (a node's API port in the tests); by default a free port.
    default_ipv4: what every name resolves to."""

    def __init__(self, http_port=None, tls_port=None,
                 default_ipv4="127.0.0.1", node_addrs=("127.0.0.1",)):
        self.dir = short_tmpdir("moat-pebble-")
        addrs = ["127.0.0.1"] + [a for a in node_addrs if a != "127.0.0.1"]
        self.http_port = http_port or free_port_on_all(addrs)
        self.tls_port = tls_port or free_port_on_all(addrs)
        self.port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_udp_tcp_port()
        self.chall_mgmt_port = free_port()
        self.default_ipv4 = default_ipv4
        self.proc = None
        self.chall = None
        self.starts = 0
        # Pebble's HTTPS: our own CA, a leaf for 127.0.0.1 and localhost.
        self.ca = certgen.make_ca("moat pebble HTTPS CA")
        leaf = certgen.make_leaf(self.ca, sans=["DNS:localhost",
                                                "IP:127.0.0.1"])
        self.ca_file = self._write("ca.pem", self.ca.cert_pem)
        cert = self._write("cert.pem", leaf.cert_pem)
        key = self._write("key.pem", leaf.key_pem)
        self.config = self._write("pebble-config.json", json.dumps({
            "pebble": {
                "listenAddress": "127.0.0.1:%d" % self.port,
                "managementListenAddress": "127.0.0.1:%d" % self.mgmt_port,
                "certificate": cert,
                "privateKey": key,
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }}, indent=2))

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- addresses ---------------------------------------------------------
    @property
    def ca_pem(self):
        """The CA of pebble's own HTTPS (moat's ca_bundle)."""
        return self.ca.cert_pem

    @property
    def directory_url(self):
        return "https://127.0.0.1:%d/dir" % self.port

    @property
    def chall_url(self):
        return "http://127.0.0.1:%d" % self.chall_mgmt_port

    # -- processes ---------------------------------------------------------
    def _spawn(self, argv, logname, env=None):
        log = open(os.path.join(self.dir, logname), "ab")
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, env=env,
                                    start_new_session=True)
        finally:
            log.close()

    def _start_chall(self):
        self.chall = self._spawn(
            [CHALLTESTSRV, "-defaultIPv4", self.default_ipv4,
             "-defaultIPv6", "", "-dns01", "127.0.0.1:%d" % self.dns_port,
             "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-management", "127.0.0.1:%d" % self.chall_mgmt_port],
            "challtestsrv.log")

        def up():
            if self.chall.poll() is not None:
                raise AssertionError("pebble-challtestsrv exited with %s:\n%s"
                                     % (self.chall.returncode,
                                        self.log("challtestsrv.log")))
            try:
                with socket.create_connection(
                        ("127.0.0.1", self.chall_mgmt_port), timeout=0.5):
                    pass
                return dns_query("127.0.0.1", self.dns_port,
                                 "ready.moat.test", timeout=0.5)
            except OSError:
                return False
        if not wait_for(up, READY_TIMEOUT, 0.1):
            stop_pid(self.chall)
            self.chall = None
            raise AssertionError("pebble-challtestsrv not ready after %.0fs:"
                                 "\n%s" % (READY_TIMEOUT,
                                           self.log("challtestsrv.log")))

    def start(self):
        """Start challtestsrv (if it is not running) and pebble, on the
        ports chosen at construction; returns once the directory answers."""
        assert self.proc is None, "pebble already running"
        if self.chall is None:
            self._start_chall()
        env = dict(os.environ)
        for v in ("PEBBLE_VA_ALWAYS_VALID", "PEBBLE_WFE_NONCEREJECT",
                  "PEBBLE_VA_SLEEPTIME"):
            env.pop(v, None)
        env["PEBBLE_VA_NOSLEEP"] = "1"
        self.proc = self._spawn(
            [PEBBLE, "-config", self.config,
             "-dnsserver", "127.0.0.1:%d" % self.dns_port],
            "pebble.log", env=env)
        self.starts += 1

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("pebble exited with %s:\n%s" % (
                    self.proc.returncode, self.log()))
            try:
                r = requests.get(self.directory_url, verify=self.ca_file,
                                 timeout=2)
                return r.status_code == 200 and "newOrder" in r.json()
            except (requests.RequestException, ValueError):
                return False
        if not wait_for(up, READY_TIMEOUT, 0.1):
            self.stop()
            raise AssertionError("pebble directory %s not answering after "
                                 "%.0fs:\n%s" % (self.directory_url,
                                                 READY_TIMEOUT, self.log()))
        return self

    def stop(self):
        """Stop pebble (by PID) and wait for it; challtestsrv keeps running.
        Returns pebble's exit status."""
        p, self.proc = self.proc, None
        return stop_pid(p)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        self.stop()
        c, self.chall = self.chall, None
        stop_pid(c)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self, name="pebble.log", tail=4000):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()[-tail:]
        except FileNotFoundError:
            return ""

    def logs(self):
        return "== pebble ==\n%s\n== challtestsrv ==\n%s" % (
            self.log(), self.log("challtestsrv.log", 1500))

    # -- pebble's management interface ---------------------------------------
    def roots_pem(self):
        """The root that signs what pebble issues (new at each start)."""
        r = requests.get("https://127.0.0.1:%d/roots/0" % self.mgmt_port,
                         verify=self.ca_file, timeout=10)
        assert r.status_code == 200, "pebble /roots/0: %d %s" % (
            r.status_code, r.text[:500])
        assert "BEGIN CERTIFICATE" in r.text, r.text[:500]
        return r.text

    def roots_file(self, name=None):
        """roots_pem() written to a file in the temp dir (for cafile=)."""
        return self._write(name or "root-%d.pem" % self.starts,
                           self.roots_pem())

    # -- challtestsrv's mock DNS -------------------------------------------
    def _chall(self, path, body):
        r = requests.post(self.chall_url + path, json=body, timeout=10)
        assert r.status_code == 200, "challtestsrv %s %r: %d %s" % (
            path, body, r.status_code, r.text[:500])

    def set_default_ipv4(self, addr):
        """Every A query answers addr from now on."""
        self._chall("/set-default-ipv4", {"ip": addr})
        self.default_ipv4 = addr

    @staticmethod
    def _txt_host(host):
        host = host.rstrip(".")
        if not host.startswith("_acme-challenge."):
            host = "_acme-challenge." + host
        return host + "."

    def add_txt(self, host, value):
        """TXT of _acme-challenge.<host> (host may already carry the label)."""
        self._chall("/set-txt", {"host": self._txt_host(host), "value": value})

    def clear_txt(self, host):
        self._chall("/clear-txt", {"host": self._txt_host(host)})

    def resolve(self, name, qtype=1):
        """What pebble's resolver gets for name (A by default, 16: TXT)."""
        return dns_query("127.0.0.1", self.dns_port, name, qtype)


@pytest.fixture
def make_pebble():
    """Factory: make_pebble(**Pebble kwargs, start=True) -> a Pebble;
    every one is closed (processes stopped by PID) at teardown."""
    made = []

    def make(start=True, **kw):
        pb = Pebble(**kw)
        made.append(pb)
        if start:
            pb.start()
        return pb
    yield make
    for pb in made:
        pb.close()


def selfcheck():
    """Start pebble and challtestsrv, check the directory, the root, the
    mock DNS and a restart on the same ports; stop both."""
    pb = Pebble()
    try:
        pb.start()
        d = requests.get(pb.directory_url, verify=pb.ca_file, timeout=5).json()
        for k in ("newNonce", "newAccount", "newOrder"):
            assert k in d, d
        print("directory", pb.directory_url, sorted(d))
        root1 = pb.roots_pem()
        print("root", certgen.load_pem_chain(root1)[0].subject.rfc4514_string())
        assert pb.resolve("cluster.moat.test") == ["127.0.0.1"]
        pb.set_default_ipv4("127.0.0.2")
        assert pb.resolve("anything.moat.test") == ["127.0.0.2"]
        pb.add_txt("cluster.moat.test", "abc")
        assert pb.resolve("_acme-challenge.cluster.moat.test", 16) == ["abc"]
        pb.clear_txt("cluster.moat.test")
        assert pb.resolve("_acme-challenge.cluster.moat.test", 16) == []
        pid = pb.proc.pid
        rc = pb.stop()
        try:
            requests.get(pb.directory_url, verify=pb.ca_file, timeout=2)
            raise AssertionError("directory still answers after stop")
        except requests.ConnectionError:
            pass
        print("stopped pid", pid, "exit", rc)
        pb.start()
        root2 = pb.roots_pem()
        assert root2 != root1, "a restarted pebble has a new root"
        print("restarted on", pb.port, "pid", pb.proc.pid, "new root ok")
        print("self-check OK")
    except Exception:
        print(pb.logs())
        raise
    finally:
        pb.close()
    assert pb.proc is None and pb.chall is None


if __name__ == "__main__":
    selfcheck()


def check_chain(chain, root):
    """Each certificate of chain signed by the next, the last by root
    (pebble's): an AssertionError that names the link otherwise."""
    for cert, issuer in zip(chain, chain[1:] + [root]):
        if cert.subject == root.subject:
            break
        assert certgen.verify_issued_by(cert, issuer), \
            "%s is not signed by %s (pebble's root: %s)" % (
                cert.subject.rfc4514_string(),
                issuer.subject.rfc4514_string(),
                root.subject.rfc4514_string())
