"""Who may connect to a database with client authentication, beyond a
certificate that chains to its authentication_ssl_client_certs:

    client_cert_subject_validation_type  san_cn / full_subject (RS's rules)
    authorized_subjects                  [{CN, O, OU: [...], L, ST, C}]
    crl                                  PEM X509 CRLs, checked at handshake

Real TLS clients (ssl, redis-py) with certificates issued here; every rule
is changed at run time and applies to the next handshake while open
connections keep going.  Refused clients are logged and counted as
client_cert_refused.  Bad bodies get their error and change nothing.
"""

import re
import ssl

import certgen
from moatlib import (assert_error, bdb_get, FQDN, https_request, make_bdb,
                     pid_running, redis_client, redis_pid, resp_ping,
                     tls_client_context, tls_data_connect, wait_bdb_active,
                     wait_for, write_pair)

PONG = b"+PONG\r\n"
SUBJECT_REFUSED = "refused: its subject is not among the authorized subjects"
RULE_FIELDS = ("enforce_client_authentication",
               "authentication_ssl_client_certs",
               "client_cert_subject_validation_type", "authorized_subjects",
               "crl")


# -- certificates and CRLs ----------------------------------------------------

# Client certificates and CRLs: certgen's.
issue = certgen.make_client
make_crl = certgen.make_crl


# -- clients ------------------------------------------------------------------

def client_ctx(n, pair=None, max_version=None):
    ctx = tls_client_context(cafile=n.ca, max_version=max_version)
    if pair:
        ctx.load_cert_chain(*pair)
    return ctx


def tls_ping(n, port, pair=None, max_version=None):
    """PONG bytes, or a string saying where it failed.  (TLS 1.3: a client
    learns that its certificate was refused at its first read; TLS 1.2:
    in the handshake.)"""
    try:
        s = tls_data_connect(n, port, client_ctx(n, pair, max_version))
    except (ssl.SSLError, OSError) as e:
        return "handshake: %r" % e
    try:
        got = resp_ping(s)
        return got if got else "closed (EOF)"
    except (ssl.SSLError, OSError) as e:
        return "after handshake: %r" % e
    finally:
        s.close()


def let_in(n, port, pairs):
    """{name: True/False} for each named pair: was it let in?"""
    return {name: tls_ping(n, port, p) == PONG for name, p in pairs.items()}


def wait_let_in(n, port, pairs, want, timeout=10):
    """Until exactly the names in `want` get in (a change applies to the
    next handshake, after moatd applied it); the last verdicts on failure."""
    last = {}

    def check():
        last.clear()
        last.update(let_in(n, port, pairs))
        return all(last[k] == (k in want) for k in pairs)
    assert wait_for(check, timeout, interval=0.1), \
        "want only %s let in, got %r\n%s" % (sorted(want), last,
                                             n.log[-3000:])


def put(n, uid, body):
    r = n.sock("PUT", "/v1/bdbs/%d" % uid, body)
    assert r.status_code == 200, "PUT %r: %s" % (list(body), r)
    return r.json()


def rules(n, uid):
    obj = bdb_get(n, uid)
    return {k: obj.get(k) for k in RULE_FIELDS}


# -- metrics ------------------------------------------------------------------

_HS_RE = re.compile(r'^moat_tls_handshakes_total\{([^}]*)\} ([0-9.eE+-]+)$',
                    re.M)


def refused_count(n, uid):
    """moat_tls_handshakes_total{endpoint="bdb",result="client_cert_refused"}
    of database uid (0 while not exported yet)."""
    r = https_request(n.addr, n.metrics_port, "GET", "/", cafile=n.ca,
                      servername=FQDN, timeout=10)
    assert r.status_code == 200, r
    total = 0.0
    for labels, value in _HS_RE.findall(r.text):
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if lab.get("endpoint") == "bdb" and \
                lab.get("result") == "client_cert_refused" and \
                lab.get("bdb", str(uid)) == str(uid):
            total += float(value)
    return total


# -- 1. san_cn ----------------------------------------------------------------

