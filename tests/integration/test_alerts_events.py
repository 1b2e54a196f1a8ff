"""Certificate expiry alerts and the cluster's event log.

Alerts (GET /v1/cluster/alerts[/<name>], PUT /v1/cluster alert_settings,
`moatadm status`'s CLUSTER ALERTS table) and the event log (GET /v1/logs):
what each change records, the query parameters, and the events of nodes
going down and up in a 2-node cluster over etcd.  The alert tick runs every
5 s on every node; waits below are bounded by a few ticks.
"""

import datetime
import os
import signal
import time
import urllib.parse

import certgen
import moatlib
from moatlib import (ADMIN_EMAIL, ADMIN_PASSWORD, FQDN, ISO_RE, TIME_SCALE,
                     assert_error, assert_no_private_key, free_db_port,
                     make_cluster, openssl_fingerprint, wait_bdb_active,
                     wait_for)

CERTS_ALERT = "cluster_certs_about_to_expire"
CA_ALERT = "node_internal_certs_about_to_expire"
# The OCSP alerts (test_ocsp.py) are computed too, off until stapling is.
OCSP_ALERTS = ("cluster_ocsp_status_revoked", "cluster_ocsp_query_failed")
# And the ACME one (test_acme.py), quiet until a certificate is ordered.
ACME_ALERTS = ("cluster_acme_order_failed",)
ALERTS = (CERTS_ALERT, CA_ALERT) + OCSP_ALERTS + ACME_ALERTS
DEFAULT_SETTINGS = {a: {"enabled": True, "threshold": "45"} for a in ALERTS}
TICK = 5.0 * TIME_SCALE          # the alert/node tick of every node
EVENT_WAIT = 12.0 * TIME_SCALE   # an alert transition shows in the log
NODE_DOWN_WAIT = 25.0 * TIME_SCALE


# -- helpers -------------------------------------------------------------------

def leaf_for(ca, ips=("127.0.0.1",), **kw):
    kw.setdefault("sans", certgen.service_sans(FQDN, ips))
    return certgen.make_leaf(ca, **kw)


def put_cert(n, name, leaf):
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": name, "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    assert r.json()["fingerprint_sha256"] == leaf.fingerprint
    return r.json()


def get_alert(n, name=None, ignore=None):
    path = "/v1/cluster/alerts" + ("/" + name if name else "")
    if ignore is not None:
        path += "?ignore_settings=" + ignore
    r = n.sock("GET", path)
    assert r.status_code == 200, r.text
    assert_no_private_key(r.text)
    return r.json()


def check_alert_shape(a):
    assert set(a) >= {"enabled", "state", "severity", "threshold",
                      "change_time", "change_value"}, a
    assert isinstance(a["enabled"], bool) and isinstance(a["state"], bool), a
    assert a["severity"] == "WARNING", a
    assert isinstance(a["threshold"], str) and a["threshold"].isdigit(), a
    assert ISO_RE.match(a["change_time"]), a
    cv = a["change_value"]
    assert isinstance(cv["state"], bool), a
    assert cv["threshold"] == a["threshold"], a
    assert isinstance(cv["certificates"], list), a
    for c in cv["certificates"]:
        assert set(c) >= {"name", "not_after", "seconds_left", "days_left",
                          "issued_by_cluster_ca"}, c
        assert ISO_RE.match(c["not_after"]), c
        assert c["days_left"] == c["seconds_left"] // 86400, c


def set_alerts(n, settings, expect=200):
    r = n.sock("PUT", "/v1/cluster", {"alert_settings": settings})
    assert r.status_code == expect, r.text
    return r


def alert_settings(n):
    r = n.sock("GET", "/v1/cluster")
    assert r.status_code == 200, r.text
    return r.json()["alert_settings"]


def logs(n, expect=200, **params):
    path = "/v1/logs"
    if params:
        path += "?" + urllib.parse.urlencode(params)
    r = n.sock("GET", path)
    if expect != 200:
        return r
    assert r.status_code == 200, "%s: %s" % (path, r.text)
    body = r.json()
    assert isinstance(body, list), body
    return body


def of_type(events, typ, **match):
    return [e for e in events if e.get("type") == typ and
            all(e.get(k) == v for k, v in match.items())]


