"""ACME dns-01 for the proxy certificate, against Debian's pebble.

PUT /v1/cluster/certificates/proxy/acme with challenge dns-01 and a
dns_hook: moatd runs the hook as `hook set <name> <txt value>` before it
asks the CA to validate an authorization and `hook clear <name> <txt
value>` after, <name> being the identifier (the wildcard's with its
"*.").  Without identifiers, the proxy's order is for the cluster FQDN and
"*." + FQDN (databases are reached as redis-<port>.<fqdn>).

The hook written here puts the TXT record into pebble-challtestsrv's mock
DNS (the one pebble resolves through) with curl on its management API,
and logs every call.  Checked:

  * the order becomes valid; the certificate issued covers the FQDN and
    the wildcard, chains to pebble's root, and is served on a TLS database
    port for both the FQDN and the database's own name;
  * the hook was called with set then clear, for both names, with the
    same dns-01 TXT value each time, and the records are gone afterwards;
  * a hook that exits 1 makes the order fail, last_error naming the hook,
    and the certificate is left alone;
  * a dns_hook that is not an executable (or not an absolute path) is
    refused with 400 invalid_schema and leaves no ACME setting.
"""

import os
import re
import stat

import certgen
from moatlib import (FQDN, TIME_SCALE, assert_error, assert_no_private_key,
                     dns_name, make_bdb, served_cert_der, wait_for)
from pebble import check_chain, make_pebble  # noqa: F401  (fixture)

ACME_WAIT = 60.0 * TIME_SCALE     # the order completes
APPLY_WAIT = 15.0 * TIME_SCALE    # a stored certificate reaching a port
WILDCARD = "*." + FQDN
TXT_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")   # base64url(SHA-256), no '='
PATH = "/v1/cluster/certificates/proxy/acme"

HOOK = r"""#!/bin/sh
# dns-01 hook of test_acme_dns.py: `hook set|clear <name> <txt value>`.
# Sets / clears the TXT of _acme-challenge.<name without "*."> in
# pebble-challtestsrv's mock DNS and logs each call.  A clear takes out
# the record of the host and puts back the values still set for it.
log='@LOG@'
state='@STATE@'
mgmt='@MGMT@'
exec 9>>"$state.lock"
/usr/bin/flock 9
printf '%s|%s|%s|%s\n' "$#" "$1" "$2" "$3" >>"$log"
[ "$#" -eq 3 ] || exit 2
@FAIL@
host="_acme-challenge.${2#\*.}."
touch "$state"
post() {
    /usr/bin/curl -sS -f --noproxy '*' --max-time 10 -X POST \
        -H 'Content-Type: application/json' --data "$2" "$mgmt/$1" \
        >/dev/null
}
case "$1" in
set)
    post set-txt "{\"host\":\"$host\",\"value\":\"$3\"}" || exit 1
    printf '%s %s\n' "$host" "$3" >>"$state"
    ;;
clear)
    grep -v -x -F -e "$host $3" "$state" >"$state.new"
    mv "$state.new" "$state"
    post clear-txt "{\"host\":\"$host\"}" || exit 1
    while read -r h v; do
        if [ "$h" = "$host" ]; then
            post set-txt "{\"host\":\"$h\",\"value\":\"$v\"}" || exit 1
        fi
    done <"$state"
    ;;
*)
    exit 2
    ;;
esac
exit 0
"""


# -- helpers ------------------------------------------------------------------

def write_hook(where, pb, fail=False, mode=0o755, name="dns-hook"):
    """The hook script (absolute path) and its log file."""
    where = os.path.abspath(str(where))
    log = os.path.join(where, name + ".log")
    path = os.path.join(where, name)
    text = (HOOK.replace("@LOG@", log)
            .replace("@STATE@", os.path.join(where, name + ".state"))
            .replace("@MGMT@", pb.chall_url)
            .replace("@FAIL@", "exit 1" if fail else ""))
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path, log


def hook_calls(log):
    """[(verb, name, txt)] in call order; a call with other than three
    arguments shows as its argument count."""
    try:
        with open(log, errors="backslashreplace") as f:
            lines = f.read().split("\n")[:-1]
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        f = line.split("|", 3)
        if len(f) != 4:
            out.append(("garbled line", line, ""))
        elif f[0] != "3":
            out.append(("argc=" + f[0], f[1], f[2]))
        else:
            out.append(tuple(f[1:]))
    return out