def test_san_cn(db_node, test_ca):
    n = db_node
    other_ca = certgen.make_ca("moat other client CA")
    alice = certgen.make_leaf(test_ca, cn="alice")
    bob = certgen.make_leaf(test_ca, cn="bob")
    carol = certgen.make_leaf(test_ca, sans=["DNS:carol.example"], cn="x")
    # Near misses: a longer CN, a SAN under carol's name, and a CN that
    # is authorized but from a CA the database does not trust.
    eve = certgen.make_leaf(test_ca, sans=["DNS:sub.carol.example",
                                           "DNS:carol.example.evil"],
                            cn="alicex")
    mallory = certgen.make_leaf(other_ca, sans=["DNS:carol.example"],
                                cn="alice")
    pairs = {name: write_pair(n, leaf, name) for name, leaf in
             (("alice", alice), ("bob", bob), ("carol", carol),
              ("eve", eve), ("mallory", mallory))}
    pairs["nocert"] = None

    subjects = [{"CN": "alice"}, {"CN": "carol.example"}]
    db = make_bdb(n, tls=True, name="sancn",
                  enforce_client_authentication="enabled",
                  authentication_ssl_client_certs=[
                      {"client_cert": test_ca.cert_pem}],
                  client_cert_subject_validation_type="san_cn",
                  authorized_subjects=subjects)
    uid, port = db["uid"], db["port"]
    assert db["client_cert_subject_validation_type"] == "san_cn"
    assert db["authorized_subjects"] == subjects
    assert db["crl"] == ""
    got = bdb_get(n, uid)
    assert got["client_cert_subject_validation_type"] == "san_cn"
    assert got["authorized_subjects"] == subjects

    refused0 = refused_count(n, uid)
    log0 = len(n.log)
    assert let_in(n, port, pairs) == {
        "alice": True, "bob": False, "carol": True, "eve": False,
        "mallory": False, "nocert": False}
    # A real client too.
    c = redis_client(n, port, ssl_certfile=pairs["carol"][0],
                     ssl_keyfile=pairs["carol"][1])
    assert c.set("who", "carol") and c.get("who") == b"carol"
    c.close()
    # TLS 1.2 clients get the same verdicts (refused in the handshake).
    tls12 = ssl.TLSVersion.TLSv1_2
    assert tls_ping(n, port, pairs["alice"], tls12) == PONG
    assert tls_ping(n, port, pairs["carol"], tls12) == PONG
    got12 = tls_ping(n, port, pairs["bob"], tls12)
    assert got12.startswith("handshake:"), got12

    # The log says who and why; the exporter counts it.
    assert wait_for(lambda: SUBJECT_REFUSED in n.log[log0:], 5), \
        n.log[log0:][-3000:]
    lines = [l for l in n.log[log0:].splitlines() if SUBJECT_REFUSED in l]
    assert any("CN=bob" in l for l in lines), lines
    assert any("CN=alicex" in l for l in lines), lines
    assert not any("CN=alice/" in l or l.endswith("CN=alice") or
                   "CN=x/" in l for l in lines), lines
    # bob (twice) and eve by the rule, mallory by the chain, nocert by none.
    assert wait_for(lambda: refused_count(n, uid) >= refused0 + 5, 5), \
        (refused0, refused_count(n, uid))
    assert refused_count(n, uid) == refused0 + 5

    # At run time: bob instead.  Alice's open connection keeps going.
    keep = tls_data_connect(n, port, client_ctx(n, pairs["alice"]))
    assert resp_ping(keep) == PONG
    body = put(n, uid, {"authorized_subjects": [{"CN": "bob"}]})
    assert body["authorized_subjects"] == [{"CN": "bob"}]
    assert body["client_cert_subject_validation_type"] == "san_cn"
    wait_let_in(n, port, pairs, {"bob"})
    assert resp_ping(keep) == PONG
    assert bdb_get(n, uid)["authorized_subjects"] == [{"CN": "bob"}]

    # Back to the rule off: any certificate the CA issued.
    put(n, uid, {"client_cert_subject_validation_type": "disabled"})
    wait_let_in(n, port, pairs, {"alice", "bob", "carol", "eve"})
    # ... and on again, with both lists' names.
    put(n, uid, {"client_cert_subject_validation_type": "san_cn",
                 "authorized_subjects": [{"CN": "bob"}, {"CN": "alice"}]})
    wait_let_in(n, port, pairs, {"alice", "bob"})
    assert resp_ping(keep) == PONG
    keep.close()