def wait_event(n, typ, timeout=EVENT_WAIT, **match):
    """The newest event of typ whose fields match, waiting for it."""
    got = wait_for(lambda: of_type(logs(n), typ, **match), timeout, 0.25)
    assert got, "no %s event %r within %.0fs; log: %r" % (
        typ, match, timeout, logs(n, limit=20))
    return got[0]


def check_event_common(e, node_uid=1):
    assert ISO_RE.match(e.get("time", "")), e
    assert isinstance(e.get("type"), str) and e["type"], e
    assert isinstance(e.get("severity"), str) and e["severity"], e
    assert e.get("node_uid") == node_uid, e


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_rows(n):
    """moatadm status's CLUSTER ALERTS table: {alert: [cells...]}."""
    p = n.adm("status")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert "CLUSTER ALERTS:" in lines, p.stdout
    i = lines.index("CLUSTER ALERTS:")
    assert lines[i + 1].split() == ["ALERT", "STATE", "THRESHOLD", "SINCE",
                                    "CERTIFICATES"], p.stdout
    rows = {}
    for line in lines[i + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    assert set(rows) == set(ALERTS), p.stdout
    assert_no_private_key(p.stdout)
    return rows


# -- 1. the service certificates' alert ------------------------------------------

def test_short_lived_proxy_certificate_raises_and_clears_the_alert(
        node, test_ca):
    n = node
    before = get_alert(n)
    assert set(before) == set(ALERTS), before
    for a in before.values():
        check_alert_shape(a)
        assert a["state"] is False and a["enabled"] is True, before
        assert a["threshold"] == "45" and a["change_value"]["certificates"] \
            == [], before
    rows = alert_rows(n)
    assert rows[CERTS_ALERT] == ["off", "45d", "-", "-"], rows

    leaf = leaf_for(test_ca, days=10)
    put_cert(n, "proxy", leaf)
    # Computed from the store at each GET: on at once.
    a = get_alert(n, CERTS_ALERT)
    check_alert_shape(a)
    assert a["state"] is True and a["enabled"] is True, a
    assert a["change_value"]["state"] is True, a
    certs = a["change_value"]["certificates"]
    assert [c["name"] for c in certs] == ["proxy"], a
    c = certs[0]
    assert c["days_left"] in (9, 10), c
    assert c["issued_by_cluster_ca"] is False, c
    assert c["not_after"] == iso(leaf.cert.not_valid_after), c
    assert 0 < c["seconds_left"] <= 10 * 86400, c
    now = datetime.datetime.utcnow()
    assert a["change_time"] <= iso(now), a
    # The other alert is untouched, and the list agrees with the single GET.
    both = get_alert(n)
    assert both[CA_ALERT]["state"] is False, both
    assert both[CERTS_ALERT]["change_value"]["certificates"][0]["name"] == \
        "proxy", both

    ev = wait_event(n, CERTS_ALERT, state=True)
    check_event_common(ev)
    assert [x["name"] for x in ev.get("certificates", [])] == ["proxy"], ev
    rows = alert_rows(n)
    state, thr, since, cells = rows[CERTS_ALERT]
    assert (state, thr) == ("ON", "45d"), rows
    assert since == get_alert(n, CERTS_ALERT)["change_time"], rows
    assert cells == "proxy:%dd" % c["days_left"], rows
    assert rows[CA_ALERT] == ["off", "45d", "-", "-"], rows

    # Threshold 5 days: off at once, and the transition is recorded.
    set_alerts(n, {CERTS_ALERT: {"threshold": 5}})
    a = get_alert(n, CERTS_ALERT)
    assert a["state"] is False and a["threshold"] == "5", a
    assert a["change_value"]["certificates"] == [], a
    assert alert_settings(n)[CERTS_ALERT] == {"enabled": True,
                                              "threshold": "5"}
    assert alert_rows(n)[CERTS_ALERT] == ["off", "5d", "-", "-"]
    off = wait_event(n, CERTS_ALERT, state=False)
    check_event_common(off)
    assert off["time"] >= ev["time"], (ev, off)
    # One event per transition, in order: on, then off.
    seen = of_type(logs(n, order="asc"), CERTS_ALERT)
    assert [x["state"] for x in seen] == [True, False], seen

    # Disabled (threshold back to 45): off unless ignore_settings.
    set_alerts(n, {CERTS_ALERT: {"enabled": False, "threshold": "45"}})
    assert alert_settings(n)[CERTS_ALERT] == {"enabled": False,
                                              "threshold": "45"}
    a = get_alert(n, CERTS_ALERT)
    assert a["state"] is False and a["enabled"] is False, a
    assert a["threshold"] == "45", a
    for ign in ("true", "1"):
        a = get_alert(n, CERTS_ALERT, ignore=ign)
        assert a["state"] is True and a["enabled"] is False, a
        assert [x["name"] for x in a["change_value"]["certificates"]] == \
            ["proxy"], a
    assert get_alert(n, CERTS_ALERT, ignore="false")["state"] is False
    allv = get_alert(n, ignore="true")
    assert allv[CERTS_ALERT]["state"] is True, allv
    assert allv[CA_ALERT]["state"] is False, allv
    assert alert_rows(n)[CERTS_ALERT][0] == "disabled"
    assert_no_private_key(n.log, keys=[leaf.key_pem])


# -- 2. settings validation -----------------------------------------------------

BAD_SETTINGS = [
    {"alert_settings": {"nope": {"enabled": True}}},
    {"alert_settings": {CERTS_ALERT: {"bogus": 1}}},
    {"alert_settings": {CERTS_ALERT: {"enabled": "yes"}}},
    {"alert_settings": {CERTS_ALERT: {"enabled": 1}}},
    {"alert_settings": {CERTS_ALERT: {"enabled": None}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": 0}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": "0"}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": 3651}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": -1}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": "abc"}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": "10d"}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": ""}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": 1.5}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": True}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": None}}},
    {"alert_settings": {CERTS_ALERT: {"threshold": [10]}}},
    {"alert_settings": {CERTS_ALERT: True}},
    {"alert_settings": {CERTS_ALERT: "on"}},
    {"alert_settings": []},
    {"alert_settings": "on"},
    {"alert_settings": None},
    # a valid part with a bad one: nothing of it is applied
    {"alert_settings": {CERTS_ALERT: {"threshold": 10},
                        CA_ALERT: {"threshold": 0}}},
    {"alert_settings": {CERTS_ALERT: {"enabled": False}, "nope": {}}},
    {"alert_settings": {CA_ALERT: {"enabled": False, "threshold": 99999}}},
    # nor is another field changed with it
    {"min_data_TLS_version": "1.3",
     "alert_settings": {CERTS_ALERT: {"threshold": "x"}}},
]


