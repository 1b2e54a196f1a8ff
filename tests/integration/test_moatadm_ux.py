"""moatadm as a newcomer meets it (issue 7).

Aligned tables, `?` at the prompt and on the command line, ^C and history
at the interactive prompt (driven through a pseudo-terminal), the report
of a change that not every node confirmed (exit status 3), rotation with
skipped certificates and `force`, a certificate set twice, and the policy
dry run.

Two kinds of tests:
- against a real moatd (fixtures of conftest.py, an etcd for the 409);
- against StubMoatd, a stand-in that answers on <dir>/moatd.sock exactly
  what docs/api.md's contract says, so that moatadm's side is checked on
  its own, whatever the server side does today.
"""

import errno
import fcntl
import http.server
import json
import os
import re
import select
import shutil
import signal
import socketserver
import ssl
import struct
import subprocess
import tempfile
import termios
import threading
import time

import pytest

import certgen
import moatlib
from moatlib import CERT_NAMES, MOATADM, free_port

EXIT_PARTIAL = 3


def out(p):
    return p.stdout + p.stderr


def ok(p):
    assert p.returncode == 0, "rc=%d\nstdout: %s\nstderr: %s" % (
        p.returncode, p.stdout, p.stderr)
    return p


def adm(data_dir, *words, input=None, timeout=60):
    return subprocess.run([MOATADM, "--data-dir", data_dir] + list(words),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL if input is None else None,
                          input=input)


# -- aligned tables -----------------------------------------------------------

def word_starts(line):
    """Column where each blank-separated word of line starts."""
    return [m.start() for m in re.finditer(r"\S+", line)]