def check_hook_calls(calls, names):
    """What is wrong with the hook's calls for an order of names: each
    name set once then cleared, with the same dns-01 TXT value, a value
    per name, and nothing else."""
    problems = []
    for c in calls:
        if c[0] not in ("set", "clear"):
            problems.append("a call with %s: %r" % (c[0], c))
        elif c[1] not in names:
            problems.append("%s for %r: not one of the identifiers %s" % (
                c[0], c[1], list(names)))
        elif not TXT_RE.match(c[2]):
            problems.append("%s %s: %r is not a dns-01 TXT value" % c)
    for name in names:
        mine = [c for c in calls if c[1] == name]
        sets = [c[2] for c in mine if c[0] == "set"]
        clears = [c[2] for c in mine if c[0] == "clear"]
        if not sets:
            problems.append("never `set %s`" % name)
        if not clears:
            problems.append("never `clear %s`" % name)
        if mine and mine[0][0] != "set":
            problems.append("%s: cleared before it was set" % name)
        if len(set(sets)) > 1 or (sets and clears and
                                  set(sets) != set(clears)):
            problems.append("%s: set %s, cleared %s" % (name, sets, clears))
    per_name = {}
    for c in calls:
        if c[0] == "set" and c[1] in names:
            per_name.setdefault(c[2], set()).add(c[1])
    if any(len(v) > 1 for v in per_name.values()):
        problems.append("one TXT value set for two names: %r" % per_name)
    return problems


def dns_body(pb, hook, **fields):
    body = {"directory_url": pb.directory_url, "ca_bundle": pb.ca_pem,
            "challenge": "dns-01", "dns_hook": hook}
    body.update(fields)
    return body


def call(n, method, path, body=None):
    r = n.sock(method, path, body)
    assert_no_private_key(r.text)
    return r


def get_acme(n):
    r = call(n, "GET", PATH)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, "GET %s: %d %s" % (PATH, r.status_code,
                                                    r.text[:2000])
    return r.json()


def shown(j):
    return j and {k: v for k, v in j.items() if k != "ca_bundle"}


def moat_log(n):
    """moatd's log lines about ACME / the hook (for failure messages)."""
    lines = [ln for ln in n.log.splitlines()
             if re.search(r"acme|hook|dns-01|proxy", ln, re.I)]
    return "\n".join(lines[-40:])


def wait_acme(n, pred, timeout, what, pb):
    last = []

    def check():
        j = get_acme(n)
        last[:] = [j]
        return j if j is not None and pred(j) else None
    j = wait_for(check, timeout, 0.5)
    assert j, "%s: not within %.0fs; last GET: %r\n== moatd ==\n%s\n%s" % (
        what, timeout, shown(last and last[0]), moat_log(n), pb.logs())
    return j


def cluster_chain(n):
    r = call(n, "GET", "/v1/cluster/certificates")
    assert r.status_code == 200, r.text[:2000]
    chain = certgen.load_pem_chain(r.json()["proxy_cert"])
    assert chain, r.json()["proxy_cert"][:300]
    return chain


def served(addr, port, servername, root_file):
    """Fingerprint of a handshake verified against pebble's root with
    servername checked against the certificate, or the error (str)."""
    try:
        return certgen.fingerprint_der(
            served_cert_der(addr, port, servername, cafile=root_file))
    except Exception as e:
        return repr(e)


def wait_served(addr, port, servername, root_file, fp):
    last = []

    def check():
        last[:] = [served(addr, port, servername, root_file)]
        return last[0] == fp
    assert wait_for(check, APPLY_WAIT, 0.2), \
        "%s:%d as %s: want %s served (verified against pebble's root), " \
        "got %s" % (addr, port, servername, fp, last and last[0])


# -- 1. dns-01: the FQDN and its wildcard -------------------------------------