def test_alert_settings_validation_changes_nothing(node):
    n = node
    assert alert_settings(n) == DEFAULT_SETTINGS
    before = n.sock("GET", "/v1/cluster").json()
    for body in BAD_SETTINGS:
        r = n.sock("PUT", "/v1/cluster", body)
        assert_error(r, 400, "invalid_schema")
        after = n.sock("GET", "/v1/cluster").json()
        assert after == before, (body, after)
    assert of_type(logs(n), "cluster_settings_changed") == []
    # Unknown alert / bad ignore_settings.
    assert_error(n.sock("GET", "/v1/cluster/alerts/nope"), 404, "not_found")
    for path in ("/v1/cluster/alerts?ignore_settings=maybe",
                 "/v1/cluster/alerts/%s?ignore_settings=yes" % CERTS_ALERT):
        assert_error(n.sock("GET", path), 400, "invalid_schema")

    # What is valid: a number or a string, 1..3650, merged field by field
    # and alert by alert.
    set_alerts(n, {CERTS_ALERT: {"threshold": "10"}})
    assert alert_settings(n) == dict(DEFAULT_SETTINGS, **{
        CERTS_ALERT: {"enabled": True, "threshold": "10"}})
    set_alerts(n, {CERTS_ALERT: {"enabled": False}})
    assert alert_settings(n)[CERTS_ALERT] == {"enabled": False,
                                              "threshold": "10"}
    set_alerts(n, {CA_ALERT: {"threshold": 3650}})
    set_alerts(n, {CERTS_ALERT: {"threshold": 1, "enabled": True}})
    assert alert_settings(n) == dict(DEFAULT_SETTINGS, **{
        CERTS_ALERT: {"enabled": True, "threshold": "1"},
        CA_ALERT: {"enabled": True, "threshold": "3650"}})
    got = get_alert(n)
    assert got[CERTS_ALERT]["threshold"] == "1"
    assert got[CA_ALERT]["threshold"] == "3650"
    # The valid changes are in the log as settings changes.
    assert of_type(logs(n), "cluster_settings_changed"), logs(n)