def tables_in(text):
    """[(header, [rows])] for each table of upper-case titles in text."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) < 2 or line.endswith(":") or \
                not all(re.fullmatch(r"[A-Z_:()0-9]+", w) for w in words):
            continue  # "CLUSTER NODES:" titles a section, not columns
        rows = []
        for row in lines[i + 1:]:
            if not row.strip() or row.rstrip().endswith(":"):
                break
            rows.append(row)
        tables.append((line, rows))
    return tables


def assert_aligned(text, min_tables=1):
    tables = tables_in(text)
    assert len(tables) >= min_tables, text
    for header, rows in tables:
        cols = word_starts(header)
        for row in [header] + rows:
            assert row == row.rstrip(), "trailing blanks: %r" % row
        for row in rows:
            assert word_starts(row) == cols, \
                "columns do not line up:\n%s\n%s\n\nin:\n%s" % (
                    header, row, text)
    return tables


def test_status_columns_line_up(db_node):
    n = db_node
    moatlib.make_bdb(n, name="a")
    moatlib.make_bdb(n, name="a-rather-long-database-name")
    p = ok(n.adm("status"))
    tables = assert_aligned(p.stdout, min_tables=3)
    titles = [h.split()[0] for h, _ in tables]
    assert titles == ["NODE:ID", "DB:ID", "NODE:ID", "ALERT"], p.stdout
    nodes, dbs, certs, alerts = (rows for _, rows in tables)
    assert sorted(r.split()[0] for r in alerts) == [
        "cluster_acme_order_failed", "cluster_certs_about_to_expire",
        "cluster_ocsp_query_failed", "cluster_ocsp_status_revoked",
        "node_internal_certs_about_to_expire"], p.stdout
    assert len(nodes) == 1 and len(dbs) == 2, p.stdout
    # api and metrics_exporter: names of different lengths, one column.
    assert sorted(r.split()[1] for r in certs) == sorted(CERT_NAMES), p.stdout
    p = ok(n.adm("cluster", "certificate", "show"))
    assert_aligned(p.stdout)


def test_alignment_check_catches_ragged_columns():
    """The check above is not vacuous: the old single-space rows fail it."""
    ragged = ("NODE:ID NAME VERSION FINGERPRINT(SHA256)\n"
              "node:1 api v1 6D:2C\n"
              "node:1 metrics_exporter v1 D9:AA\n")
    with pytest.raises(AssertionError):
        assert_aligned(ragged)


# -- `?` on the command line and from a pipe -----------------------------------

def listed(text):
    """First word of each line of a `?` listing."""
    return [l.split()[0] for l in text.splitlines() if l.strip()]


def test_question_mark_lists_choices(ro_node):
    n = ro_node
    before = n.fingerprints()
    cases = [
        ((), {"cluster", "status", "info", "node", "help"}),
        (("cluster",), {"create", "join", "store", "certificate", "config"}),
        (("cluster", "certificate"), {"set", "show", "rotate"}),
        (("cluster", "certificate", "set"), set(CERT_NAMES)),
        (("cluster", "certificate", "rotate"),
         set(CERT_NAMES) | {"force", "<Enter>"}),
        (("cluster", "certificate", "rotate", "api"), {"force", "<Enter>"}),
        (("cluster", "config", "min_data_TLS_version"), {"1.2", "1.3"}),
        (("cluster", "config", "min_data_TLS_version", "1.3"),
         {"dry_run", "min_control_TLS_version", "<Enter>"}),
    ]
    for words, want in cases:
        p = ok(n.adm(*(words + ("?",))))
        got = set(listed(p.stdout))
        assert want <= got, (words, p.stdout)
        assert "Unknown word" not in out(p), (words, out(p))
    # Attached to a partial word: the choices that start with it.
    p = ok(n.adm("cluster", "cert?"))
    assert listed(p.stdout) == ["certificate"], p.stdout
    # Nothing ran: `rotate ?` rotated nothing.
    assert n.fingerprints() == before
    # A wrong word before the `?` is named, as a usage error.
    p = n.adm("clustr", "?")
    assert p.returncode == 2, out(p)
    assert "clustr" in p.stderr and "cluster" in p.stderr, out(p)


def test_question_mark_from_a_pipe(ro_node):
    """A line ending in `?` (piped, or pasted) lists and runs nothing."""
    n = ro_node
    before = n.fingerprints()
    p = ok(n.adm(input="cluster ?\ncluster certificate rotate ?\n"
                       "cluster certificate rotate api?\n"))
    got = listed(p.stdout)
    assert {"create", "certificate", "config"} <= set(got), p.stdout
    assert "metrics_exporter" in got and "force" in got, p.stdout
    assert "api" in got, p.stdout
    assert "Unknown word" not in out(p), out(p)
    assert "Rotated" not in out(p), out(p)
    assert n.fingerprints() == before


# -- the interactive prompt on a pseudo-terminal --------------------------------

ESC_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|[\r\x07]")
PROMPT = "moatadm> "


class Prompt:
    """moatadm's interactive prompt on a pseudo-terminal, typed at as a
    person would.  Output is matched with terminal escapes removed."""

    def __init__(self, data_dir):
        home = tempfile.mkdtemp(prefix="moat-home-", dir="/tmp")
        self.home = home
        env = dict(os.environ, TERM="xterm", HOME=home, EDITRC="/dev/null")
        pid, fd = os.forkpty()
        if pid == 0:  # child: wide terminal, so that lines never wrap
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ,
                            struct.pack("HHHH", 50, 250, 0, 0))
                os.execve(MOATADM, [MOATADM, "--data-dir", data_dir], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.raw = ""
        self.mark = 0
        self.status = None
        self.expect(PROMPT)

    def text(self):
        raw = self.raw
        i = raw.rfind("\x1b")  # leave an escape that is still arriving
        if i != -1 and not ESC_RE.match(raw, i):
            raw = raw[:i]
        return ESC_RE.sub("", raw)

    def _read(self, wait):
        r, _, _ = select.select([self.fd], [], [], wait)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        self.raw += data.decode("utf-8", "replace")
        return True

    def expect(self, what, timeout=15):
        """Waits until what (a string) appears after the last match;
        returns the text before it."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.text()
            i = t.find(what, self.mark)
            if i != -1:
                before = t[self.mark:i]
                self.mark = i + len(what)
                if what.endswith(PROMPT):
                    # libedit shows the prompt a moment before it puts
                    # the terminal in raw mode; keys typed in that moment
                    # are the terminal's (a ^C there is a signal, and the
                    # line is dropped).  A person never types that fast.
                    self.quiet(0.2)
                return before
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError("%r not seen; after the last match:\n%s"
                                     "\n\nall of it, raw:\n%r"
                                     % (what, t[self.mark:], self.raw))

    def quiet(self, seconds=0.5):
        """Reads for a while; returns what came after the last match."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self._read(0.05):
            pass
        return self.text()[self.mark:]

    def send(self, s):
        os.write(self.fd, s.encode())

    def alive(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status is None

    def wait(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.alive():
            self._read(0.05)
            assert time.monotonic() < deadline, "moatadm did not exit"
        return self.status

    def close(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def prompt_on():
    prompts = []

    def start(data_dir):
        p = Prompt(data_dir)
        prompts.append(p)
        return p
    yield start
    for p in prompts:
        p.close()


def test_prompt_question_mark(ro_node, prompt_on):
    n = ro_node
    before = n.fingerprints()
    t = prompt_on(n.data_dir)
    t.send("?")
    listing = t.expect(PROMPT)
    assert {"cluster", "status", "info", "exit", "quit"} <= \
        set(listed(listing)), listing
    assert "Unknown word" not in listing, listing

    t.send("cluster certificate set ?")
    t.expect("cluster certificate set ?\n")  # the echo, then the list
    listing = t.expect(PROMPT + "cluster certificate set ")
    assert set(CERT_NAMES) <= set(listed(listing)), listing
    t.send("\x03")  # drop the line
    t.expect("^C\n" + PROMPT)

    t.send("cluster certificate rotate ?")
    t.expect("cluster certificate rotate ?\n")
    listing = t.expect(PROMPT + "cluster certificate rotate ")
    assert "force" in listed(listing), listing
    t.send("\x03")
    t.expect("^C\n" + PROMPT)
    # Inside free text `?` is a character: a password may hold one.
    t.send("cluster create name x username y password pa?")
    rest = t.quiet()
    assert "password pa?" in rest and "<password>" not in rest, rest
    t.send("\x03")
    t.expect("^C\n" + PROMPT)
    assert n.fingerprints() == before  # `rotate ?` ran nothing
    t.send("exit\r")
    assert t.wait() == 0


def test_prompt_ctrl_c_clears_the_line(ro_node, prompt_on):
    n = ro_node
    t = prompt_on(n.data_dir)
    t.send("cluster certificate rot")
    t.expect("rot")
    t.send("\x03")
    t.expect("^C\n" + PROMPT)
    assert t.alive(), "^C ended moatadm"
    # libedit shows the prompt a moment before it reads keys; a person
    # does not type within that moment, and neither does this test.
    t.quiet(0.2)
    # Typed at once after ^C: lands on the fresh line, not the old one.
    t.send("\x03status\r")
    shown = t.expect("CLUSTER NODES:")
    assert "Unknown word" not in shown, shown
    t.expect(PROMPT)
    assert t.alive()
    t.send("\x04")  # ^D on an empty line leaves
    assert t.wait() == 0


def test_prompt_history_keeps_a_mistyped_line(ro_node, prompt_on):
    n = ro_node
    t = prompt_on(n.data_dir)
    t.send("statu\r")
    assert "Unknown word 'statu'" in t.expect(PROMPT)
    t.send("\x1b[A")  # up arrow recalls it...
    t.expect("statu")
    t.send("s\r")     # ...to be fixed
    t.expect("CLUSTER NODES:")
    t.expect(PROMPT)
    # A rejected line with a password is not kept: up recalls `status`.
    t.send("cluster create name x username y password Secret-passw0rd "
           "extra\r")
    assert "Unknown word 'extra'" in t.expect(PROMPT)
    t.send("\x1b[A")
    t.expect("status")
    assert "Secret-passw0rd" not in t.quiet()
    t.send("\x03exit\r")
    assert t.wait() == 0


# -- a stand-in moatd for moatadm's side of the contract ------------------------

class StubMoatd:
    """Answers on <dir>/moatd.sock from a table of (method, path) ->
    (status, body) and records each request (method, path, body)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="moat-stub-", dir="/tmp")
        self.routes = {}
        self.requests = []
        self.hang = threading.Event()     # set: requests get no answer
        self.release = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                stub.requests.append((self.command, self.path,
                                      json.loads(raw) if raw else None))
                if stub.hang.is_set():
                    stub.release.wait(60)
                    return
                status, body = stub.routes.get(
                    (self.command, self.path),
                    (404, {"error_code": "not_found",
                           "description": "no such route in the stub"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = serve

        class Server(socketserver.ThreadingMixIn,
                     socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(os.path.join(self.dir, "moatd.sock"), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def route(self, method, path, status, body):
        self.routes[(method, path)] = (status, body)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def stub():
    if not os.access(MOATADM, os.X_OK):
        pytest.fail("not built: %s (set MOAT_BUILD)" % MOATADM)
    s = StubMoatd()
    yield s
    s.close()


FP_NEW = ":".join(["AB"] * 32)
FP_OLD = ":".join(["01"] * 32)
FP_OTHER = ":".join(["5C"] * 32)


def node_entry(uid, status, rev, version, fp):
    return {"uid": uid, "addr": "127.0.0.%d" % uid, "status": status,
            "applied_rev": rev,
            "certificates": {"api": {"version": version,
                                     "fingerprint_sha256": fp},
                             "cm": {"version": 1,
                                    "fingerprint_sha256": FP_OTHER}}}


def partial_409(**extra):
    body = {"error_code": "not_all_nodes_updated",
            "description": "2 of 3 nodes did not confirm the change in time",
            "nodes": [node_entry(1, "updated", 42, 2, FP_NEW),
                      node_entry(2, "not_updated", 41, 1, FP_OLD),
                      node_entry(3, "down", 40, 1, FP_OLD)]}
    body.update(extra)
    return body


def row_of(text, first):
    rows = [l for l in text.splitlines() if l.split()[:1] == [first]]
    assert len(rows) == 1, "one row for %s in:\n%s" % (first, text)
    return rows[0].split()


def test_409_report_of_a_certificate_change(stub):
    stub.route("POST", "/v1/cluster/certificates/rotate", 409, partial_409(
        certificates=[{"name": "api", "version": 2,
                       "fingerprint_sha256": FP_NEW}]))
    p = adm(stub.dir, "cluster", "certificate", "rotate", "api")
    assert p.returncode == EXIT_PARTIAL, out(p)
    text = p.stdout
    assert "Rotated certificate api: version 2" in text, out(p)
    assert "change is stored" in text and "not a failure" in text, text
    assert "do not retry" in text, text
    assert "2 of 3" in text, text
    assert "Stored certificate api: version 2, fingerprint %s" % FP_NEW \
        in text, text
    assert row_of(text, "node:2") == [
        "node:2", "127.0.0.2", "not_updated", "41", "api", "v1",
        FP_OLD[:23] + "..."], text
    assert row_of(text, "node:3")[:6] == [
        "node:3", "127.0.0.3", "down", "40", "api", "v1"], text
    assert "node:1" not in text, text   # it confirmed
    assert_aligned(text)
    # Only the changed certificate's column: cm is not shown.
    assert FP_OTHER[:23] not in text, text


def test_409_report_of_update_cert_and_of_a_policy_change(stub, tmp_path):
    leaf = certgen.make_leaf(certgen.make_ca("stub CA"),
                             sans=certgen.service_sans(moatlib.FQDN))
    pem = tmp_path / "api.pem"
    pem.write_text(leaf.combined_pem())
    stub.route("PUT", "/v1/cluster/update_cert", 409, partial_409(
        name="api", version=2, fingerprint_sha256=FP_NEW))
    p = adm(stub.dir, "cluster", "certificate", "set", "api",
            "certificate_file", str(pem))
    assert p.returncode == EXIT_PARTIAL, out(p)
    assert "Set api certificate to contents of file" in p.stdout, out(p)
    assert row_of(p.stdout, "node:2")[4:6] == ["api", "v1"], p.stdout
    moatlib.assert_no_private_key(out(p))

    stub.route("PUT", "/v1/cluster", 409, partial_409(
        cluster={"min_control_TLS_version": "1.3"}))
    p = adm(stub.dir, "cluster", "config", "min_control_TLS_version", "1.3")
    assert p.returncode == EXIT_PARTIAL, out(p)
    assert "change is stored" in p.stdout, out(p)
    assert row_of(p.stdout, "node:2") == [
        "node:2", "127.0.0.2", "not_updated", "41"], p.stdout
    assert_aligned(p.stdout)


def test_other_errors_keep_their_exit_status(stub):
    stub.route("POST", "/v1/cluster/certificates/rotate", 409,
               {"error_code": "something_else", "description": "nope"})
    p = adm(stub.dir, "cluster", "certificate", "rotate")
    assert p.returncode == 1 and "nope" in p.stderr, out(p)
    p = adm(stub.dir, "cluster", "frobnicate")
    assert p.returncode == 2, out(p)


def test_rotate_prints_skipped_and_sends_force(stub):
    stub.route("POST", "/v1/cluster/certificates/rotate", 200, {
        "certificates": [{"name": "api", "version": 4,
                          "fingerprint_sha256": FP_NEW},
                         {"name": "cm", "version": 2,
                          "fingerprint_sha256": FP_OTHER}],
        "skipped": [{"name": "proxy",
                     "reason": "supplied by the operator, not issued by "
                               "the cluster CA"}],
        "nodes": [{"uid": 1, "status": "updated"}]})
    p = ok(adm(stub.dir, "cluster", "certificate", "rotate"))
    assert "Rotated certificate api: version 4, fingerprint %s" % FP_NEW \
        in p.stdout, p.stdout
    assert "Rotated certificate cm: version 2" in p.stdout, p.stdout
    assert "Skipped certificate proxy: supplied by the operator, not " \
        "issued by the cluster CA" in p.stdout, p.stdout
    assert "force" in p.stdout, p.stdout   # how to rotate it anyway
    ok(adm(stub.dir, "cluster", "certificate", "rotate", "force"))
    ok(adm(stub.dir, "cluster", "certificate", "rotate", "proxy", "force"))
    ok(adm(stub.dir, "cluster", "certificate", "rotate", "proxy"))
    bodies = [b for m, path, b in stub.requests]
    assert bodies == [{}, {"force": True}, {"name": "proxy", "force": True},
                      {"name": "proxy"}], bodies


def test_rotate_refused_names_force(stub):
    stub.route("POST", "/v1/cluster/certificates/rotate", 403, {
        "error_code": "unsupported_rotation",
        "description": "proxy was not issued by the cluster CA; rotate it "
                       "with force to replace it"})
    p = adm(stub.dir, "cluster", "certificate", "rotate", "proxy")
    assert p.returncode == 1, out(p)
    assert "proxy was not issued by the cluster CA" in p.stderr, out(p)
    assert "cluster certificate rotate <name> force" in p.stderr, out(p)


def test_set_same_certificate_says_unchanged(stub, tmp_path):
    leaf = certgen.make_leaf(certgen.make_ca("stub CA"),
                             sans=certgen.service_sans(moatlib.FQDN))
    pem = tmp_path / "api.pem"
    pem.write_text(leaf.combined_pem())
    stub.route("PUT", "/v1/cluster/update_cert", 200, {
        "name": "api", "version": 3, "fingerprint_sha256": leaf.fingerprint,
        "unchanged": True, "nodes": [{"uid": 1, "status": "updated"}]})
    p = ok(adm(stub.dir, "cluster", "certificate", "set", "api",
               "certificate_file", str(pem)))
    assert "already in place" in p.stdout, p.stdout
    assert "no new version" in p.stdout and "version 3" in p.stdout, p.stdout
    assert "Set api certificate" not in p.stdout, p.stdout


DRY_RUN = {
    "dry_run": True,
    "cluster": {"name": moatlib.FQDN, "min_control_TLS_version": "1.3",
                "min_data_TLS_version": "1.3"},
    "changes": {"min_control_TLS_version": {"from": "1.2", "to": "1.3"},
                "min_data_TLS_version": {"from": "1.2", "to": "1.3"}},
    "would_close": {"total": 9, "nodes": [
        {"uid": 1, "addr": "127.0.0.1", "api": {"TLSv1.2": 3},
         "proxy": {"TLSv1.2": 5}, "as_of": "2026-11-29T17:00:00Z"},
        {"uid": 2, "addr": "127.0.0.2", "api": {"TLSv1.2": 1}, "proxy": {},
         "as_of": "2026-11-29T17:00:01Z"},
        {"uid": 3, "addr": "127.0.0.3", "api": {}, "proxy": {},
         "as_of": "2026-11-29T17:00:02Z"}]}}


def test_dry_run_output(stub):
    stub.route("PUT", "/v1/cluster?dry_run=true", 200, DRY_RUN)
    p = ok(adm(stub.dir, "cluster", "config", "min_control_TLS_version",
               "1.3", "min_data_TLS_version", "1.3", "dry_run"))
    assert stub.requests == [
        ("PUT", "/v1/cluster?dry_run=true",
         {"min_control_TLS_version": "1.3", "min_data_TLS_version": "1.3"})]
    text = p.stdout
    assert "nothing was changed" in text.lower(), text
    assert "min_control_TLS_version: 1.2 -> 1.3" in text, text
    assert "min_data_TLS_version: 1.2 -> 1.3" in text, text
    assert "Would close 9" in text, text
    rows = [l.split() for l in text.splitlines() if l.startswith("node:")]
    assert ["node:1", "127.0.0.1", "api", "TLSv1.2", "3",
            "2026-11-29T17:00:00Z"] in rows, text
    assert ["node:1", "127.0.0.1", "proxy", "TLSv1.2", "5",
            "2026-11-29T17:00:00Z"] in rows, text
    assert ["node:2", "127.0.0.2", "api", "TLSv1.2", "1",
            "2026-11-29T17:00:01Z"] in rows, text
    assert ["node:3", "127.0.0.3", "-", "-", "0",
            "2026-11-29T17:00:02Z"] in rows, text
    assert len(rows) == 4, text
    assert_aligned(text)
    # Without dry_run the same words make the real call.
    stub.route("PUT", "/v1/cluster", 200, {"min_control_TLS_version": "1.3",
                                          "closed_sessions": 0})
    ok(adm(stub.dir, "cluster", "config", "min_control_TLS_version", "1.3"))
    assert stub.requests[-1][:2] == ("PUT", "/v1/cluster")
    # dry_run needs a parameter before it.
    p = adm(stub.dir, "cluster", "config", "dry_run")
    assert p.returncode == 2, out(p)


def test_dry_run_ignored_by_the_server_is_not_shown_as_a_preview(stub):
    stub.route("PUT", "/v1/cluster?dry_run=true", 200, {
        "min_control_TLS_version": "1.3", "closed_sessions": 2})
    p = adm(stub.dir, "cluster", "config", "min_control_TLS_version", "1.3",
            "dry_run")
    assert p.returncode == 1, out(p)
    assert "WAS applied" in p.stderr, out(p)
    assert "nothing was changed" not in p.stdout.lower(), out(p)


def test_ctrl_c_gives_up_a_request_and_keeps_the_prompt(stub, prompt_on):
    stub.hang.set()
    t = prompt_on(stub.dir)
    t.send("status\r")
    deadline = time.monotonic() + 10
    while not stub.requests:
        assert time.monotonic() < deadline, "no request reached the stub"
        time.sleep(0.05)
    t0 = time.monotonic()
    t.send("\x03")
    assert "Interrupted" in t.expect(PROMPT)
    assert time.monotonic() - t0 < 5
    assert t.alive()
    t.send("exit\r")
    assert t.wait() == 0


# -- the same contract against a real moatd --------------------------------------
#
# These need the server side of issue 7 (the richer 409 node entries,
# rotate's "skipped" and "force", "unchanged", ?dry_run=true).

@pytest.fixture
def etcd(etcd1):
    """One etcd member (conftest's), by its URL."""
    return etcd1.url


@pytest.fixture
def pair_one_down(make_node, etcd):
    """Node 1 and node 2 on one etcd; node 2 joined, then stopped."""
    first = make_node(addr="127.0.0.1", extra_args=["--store", etcd])
    second = make_node(addr="127.0.0.2", api_port=first.port, create=False)
    p = second.adm("cluster", "join", "nodes",
                   "%s:%d" % (first.addr, first.port),
                   "username", first.email,
                   env={"MOAT_PASSWORD": first.password})
    assert p.returncode == 0, out(p)
    second.stop()
    return first, second


def test_409_with_a_node_down_exits_3(pair_one_down):
    """Runs on today's server: the change is stored, exit 3, node 2 named."""
    first, _ = pair_one_down
    before = first.cert_info("api")
    p = first.adm("cluster", "certificate", "rotate", "api")
    assert p.returncode == EXIT_PARTIAL, out(p)
    assert "change is stored" in p.stdout and "do not retry" in p.stdout, \
        out(p)
    row = row_of(p.stdout, "node:2")
    assert "down" in row, p.stdout
    assert "node:1" not in p.stdout, p.stdout
    after = first.cert_info("api")
    assert after["version"] == before["version"] + 1   # stored indeed
    # A policy change waits for the nodes too.
    p = first.adm("cluster", "config", "min_control_TLS_version", "1.3")
    assert p.returncode == EXIT_PARTIAL, out(p)
    assert "down" in row_of(p.stdout, "node:2"), p.stdout


def test_409_names_address_and_what_the_node_serves(pair_one_down):
    """Needs the richer node entries (addr, applied_rev, certificates)."""
    first, second = pair_one_down
    served = first.sock("GET", "/v1/nodes/2").json()["certificates"]["api"]
    p = first.adm("cluster", "certificate", "rotate", "api")
    assert p.returncode == EXIT_PARTIAL, out(p)
    new = first.cert_info("api")
    assert "Stored certificate api: version %d, fingerprint %s" % (
        new["version"], new["fingerprint_sha256"]) in p.stdout, p.stdout
    row = row_of(p.stdout, "node:2")
    assert row[:3] == ["node:2", "127.0.0.2", "down"], p.stdout
    assert re.fullmatch(r"\d+", row[3]), p.stdout      # applied_rev
    assert row[4:] == ["api", "v%d" % served["version"],
                       served["fingerprint_sha256"][:23] + "..."], p.stdout
    assert_aligned(p.stdout)


def test_rotate_skips_an_operator_certificate(node, test_ca, tmp_path):
    n = node
    own = certgen.make_leaf(test_ca, sans=certgen.service_sans(n.fqdn))
    pem = tmp_path / "proxy.pem"
    pem.write_text(own.combined_pem())
    ok(n.adm("cluster", "certificate", "set", "proxy", "certificate_file",
             str(pem)))
    before = n.fingerprints()
    p = ok(n.adm("cluster", "certificate", "rotate"))
    assert "Skipped certificate proxy:" in p.stdout, out(p)
    assert "Rotated certificate proxy" not in p.stdout, out(p)
    after = n.fingerprints()
    assert after["proxy"] == before["proxy"] == own.fingerprint
    assert all(after[c] != before[c] for c in CERT_NAMES if c != "proxy")
    p = n.adm("cluster", "certificate", "rotate", "proxy")
    assert p.returncode == 1, out(p)
    assert "force" in p.stderr, out(p)
    assert n.fingerprints()["proxy"] == own.fingerprint
    p = ok(n.adm("cluster", "certificate", "rotate", "proxy", "force"))
    assert "Rotated certificate proxy" in p.stdout, out(p)
    assert n.cert_info("proxy")["issued_by_cluster_ca"] is True


def test_set_the_same_certificate_twice(node, test_ca, tmp_path):
    n = node
    own = certgen.make_leaf(test_ca, sans=certgen.service_sans(n.fqdn))
    pem = tmp_path / "api.pem"
    pem.write_text(own.combined_pem())
    p = ok(n.adm("cluster", "certificate", "set", "api", "certificate_file",
                 str(pem)))
    assert "Set api certificate" in p.stdout, p.stdout
    v = n.cert_info("api")["version"]
    p = ok(n.adm("cluster", "certificate", "set", "api", "certificate_file",
                 str(pem)))
    assert "already in place" in p.stdout, p.stdout
    assert "no new version" in p.stdout, p.stdout
    assert n.cert_info("api")["version"] == v


def test_dry_run_changes_nothing_and_counts_sessions(node):
    n = node
    ctx = moatlib.tls_client_context(cafile=n.ca,
                                     min_version=ssl.TLSVersion.TLSv1_2,
                                     max_version=ssl.TLSVersion.TLSv1_2)
    ka = moatlib.KeepAlive(n.addr, n.port, ctx, n.fqdn, auth=n.creds)
    try:
        assert ka.request("GET", "/v1/cluster").status_code == 200
        before = n.sock("GET", "/v1/cluster").json()
        # Nodes report their counts periodically: wait for this session.
        deadline = time.monotonic() + 10
        while True:
            p = n.adm("cluster", "config", "min_control_TLS_version", "1.3",
                      "dry_run")
            assert p.returncode == 0, out(p)
            rows = [l.split() for l in p.stdout.splitlines()
                    if l.startswith("node:1 ")]
            if ["api", "TLSv1.2"] in [r[2:4] for r in rows]:
                break
            assert time.monotonic() < deadline, p.stdout
            time.sleep(0.5)
        assert "min_control_TLS_version: 1.2 -> 1.3" in p.stdout, p.stdout
        assert "nothing was changed" in p.stdout.lower(), p.stdout
        assert_aligned(p.stdout)
        assert n.sock("GET", "/v1/cluster").json() == before
        assert ka.request("GET", "/v1/cluster").status_code == 200
    finally:
        ka.close()