# -- 2. full_subject ----------------------------------------------------------

def test_full_subject(db_node, test_ca):
    n = db_node
    ca = test_ca
    leaves = {
        # Exactly the rule, plus an extra OU and an L and ST the rule
        # does not name.
        "exact": issue(ca, "svc", o="Acme", ous=("ops", "db", "extra"),
                       c="US", l="Springfield", st="IL"),
        "ou_order": issue(ca, "svc", o="Acme", ous=("db", "ops"), c="US"),
        "no_db_ou": issue(ca, "svc", o="Acme", ous=("ops",), c="US"),
        "no_ou": issue(ca, "svc", o="Acme", c="US"),
        "other_o": issue(ca, "svc", o="Other", ous=("ops", "db"), c="US"),
        "no_o": issue(ca, "svc", ous=("ops", "db"), c="US"),
        "fr": issue(ca, "svc", o="Acme", ous=("ops", "db"), c="FR"),
        "other_cn": issue(ca, "svc2", o="Acme", ous=("ops", "db"), c="US"),
        # The subject is what counts, not a SAN naming svc.
        "san_only": issue(ca, "web", o="Acme", ous=("ops", "db"), c="US",
                          sans=("svc",)),
        # Second rule {"CN": "anyorg", "OU": ["ops"]}: any O, any C.
        "any_o_1": issue(ca, "anyorg", o="Whoever", ous=("ops",), c="FR"),
        "any_o_2": issue(ca, "anyorg", ous=("ops", "x")),
        "any_o_bad": issue(ca, "anyorg", o="Whoever", ous=("dev",)),
        # Third rule {"CN": "loc", "L": "Paris", "ST": "IDF"}.
        "loc": issue(ca, "loc", o="Any", l="Paris", st="IDF", c="FR"),
        "loc_lyon": issue(ca, "loc", l="Lyon", st="IDF"),
        "loc_no_st": issue(ca, "loc", l="Paris"),
        # Fourth rule: UTF-8 text (UTF8String in the certificate).
        "utf8": issue(ca, "caf\u00e9-\u670d\u52a1", o="Soci\u00e9t\u00e9",
                      ous=("\u00e9quipe",)),
        "utf8_other": issue(ca, "caf\u00e9-\u670d\u52a1", o="Societe",
                            ous=("\u00e9quipe",)),
    }
    pairs = {k: write_pair(n, v, k) for k, v in leaves.items()}
    subjects = [{"CN": "svc", "O": "Acme", "OU": ["ops", "db"], "C": "US"},
                {"CN": "anyorg", "OU": ["ops"]},
                {"CN": "loc", "L": "Paris", "ST": "IDF"},
                {"CN": "caf\u00e9-\u670d\u52a1", "O": "Soci\u00e9t\u00e9",
                 "OU": ["\u00e9quipe"]}]
    db = make_bdb(n, tls=True, name="full",
                  enforce_client_authentication="enabled",
                  authentication_ssl_client_certs=[
                      {"client_cert": ca.cert_pem}],
                  client_cert_subject_validation_type="full_subject",
                  authorized_subjects=subjects)
    uid, port = db["uid"], db["port"]
    assert db["client_cert_subject_validation_type"] == "full_subject"
    assert bdb_get(n, uid)["authorized_subjects"] == subjects

    log0 = len(n.log)
    want = {"exact", "ou_order", "any_o_1", "any_o_2", "loc", "utf8"}
    got = let_in(n, port, pairs)
    assert {k for k, v in got.items() if v} == want, got
    c = redis_client(n, port, ssl_certfile=pairs["exact"][0],
                     ssl_keyfile=pairs["exact"][1])
    assert c.ping() is True
    c.close()
    lines = [l for l in n.log[log0:].splitlines() if SUBJECT_REFUSED in l]
    assert any("O=Other" in l for l in lines), lines
    assert any("C=FR" in l and "CN=svc" in l for l in lines), lines
    assert any("CN=web" in l for l in lines), lines

    # At run time: the first rule without O accepts any O (and none).
    subjects2 = [{"CN": "svc", "OU": ["ops", "db"], "C": "US"}]
    put(n, uid, {"authorized_subjects": subjects2})
    wait_let_in(n, port, pairs, {"exact", "ou_order", "other_o", "no_o"})
    # ... and with only the CN, any svc.
    put(n, uid, {"authorized_subjects": [{"CN": "svc"}]})
    wait_let_in(n, port, pairs, {"exact", "ou_order", "no_db_ou", "no_ou",
                                 "other_o", "no_o", "fr"})
    assert bdb_get(n, uid)["authorized_subjects"] == [{"CN": "svc"}]