# -- 3. the cluster CA's alert ----------------------------------------------------

def test_cluster_ca_alert_follows_its_threshold(node):
    n = node
    with open(n.ca) as f:
        ca = certgen.load_pem_chain(f.read())[0]
    a = get_alert(n, CA_ALERT)
    check_alert_shape(a)
    assert a["state"] is False and a["change_value"]["certificates"] == [], a

    set_alerts(n, {CA_ALERT: {"threshold": 3650}})
    a = get_alert(n, CA_ALERT)
    check_alert_shape(a)
    assert a["state"] is True and a["threshold"] == "3650", a
    certs = a["change_value"]["certificates"]
    assert [c["name"] for c in certs] == ["ca"], a
    c = certs[0]
    assert c["issued_by_cluster_ca"] is True, c
    assert c["not_after"] == iso(ca.not_valid_after), (c, ca.not_valid_after)
    left = (ca.not_valid_after - datetime.datetime.utcnow()).total_seconds()
    assert abs(c["seconds_left"] - left) <= 5, (c, left)
    assert 3600 <= c["days_left"] <= 3650, c
    # The service certificates' alert does not watch the CA.
    assert get_alert(n, CERTS_ALERT)["state"] is False
    rows = alert_rows(n)
    assert rows[CA_ALERT][:2] == ["ON", "3650d"], rows
    assert rows[CA_ALERT][3] == "ca:%dd" % c["days_left"], rows
    assert rows[CERTS_ALERT] == ["off", "45d", "-", "-"], rows
    ev = wait_event(n, CA_ALERT, state=True)
    check_event_common(ev)
    assert [x["name"] for x in ev.get("certificates", [])] == ["ca"], ev
    assert of_type(logs(n), CERTS_ALERT) == []

    # Back to the default: off at once.
    set_alerts(n, {CA_ALERT: {"threshold": 45}})
    a = get_alert(n, CA_ALERT)
    assert a["state"] is False and a["threshold"] == "45", a
    assert get_alert(n, CA_ALERT, ignore="true")["state"] is False


# -- 4. what the event log records ---------------------------------------------------