def test_proxy_dns01_wildcard(make_pebble, db_node, tmp_path):
    n = db_node
    pb = make_pebble()
    port = make_bdb(n, name="acme-dns")["port"]
    hook, log = write_hook(tmp_path, pb)
    old = n.cert_info("proxy")["fingerprint_sha256"]

    r = call(n, "PUT", PATH, dns_body(pb, hook))
    assert r.status_code == 200, "PUT: want 200, got %d %s\n%s" % (
        r.status_code, r.text[:2000], moat_log(n))
    j = r.json()
    assert j["challenge"] == "dns-01", shown(j)
    assert j["identifiers"] == [FQDN, WILDCARD], shown(j)
    assert j["state"] in ("pending", "valid"), shown(j)

    j = wait_acme(n, lambda j: j["state"] == "valid" and
                  j["fingerprint_sha256"] not in (None, old) and
                  j["last_error"] is None, ACME_WAIT,
                  "proxy issued over dns-01", pb)
    fp = j["fingerprint_sha256"]

    # What the cluster stores: that certificate, for both names, from
    # pebble.
    chain = cluster_chain(n)
    leaf = chain[0]
    assert certgen.fingerprint(leaf) == fp, (certgen.fingerprint(leaf), fp)
    sans = certgen.san_strings(leaf)
    for name in (FQDN, WILDCARD):
        assert "DNS:" + name in sans, "want DNS:%s in %s" % (name, sans)
    root = certgen.load_pem_chain(pb.roots_pem())[0]
    check_chain(chain, root)
    assert n.cert_info("proxy")["issued_by_cluster_ca"] is False

    # Served on the database port, verified against pebble's root, for the
    # FQDN and for the database's name (which only the wildcard covers).
    root_file = pb.roots_file()
    db_name = dns_name(n, port)
    assert db_name.endswith("." + FQDN), db_name
    wait_served(n.addr, port, FQDN, root_file, fp)
    assert served(n.addr, port, db_name, root_file) == fp
    # ...and not trusted without pebble's root (what was checked above is
    # pebble's, not the cluster CA's).
    assert served(n.addr, port, db_name, n.ca) != fp

    # The hook: set then clear for each name, with one TXT value per name
    # (every mismatch listed together).
    calls = hook_calls(log)
    problems = check_hook_calls(calls, (FQDN, WILDCARD))
    # Cleared: the record is gone from the DNS pebble resolves through.
    left = pb.resolve("_acme-challenge." + FQDN, 16)
    if left:
        problems.append("TXT records left in the DNS: %r" % left)
    assert not problems, "%s\nhook calls: %r\n== moatd ==\n%s" % (
        "\n".join(problems), calls, moat_log(n))


# -- 2. a failing hook; a hook that cannot be run -----------------------------

def test_dns01_hook_fails(make_pebble, node, tmp_path):
    n = node
    pb = make_pebble()
    before = n.fingerprints()

    # Refused before anything is stored: not executable, missing, relative,
    # absent.
    noexec, _ = write_hook(tmp_path, pb, mode=0o644, name="noexec-hook")
    refused = [
        ("not executable", dns_body(pb, noexec)),
        ("missing", dns_body(pb, str(tmp_path / "no-such-hook"))),
        ("relative", dns_body(pb, "noexec-hook")),
        ("no hook", {k: v for k, v in dns_body(pb, noexec).items()
                     if k != "dns_hook"}),
    ]
    problems = []
    for what, body in refused:
        r = call(n, "PUT", PATH, body)
        try:
            assert_error(r, 400, "invalid_schema")
        except AssertionError as e:
            problems.append("%s (%r): %s" % (what, body.get("dns_hook"), e))
        if get_acme(n) is not None:
            problems.append("%s: an ACME setting was stored: %r" % (
                what, shown(get_acme(n))))
    assert not problems, "\n".join(problems)
    assert n.fingerprints() == before
    assert not os.stat(noexec).st_mode & stat.S_IXUSR

    # A hook that exits 1: the order fails and says which hook.
    hook, log = write_hook(tmp_path, pb, fail=True, name="failing-hook")
    r = call(n, "PUT", PATH, dns_body(pb, hook))
    assert r.status_code == 200, "PUT: want 200, got %d %s\n%s" % (
        r.status_code, r.text[:2000], moat_log(n))
    assert r.json()["identifiers"] == [FQDN, WILDCARD], shown(r.json())
    j = wait_acme(n, lambda j: j["last_error"], ACME_WAIT,
                  "last_error after the hook failed", pb)
    assert j["state"] == "failed", "nothing was ever issued: %r" % shown(j)
    assert hook in j["last_error"], \
        "last_error must name the hook %s: %r" % (hook, j["last_error"])
    assert j["tries"] >= 1, shown(j)
    assert j["fingerprint_sha256"] is None, shown(j)
    calls = hook_calls(log)
    assert calls and calls[0][0] == "set" and \
        calls[0][1] in (FQDN, WILDCARD), calls
    assert TXT_RE.match(calls[0][2]), calls
    # The certificates are left as they were.
    assert n.fingerprints() == before