# -- 3. CRLs ------------------------------------------------------------------

def test_crl(db_node, test_ca):
    n = db_node
    other_ca = certgen.make_ca("moat CRL-issuing other CA")
    alice = certgen.make_leaf(test_ca, cn="alice")
    bob = certgen.make_leaf(test_ca, cn="bob")
    pairs = {"alice": write_pair(n, alice, "alice"),
             "bob": write_pair(n, bob, "bob")}
    db = make_bdb(n, tls=True, name="crldb",
                  enforce_client_authentication="enabled",
                  authentication_ssl_client_certs=[
                      {"client_cert": test_ca.cert_pem}])
    uid, port = db["uid"], db["port"]
    assert db["crl"] == ""
    assert let_in(n, port, pairs) == {"alice": True, "bob": True}

    # bob connects before he is revoked: that connection keeps going.
    keep = tls_data_connect(n, port, client_ctx(n, pairs["bob"]))
    assert resp_ping(keep) == PONG

    revoke_bob = make_crl(test_ca, [bob])
    refused0 = refused_count(n, uid)
    log0 = len(n.log)
    body = put(n, uid, {"crl": revoke_bob})
    assert body["crl"].strip() == revoke_bob.strip()
    assert rules(n, uid)["crl"].strip() == revoke_bob.strip()
    wait_let_in(n, port, pairs, {"alice"})
    assert resp_ping(keep) == PONG, "an open connection was cut by the CRL"
    lines = [l for l in n.log[log0:].splitlines()
             if "CN=bob" in l and "revoked" in l]
    assert lines, n.log[log0:][-3000:]
    assert wait_for(lambda: refused_count(n, uid) > refused0, 5)

    # Bad values: 400 invalid_pem, the CRL in force stays.
    garbage_crl = ("-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n"
                   "-----END X509 CRL-----\n")
    for what, value in (("garbage", "not a CRL at all"),
                        ("a certificate", alice.cert_pem),
                        ("the CA certificate", test_ca.cert_pem),
                        ("a private key", alice.key_pem),
                        ("a CRL block that does not parse", garbage_crl)):
        r = n.sock("PUT", "/v1/bdbs/%d" % uid, {"crl": value})
        assert_error(r, 400, "invalid_pem")
        assert rules(n, uid)["crl"].strip() == revoke_bob.strip(), what
    assert let_in(n, port, pairs) == {"alice": True, "bob": False}
    # Nor on creation: no database is made.
    count = len(n.sock("GET", "/v1/bdbs").json())
    r = n.sock("POST", "/v1/bdbs", {
        "name": "badcrl", "tls_mode": "enabled",
        "enforce_client_authentication": "enabled",
        "authentication_ssl_client_certs": [
            {"client_cert": test_ca.cert_pem}],
        "crl": alice.cert_pem})
    assert_error(r, 400, "invalid_pem")
    assert len(n.sock("GET", "/v1/bdbs").json()) == count

    # A CRL of another CA (listing alice's serial) does not touch test_ca's
    # clients: bob is back, alice stays.
    other_crl = make_crl(other_ca, [alice, bob])
    put(n, uid, {"crl": other_crl})
    wait_let_in(n, port, pairs, {"alice", "bob"})
    # Both CRLs in one field: test_ca's is the one that counts.
    put(n, uid, {"crl": other_crl + revoke_bob})
    wait_let_in(n, port, pairs, {"alice"})
    # test_ca's CRL revoking nobody.
    put(n, uid, {"crl": make_crl(test_ca, [])})
    wait_let_in(n, port, pairs, {"alice", "bob"})
    # Now alice is revoked, then the CRLs are taken away.
    put(n, uid, {"crl": make_crl(test_ca, [alice])})
    wait_let_in(n, port, pairs, {"bob"})
    body = put(n, uid, {"crl": ""})
    assert body["crl"] == "" and rules(n, uid)["crl"] == ""
    wait_let_in(n, port, pairs, {"alice", "bob"})
    assert resp_ping(keep) == PONG
    keep.close()

    # The CRL comes on top of the subject rules.
    put(n, uid, {"client_cert_subject_validation_type": "san_cn",
                 "authorized_subjects": [{"CN": "alice"}, {"CN": "bob"}],
                 "crl": revoke_bob})
    wait_let_in(n, port, pairs, {"alice"})
    put(n, uid, {"authorized_subjects": [{"CN": "bob"}]})
    wait_let_in(n, port, pairs, set())
    # Issuer without a CRL in the field: not checked for revocation, but
    # the subject rule still applies.
    put(n, uid, {"crl": other_crl})
    wait_let_in(n, port, pairs, {"bob"})
    put(n, uid, {"crl": other_crl + revoke_bob,
                 "authorized_subjects": [{"CN": "alice"}, {"CN": "bob"}]})
    wait_let_in(n, port, pairs, {"alice"})

    # The rules and CRLs outlive a moatd restart.
    stored = rules(n, uid)
    shard = redis_pid(n, uid)
    rc = n.stop()
    assert rc == 0, "moatd exit %s on SIGTERM" % rc
    assert wait_for(lambda: not pid_running(shard), 10), shard
    n.start()
    wait_bdb_active(n, uid)
    assert rules(n, uid) == stored
    wait_let_in(n, port, pairs, {"alice"})