def test_changes_are_recorded_without_secrets(db_node, test_ca):
    n = db_node
    bundle = os.path.join(n.tmp, "bundle.pem")
    with open(n.ca) as f, open(bundle, "w") as out:
        out.write(f.read() + test_ca.cert_pem)
    secrets = ["User-pass-one-1", "User-pass-two-2", "Redis-pass-three-3",
               "Redis-pass-four-4", "Wrong-pass-five-5", ADMIN_PASSWORD]
    expect = ["cluster_created"]

    def https(method, path, body=None, auth="admin"):
        return n.https(method, path, body, auth=auth, verify=bundle)

    def newest(typ):
        got = of_type(logs(n), typ)
        assert got, "no %s event: %r" % (typ, logs(n, limit=10))
        e = got[0]
        check_event_common(e)
        return e

    created = newest("cluster_created")
    assert created["name"] == n.fqdn and created["admin"] == ADMIN_EMAIL, \
        created

    # Certificates: rotate, replace, roll back; each event names the
    # fingerprints served before and after.
    fp0 = n.served_fp()
    r = https("POST", "/v1/cluster/certificates/rotate", {"name": "api"})
    assert r.status_code == 200, r.text
    fp1 = n.served_fp()
    assert fp1 != fp0
    e = newest("certificate_rotated")
    assert (e["name"], e["version"]) == ("api", 2), e
    assert (e["old_fingerprint_sha256"], e["new_fingerprint_sha256"]) == \
        (fp0, fp1), e
    assert ADMIN_EMAIL in e["user"], e
    expect.append("certificate_rotated")

    leaf = leaf_for(test_ca)
    r = https("PUT", "/v1/cluster/update_cert",
              {"name": "api", "key": leaf.key_pem,
               "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    fp2 = n.served_fp()
    assert fp2 == leaf.fingerprint == openssl_fingerprint(leaf.cert_pem)
    e = newest("certificate_updated")
    assert (e["name"], e["version"]) == ("api", 3), e
    assert (e["old_fingerprint_sha256"], e["new_fingerprint_sha256"]) == \
        (fp1, fp2), e
    assert ADMIN_EMAIL in e["user"], e
    expect.append("certificate_updated")

    r = https("POST", "/v1/cluster/certificates/api/rollback", {})
    assert r.status_code == 200, r.text
    assert n.served_fp() == fp1
    e = newest("certificate_rolled_back")
    assert (e["name"], e["version"], e["restored_version"]) == \
        ("api", 4, 2), e
    assert (e["old_fingerprint_sha256"], e["new_fingerprint_sha256"]) == \
        (fp2, fp1), e
    assert ADMIN_EMAIL in e["user"], e
    expect.append("certificate_rolled_back")

    # A policy change: from and to.
    was = n.sock("GET", "/v1/cluster").json()["min_data_TLS_version"]
    to = "1.3" if was != "1.3" else "1.2"
    r = https("PUT", "/v1/cluster", {"min_data_TLS_version": to})
    assert r.status_code == 200, r.text
    e = newest("cluster_settings_changed")
    assert e["changes"] == {"min_data_TLS_version": {"from": was, "to": to}}, e
    assert ADMIN_EMAIL in e["user"], e
    expect.append("cluster_settings_changed")

    # Users.
    r = https("POST", "/v1/users", {"email": "ev@example.com",
                                    "password": secrets[0],
                                    "role": "db_viewer", "name": "Ev"})
    assert r.status_code in (200, 201), r.text
    uid = r.json()["uid"]
    e = newest("user_created")
    assert (e["uid"], e["email"], e["role"]) == \
        (uid, "ev@example.com", "db_viewer"), e
    assert ADMIN_EMAIL in e["user"], e
    r = https("PUT", "/v1/users/%d" % uid, {"password": secrets[1]})
    assert r.status_code == 200, r.text
    e = newest("user_updated")
    assert (e["uid"], e["changed"]) == (uid, ["password"]), e
    assert ADMIN_EMAIL in e["user"], e
    r = https("PUT", "/v1/users/%d" % uid, {"name": "Eve",
                                            "role": "cluster_viewer"})
    assert r.status_code == 200, r.text
    e = newest("user_updated")
    assert (e["uid"], sorted(e["changed"])) == (uid, ["name", "role"]), e
    r = https("DELETE", "/v1/users/%d" % uid)
    assert r.status_code in (200, 204), r.text
    e = newest("user_deleted")
    assert (e["uid"], e["email"]) == (uid, "ev@example.com"), e
    assert ADMIN_EMAIL in e["user"], e
    expect += ["user_created", "user_updated", "user_updated", "user_deleted"]

    # Databases.
    port = free_db_port(n.addr)
    r = https("POST", "/v1/bdbs", {"name": "evdb", "port": port,
                                   "tls_mode": "enabled",
                                   "authentication_redis_pass": secrets[2]})
    assert r.status_code in (200, 201), r.text
    bdb = r.json()["uid"]
    wait_bdb_active(n, bdb)
    e = newest("bdb_created")
    assert (e["bdb_uid"], e["name"], e["port"], e["tls_mode"]) == \
        (bdb, "evdb", port, "enabled"), e
    assert ADMIN_EMAIL in e["user"], e
    r = https("PUT", "/v1/bdbs/%d" % bdb,
              {"name": "evdb2", "authentication_redis_pass": secrets[3]})
    assert r.status_code == 200, r.text
    wait_bdb_active(n, bdb)
    e = newest("bdb_updated")
    assert (e["bdb_uid"], e["name"], sorted(e["changed"])) == \
        (bdb, "evdb2", ["authentication_redis_pass", "name"]), e
    assert ADMIN_EMAIL in e["user"], e
    r = https("DELETE", "/v1/bdbs/%d" % bdb)
    assert r.status_code in (200, 204), r.text
    e = newest("bdb_deleted")
    assert (e["bdb_uid"], e["name"]) == (bdb, "evdb2"), e
    assert ADMIN_EMAIL in e["user"], e
    expect += ["bdb_created", "bdb_updated", "bdb_deleted"]

    # Failed sign-ins: the name as given (control characters replaced),
    # the peer, never the password tried.
    r = https("GET", "/v1/cluster", auth=(ADMIN_EMAIL, secrets[4]))
    assert r.status_code == 401, r.text
    e = newest("failed_sign_in")
    assert (e["user"], e["peer"]) == (ADMIN_EMAIL, "127.0.0.1"), e
    assert e["count"] == 1, e
    # The same address again within the minute: no second event (a flood
    # cannot push the log's real events out).
    r = https("GET", "/v1/cluster", auth=(ADMIN_EMAIL, secrets[4] + "x"))
    assert r.status_code == 401, r.text
    assert len(of_type(logs(n), "failed_sign_in")) == 1
    # A name that is no user (often a password typed into the wrong
    # field) is not repeated in the log every viewer reads.
    r = moatlib.https_request(n.addr, n.port, "GET", "/v1/cluster",
                              auth=("ev\x1bil\x07@example.com", secrets[4]),
                              source="127.0.0.3", cafile=bundle)
    assert r.status == 401, r.body
    e = newest("failed_sign_in")
    assert (e["user"], e["peer"]) == ("(not a user)", "127.0.0.3"), e
    expect += ["failed_sign_in", "failed_sign_in"]

    # Exactly these events, in this order.
    asc = logs(n, order="asc")
    assert [x["type"] for x in asc] == expect, [x["type"] for x in asc]
    for x in asc:
        check_event_common(x)
    # Nothing secret in the log, in any form.
    r = n.sock("GET", "/v1/logs")
    text = r.text
    r2 = https("GET", "/v1/logs")
    assert r2.status_code == 200, r2.text
    for t in (text, r2.text):
        assert "PRIVATE KEY" not in t, t
        assert_no_private_key(t, keys=[leaf.key_pem])
        for s in secrets:
            assert s not in t, (s, t)
        assert "$argon2" not in t


# -- 5. query semantics ------------------------------------------------------------

def test_logs_order_paging_and_time_filters(node):
    n = node
    # Events in at least three distinct seconds: settings changes.
    val = ["1.3", "1.2"]
    k = 0
    for batch in range(3):
        if batch:
            t0 = int(time.time())
            wait_for(lambda: int(time.time()) > t0, 2)
        for _ in range(3):
            r = n.sock("PUT", "/v1/cluster",
                       {"min_data_TLS_version": val[k % 2]})
            assert r.status_code == 200, r.text
            k += 1
    desc = logs(n)
    asc = logs(n, order="asc")
    assert len(desc) == 10, desc           # cluster_created + 9 changes
    assert logs(n, order="desc") == desc
    assert asc == list(reversed(desc))
    assert asc[0]["type"] == "cluster_created"
    times = [e["time"] for e in desc]
    assert times == sorted(times, reverse=True), times

    # Paging.
    for order, full in (("desc", desc), ("asc", asc)):
        pages = []
        for off in range(0, 12, 3):
            pages += logs(n, order=order, limit=3, offset=off)
        assert pages == full, order
    assert logs(n, limit=1) == desc[:1]
    assert logs(n, limit=1000) == desc
    assert logs(n, offset=10) == []
    assert logs(n, offset=9) == desc[9:]

    # Time filters, inclusive, to the second, with the events' own times.
    distinct = sorted(set(times))
    assert len(distinct) >= 3, distinct
    mid = distinct[1]
    assert logs(n, stime=mid, etime=mid) == \
        [e for e in desc if e["time"] == mid]
    assert logs(n, stime=mid) == [e for e in desc if e["time"] >= mid]
    assert logs(n, etime=mid) == [e for e in desc if e["time"] <= mid]
    assert logs(n, stime=mid, order="asc") == \
        [e for e in asc if e["time"] >= mid]
    assert logs(n, stime=mid.rstrip("Z"), etime=mid.rstrip("Z")) == \
        [e for e in desc if e["time"] == mid]
    later = [e for e in asc if e["time"] >= mid]
    assert logs(n, stime=mid, order="asc", limit=2, offset=1) == later[1:3]
    assert logs(n, stime=distinct[0][:10]) == desc      # a date
    assert logs(n, stime=distinct[-1]) == \
        [e for e in desc if e["time"] == distinct[-1]]
    future = iso(datetime.datetime.utcnow() + datetime.timedelta(days=2))
    assert logs(n, stime=future) == []
    assert logs(n, etime="2000-01-01T00:00:00Z") == []

    for params in ({"order": "x"}, {"order": ""}, {"order": "ASC"},
                   {"limit": 0}, {"limit": 1001}, {"limit": "x"},
                   {"limit": ""}, {"limit": -1}, {"limit": "5x"},
                   {"offset": -1}, {"offset": "x"}, {"offset": "1.5"},
                   {"stime": "yesterday"}, {"etime": "yesterday"},
                   {"stime": "2026-13-45"}, {"stime": mid + "x"},
                   {"stime": distinct[-1], "etime": distinct[0]}):
        r = logs(n, expect=400, **params)
        assert_error(r, 400, "invalid_schema")


# -- 6. nodes going down and up ---------------------------------------------------

def kill9(node):
    pid = node.proc.pid
    os.kill(pid, signal.SIGKILL)
    node.proc.wait(10)
    moatlib.LIVE.pop(pid, None)
    node.proc = None
    node.died = None


def count(n, typ, **match):
    return len(of_type(logs(n), typ, **match))


def test_killed_node_is_down_once_and_up_again(etcd1, make_node):
    n1, n2 = make_cluster(make_node, etcd1.url, 2)
    j = wait_event(n1, "node_joined", timeout=2, uid=2)
    assert j["addr"] == "127.0.0.2", j
    assert count(n1, "node_down") == count(n1, "node_up") == 0

    kill9(n2)
    down = wait_event(n1, "node_down", timeout=NODE_DOWN_WAIT, uid=2)
    check_event_common(down, node_uid=1)
    assert down["addr"] == "127.0.0.2", down
    assert down.get("reason") != "stopped", down
    # Node 1 checks every 5 s: it stays one event.
    time.sleep(TICK + 1)
    assert count(n1, "node_down", uid=2) == 1, logs(n1)
    assert count(n1, "node_down", uid=1) == 0, logs(n1)

    n2.start()
    up = wait_event(n1, "node_up", uid=2)
    assert up["addr"] == "127.0.0.2", up
    assert up["time"] >= down["time"], (down, up)
    assert up["node_uid"] in (1, 2), up
    time.sleep(TICK + 1)         # both nodes tick: still one of each
    assert count(n1, "node_up", uid=2) == 1, logs(n1)
    assert count(n1, "node_down", uid=2) == 1, logs(n1)
    assert count(n1, "node_up", uid=1) == 0, logs(n1)
    assert logs(n2) == logs(n1)


def test_clean_stop_is_recorded_once_with_its_reason(etcd1, make_node,
                                                      test_ca):
    n1, n2 = make_cluster(make_node, etcd1.url, 2)
    # An alert transition with both nodes ticking: one event, not two.
    put_cert(n1, "proxy", leaf_for(test_ca, ips=("127.0.0.1", "127.0.0.2"),
                                   days=10))
    assert get_alert(n2, CERTS_ALERT)["state"] is True
    wait_event(n1, CERTS_ALERT, state=True)
    time.sleep(TICK + 1)
    assert count(n1, CERTS_ALERT) == 1, logs(n1)

    assert n2.stop() == 0
    down = wait_event(n1, "node_down", timeout=2, uid=2)
    assert down["reason"] == "stopped", down
    assert down["addr"] == "127.0.0.2", down
    check_event_common(down, node_uid=2)
    time.sleep(TICK + 1)         # node 1 sees it gone: no second event
    assert count(n1, "node_down", uid=2) == 1, logs(n1)
    assert count(n1, "node_down") == 1, logs(n1)
    assert count(n1, CERTS_ALERT) == 1, logs(n1)

    # Removing the stopped node is recorded too.
    r = n1.sock("DELETE", "/v1/nodes/2")
    assert r.status_code in (200, 204), r.text
    e = wait_event(n1, "node_removed", timeout=2, uid=2)
    check_event_common(e)