# -- 4. validation ------------------------------------------------------------

def check_error(problems, what, r, code):
    """r must be a 400 `code` error (api.md's form); else say so."""
    try:
        got = r.json().get("error_code") if r.status_code != 200 else None
    except ValueError:
        got = None
    if r.status_code != 400 or got != code:
        problems.append("%s: want 400 %s, got %d %s"
                        % (what, code, r.status_code, got or "(accepted)"))
        return
    assert_error(r, 400, code)


def test_validation(db_node, test_ca):
    n = db_node
    alice = certgen.make_leaf(test_ca, cn="alice")
    pairs = {"alice": write_pair(n, alice, "alice")}
    trust = [{"client_cert": test_ca.cert_pem}]
    plain = make_bdb(n, tls=True, name="noenforce")
    db = make_bdb(n, tls=True, name="rules",
                  enforce_client_authentication="enabled",
                  authentication_ssl_client_certs=trust,
                  client_cert_subject_validation_type="san_cn",
                  authorized_subjects=[{"CN": "alice"}])
    uid, port = db["uid"], db["port"]
    before = rules(n, uid)
    before_plain = rules(n, plain["uid"])
    assert before_plain["client_cert_subject_validation_type"] == "disabled"
    assert before_plain["authorized_subjects"] == [] and \
        before_plain["crl"] == ""
    count = len(n.sock("GET", "/v1/bdbs").json())

    # Every case runs; the mismatches are reported together at the end.
    problems = []

    def restore():
        r = n.sock("PUT", "/v1/bdbs/%d" % uid, {
            k: before[k] for k in ("client_cert_subject_validation_type",
                                   "authorized_subjects")})
        assert r.status_code == 200, r
        assert rules(n, uid) == before

    # Boundaries that are accepted (then put back).  Lengths are in
    # characters, as in X.509's upper bounds (ub-common-name is 64).
    ok_bodies = [
        ("64-char strings", {"authorized_subjects": [
            {"CN": "a" * 64, "O": "o" * 64, "OU": ["u" * 64, "v"],
             "L": "l" * 64, "ST": "s" * 64, "C": "c" * 64}]}),
        ("100 subjects", {"authorized_subjects": [
            {"CN": "c%d" % i} for i in range(100)]}),
        ("an empty OU list", {"authorized_subjects": [
            {"CN": "alice", "OU": []}]}),
        ("full_subject", {"client_cert_subject_validation_type":
                          "full_subject"}),
        ("a 64-character non-ASCII CN", {"authorized_subjects": [
            {"CN": "\u00e9" * 64, "OU": ["\u00e9" * 64]}]}),
    ]
    for what, body in ok_bodies:
        r = n.sock("PUT", "/v1/bdbs/%d" % uid, body)
        if r.status_code != 200:
            problems.append("%s: want 200, got %d %s" % (
                what, r.status_code, r.json().get("description")))
            continue
        got = bdb_get(n, uid)
        for k, v in body.items():
            if r.json().get(k) != v or got.get(k) != v:
                problems.append("%s: %s not stored as given" % (what, k))
    restore()

    subj = "authorized_subjects"
    bad = [
        ("type bogus", uid, {"client_cert_subject_validation_type": "bogus"},
         "invalid_schema"),
        ("type not a string", uid,
         {"client_cert_subject_validation_type": 1}, "invalid_schema"),
        ("subjects an object", uid, {subj: {"CN": "alice"}},
         "invalid_schema"),
        ("subjects a string", uid, {subj: "alice"}, "invalid_schema"),
        ("an entry not an object", uid, {subj: ["alice"]}, "invalid_schema"),
        ("an entry without CN", uid, {subj: [{"O": "Acme"}]},
         "invalid_schema"),
        ("an unknown key X", uid, {subj: [{"CN": "alice", "X": "y"}]},
         "invalid_schema"),
        ("a lower-case key", uid, {subj: [{"cn": "alice"}]},
         "invalid_schema"),
        ("OU not a list", uid, {subj: [{"CN": "alice", "OU": "ops"}]},
         "invalid_schema"),
        ("OU holding a number", uid, {subj: [{"CN": "alice", "OU": [1]}]},
         "invalid_schema"),
        ("a 65-char CN", uid, {subj: [{"CN": "a" * 65}]}, "invalid_schema"),
        ("a 65-character non-ASCII CN", uid, {subj: [{"CN": "\u00e9" * 65}]},
         "invalid_schema"),
        ("an empty CN", uid, {subj: [{"CN": ""}]}, "invalid_schema"),
        ("a CN not a string", uid, {subj: [{"CN": 7}]}, "invalid_schema"),
        ("a 65-char O", uid, {subj: [{"CN": "alice", "O": "o" * 65}]},
         "invalid_schema"),
        ("an empty O", uid, {subj: [{"CN": "alice", "O": ""}]},
         "invalid_schema"),
        ("a 65-char OU", uid, {subj: [{"CN": "alice", "OU": ["u" * 65]}]},
         "invalid_schema"),
        ("an empty OU", uid, {subj: [{"CN": "alice", "OU": [""]}]},
         "invalid_schema"),
        ("a 65-char C", uid, {subj: [{"CN": "alice", "C": "c" * 65}]},
         "invalid_schema"),
        ("101 subjects", uid, {subj: [{"CN": "c%d" % i} for i in range(101)]},
         "invalid_schema"),
        ("a good field with a bad one", uid,
         {"client_cert_subject_validation_type": "full_subject",
          subj: [{"CN": "alice", "X": "y"}]}, "invalid_schema"),
        ("san_cn with an empty list", uid, {subj: []},
         "invalid_configuration"),
        ("full_subject with an empty list", uid,
         {"client_cert_subject_validation_type": "full_subject", subj: []},
         "invalid_configuration"),
        ("client authentication off under san_cn", uid,
         {"enforce_client_authentication": "disabled"},
         "invalid_configuration"),
        ("san_cn without client authentication", plain["uid"],
         {"client_cert_subject_validation_type": "san_cn",
          subj: [{"CN": "alice"}]}, "invalid_configuration"),
        ("full_subject without subjects", plain["uid"],
         {"enforce_client_authentication": "enabled",
          "authentication_ssl_client_certs": trust,
          "client_cert_subject_validation_type": "full_subject"},
         "invalid_configuration"),
        ("crl not a string", uid, {"crl": ["x"]}, "invalid_schema"),
    ]
    for what, target, body, code in bad:
        r = n.sock("PUT", "/v1/bdbs/%d" % target, body)
        check_error(problems, what, r, code)
        if rules(n, uid) != before:
            problems.append("%s: database %d changed" % (what, uid))
            restore()
        if rules(n, plain["uid"]) != before_plain:
            problems.append("%s: database %d changed" % (what, plain["uid"]))
            r = n.sock("PUT", "/v1/bdbs/%d" % plain["uid"], {
                k: before_plain[k] for k in RULE_FIELDS})
            assert r.status_code == 200, r

    # The same on creation: nothing is made.
    base = {"tls_mode": "enabled", "enforce_client_authentication": "enabled",
            "authentication_ssl_client_certs": trust}
    for what, extra, code in (
            ("type bogus", {"client_cert_subject_validation_type": "bogus"},
             "invalid_schema"),
            ("an entry without CN",
             {"client_cert_subject_validation_type": "san_cn",
              subj: [{"O": "Acme"}]}, "invalid_schema"),
            ("san_cn with no subjects",
             {"client_cert_subject_validation_type": "san_cn"},
             "invalid_configuration"),
            ("san_cn without client authentication",
             {"enforce_client_authentication": "disabled",
              "authentication_ssl_client_certs": [],
              "client_cert_subject_validation_type": "san_cn",
              subj: [{"CN": "alice"}]}, "invalid_configuration")):
        body = dict(base, name="bad%d" % len(what), **extra)
        r = n.sock("POST", "/v1/bdbs", body)
        check_error(problems, "create, " + what, r, code)
        if len(n.sock("GET", "/v1/bdbs").json()) != count:
            problems.append("create, %s: a database was made" % what)
            break

    # The rules in force did not move either.
    assert let_in(n, port, pairs) == {"alice": True}
    bob = write_pair(n, certgen.make_leaf(test_ca, cn="bob"), "bob")
    assert tls_ping(n, port, bob) != PONG
    assert not problems, "\n".join(problems)


# -- the refusal reaches the client -------------------------------------------

def test_refusal_is_an_alert(db_node, test_ca):
    """A client whose certificate is refused is told so by a TLS alert, on
    both versions: shown only EOF, a client (or a Replica Of link) cannot
    tell a refused certificate from a server that died."""
    n = db_node
    other_ca = certgen.make_ca("moat stranger CA")
    stranger = write_pair(n, certgen.make_leaf(other_ca, cn="stranger"),
                          "stranger")
    db = make_bdb(n, tls=True, name="alerts",
                  enforce_client_authentication="enabled",
                  authentication_ssl_client_certs=[
                      {"client_cert": test_ca.cert_pem}])
    port = db["port"]
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        for pair, alert in ((stranger, "UNKNOWN_CA"),
                            (None, "CERTIFICATE_REQUIRED"
                             if v == ssl.TLSVersion.TLSv1_3 else
                             "HANDSHAKE_FAILURE")):
            got = tls_ping(n, port, pair, max_version=v)
            assert "ALERT_" + alert in got, (v, pair, got)
