"""The certificate renewal job (GET/PUT /v1/job_scheduler, RS's
cert_rotation_job_settings).

The job re-issues, from the cluster CA and for 365 days, every certificate
the cluster CA issued that expires within expiry_days_before_rotation days;
a PUT of the settings runs it at once on the node that took the PUT, then
it runs on the cron schedule.  A certificate is made to expire soon with
POST /v1/cluster/certificates/rotate {"name": ..., "validity_days": n}.

    - renewal of the proxy certificate under redis-py load: no command
      fails, no connection drops, new connections get the new certificate;
    - two nodes over etcd: one renewal, never two, even when both nodes run
      the job at the same moment;
    - nothing is renewed while the job is disabled; enabling it renews;
    - an operator's certificate is never renewed (the alert says it);
    - the settings' validation, and rotate's validity_days.
"""

import datetime
import threading
import time

import redis
from cryptography import x509

import certgen
from moatlib import (CERT_NAMES, LoadClient, assert_error, dns_name, make_bdb,
                     make_cluster, served_cert_der, served_fingerprint,
                     wait_for)

DAY = 86400
DEFAULTS = {"cron_expression": "0 * * * *", "enabled": True,
            "expiry_days_before_rotation": 60}
# The job's own tick is 5 s; a renewal is one transaction and its apply.
RENEW_TIMEOUT = 8


# -- helpers ------------------------------------------------------------------

def cert(n, name):
    r = n.sock("GET", "/v1/cluster/certificates/%s" % name)
    assert r.status_code == 200, r.text
    return r.json()


def versions(n):
    return {name: cert(n, name)["version"] for name in CERT_NAMES}


def jobs_get(n):
    r = n.sock("GET", "/v1/job_scheduler")
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["cert_rotation_job_settings"], body
    return body["cert_rotation_job_settings"]


def jobs_put(n, **settings):
    r = n.sock("PUT", "/v1/job_scheduler",
               {"cert_rotation_job_settings": settings})
    assert r.status_code == 200, r.text
    return r.json()["cert_rotation_job_settings"]


def rotate(n, name, days):
    r = n.sock("POST", "/v1/cluster/certificates/rotate",
               {"name": name, "validity_days": days})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["certificates"]] == [name], body
    assert all(x["status"] == "updated" for x in body["nodes"]), body
    info = cert(n, name)
    assert info["issued_by_cluster_ca"] is True, info
    left = info["expires_in_seconds"]
    assert days * DAY - 3600 <= left <= days * DAY + 60, (days, info)
    return info


def events(n, type_=None, name=None):
    r = n.sock("GET", "/v1/logs")
    assert r.status_code == 200, r.text
    return [e for e in r.json()
            if (type_ is None or e.get("type") == type_) and
            (name is None or e.get("name") == name)]


def renewed_events(n, name):
    return events(n, "certificate_renewed", name)


def wait_version(n, name, version, timeout=RENEW_TIMEOUT):
    got = wait_for(lambda: cert(n, name)["version"] >= version, timeout,
                   interval=0.1)
    info = cert(n, name)
    assert got and info["version"] == version, \
        "%s: want version %d within %ds, have %r (job: %r)" % (
            name, version, timeout, info, jobs_get(n))
    return info


def check_renewed(info, old_fp):
    """A renewal's certificate: a year, from the cluster CA, new."""
    assert info["updated_by"] == "renewal job", info
    assert info["issued_by_cluster_ca"] is True, info
    assert info["fingerprint_sha256"] != old_fp, info
    left = info["expires_in_seconds"]
    assert 365 * DAY - 3600 <= left <= 365 * DAY + 60, info


def check_event(ev, name, version, old_fp, new_fp):
    assert ev["type"] == "certificate_renewed", ev
    assert ev["name"] == name, ev
    assert ev["version"] == version, ev
    assert ev["old_fingerprint_sha256"] == old_fp, ev
    assert ev["new_fingerprint_sha256"] == new_fp, ev
    assert ev["user"] == "renewal job", ev
    assert ev["severity"] == "INFO", ev


def not_after_of(der):
    return x509.load_der_x509_certificate(der).not_valid_after


def days_away(when):
    return (when - datetime.datetime.utcnow()).total_seconds() / DAY


# -- 1. under load ------------------------------------------------------------

CLIENTS_SINGLE = 4
CLIENTS_BATCH = 2
BATCH = 40


def test_renewal_under_load(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="renewal")
    port = db["port"]
    sni = dns_name(n, port)

    def served():
        return served_cert_der(n.addr, port, sni, cafile=n.ca)

    assert jobs_get(n) == DEFAULTS
    # Off while the certificate is made short-lived, so that the hourly
    # default schedule cannot renew it before the test looks at it.
    assert jobs_put(n, enabled=False) == dict(DEFAULTS, enabled=False)
    original = cert(n, "proxy")
    before = versions(n)
    assert certgen.fingerprint_der(served()) == \
        original["fingerprint_sha256"]

    stop = threading.Event()
    clients = [LoadClient(n, port, n.ca, i, i >= CLIENTS_SINGLE, stop,
                          batch_size=BATCH)
               for i in range(CLIENTS_SINGLE + CLIENTS_BATCH)]
    assert len({c.client_id for c in clients}) == len(clients)
    for c in clients:
        assert c.peer == original["fingerprint_sha256"]
        c.start()

    problems = []
    try:
        time.sleep(0.3)
        # Ten days left: the database port serves it to new connections.
        short = rotate(n, "proxy", 10)
        assert short["version"] == before["proxy"] + 1
        der = wait_for(lambda: (lambda d: d if certgen.fingerprint_der(d) ==
                                short["fingerprint_sha256"] else None)(
                                    served()), 5)
        assert der, "the database port does not serve the rotated proxy " \
            "certificate"
        assert 9.9 < days_away(not_after_of(der)) < 10.1, not_after_of(der)
        time.sleep(0.3)

        # The settings' PUT (over HTTPS, as the admin) runs the job now.
        r = n.https("PUT", "/v1/job_scheduler", {"cert_rotation_job_settings":
                                                 {"cron_expression":
                                                  "* * * * *",
                                                  "enabled": True}})
        assert r.status_code == 200, r.text
        assert r.json() == {"cert_rotation_job_settings": dict(
            DEFAULTS, cron_expression="* * * * *")}, r.text
        t0 = time.monotonic()
        renewed = wait_version(n, "proxy", short["version"] + 1)
        took = time.monotonic() - t0
        check_renewed(renewed, short["fingerprint_sha256"])

        # New connections get the renewed certificate (a year left) ...
        def serves_renewed():
            d = served()
            return d if certgen.fingerprint_der(d) == \
                renewed["fingerprint_sha256"] else None
        der = wait_for(serves_renewed, 5)
        if not der:
            problems.append(("database port serves",
                             certgen.fingerprint_der(served()),
                             "want", renewed["fingerprint_sha256"]))
        else:
            assert 364.9 < days_away(not_after_of(der)) < 365.1
        # ... and work.
        fresh = redis.Redis(host=n.addr, port=port, ssl=True,
                            ssl_ca_certs=n.ca, socket_timeout=10,
                            single_connection_client=True)
        assert fresh.set("fresh", "1") is True and fresh.get("fresh") == b"1"
        assert certgen.fingerprint_der(
            fresh.connection._sock.getpeercert(binary_form=True)) == \
            renewed["fingerprint_sha256"]
        fresh.close()
        time.sleep(0.5)
    finally:
        stop.set()
        for c in clients:
            c.join(30)
    print("renewed in %.2fs; commands: %s" % (
        took, {c.name: c.commands for c in clients}))
    assert not problems, problems

    for c in clients:
        assert not c.is_alive(), "%s did not finish" % c.name
        assert not c.failures, "%s: %d failed commands, first: %s" % (
            c.name, len(c.failures), c.failures[:5])
        assert c.commands >= 50, "%s ran only %d commands" % (c.name,
                                                              c.commands)
        assert c.sock_changes == 0, "%s reconnected %d times" % (
            c.name, c.sock_changes)
        # The same connection: the same server-side client, still on the
        # certificate it was opened with.
        assert c.r.connection._sock is c.sock
        assert c.r.client_id() == c.client_id, c.name
        assert certgen.fingerprint_der(c.sock.getpeercert(
            binary_form=True)) == original["fingerprint_sha256"]
        c.r.close()

    # One renewal of the proxy certificate, recorded; nothing else moved.
    evs = renewed_events(n, "proxy")
    assert len(evs) == 1, evs
    check_event(evs[0], "proxy", renewed["version"],
                short["fingerprint_sha256"], renewed["fingerprint_sha256"])
    assert events(n, "certificate_renewed") == evs
    after = versions(n)
    assert after == dict(before, proxy=before["proxy"] + 2), (before, after)
    assert "last_error" not in jobs_get(n)
    r = n.sock("GET", "/v1/nodes/1")
    assert r.status_code == 200, r.text
    assert r.json()["certificates"]["proxy"] == {
        "version": renewed["version"],
        "fingerprint_sha256": renewed["fingerprint_sha256"]}


# -- 2. two nodes ---------------------------------------------------------------

def node_versions(n, name):
    """{uid: version of `name`} as GET /v1/nodes through n reports it."""
    r = n.sock("GET", "/v1/nodes")
    assert r.status_code == 200, r.text
    return {x["uid"]: x["certificates"][name]["version"] for x in r.json()}


def file_fp(n, name):
    with open(n.cert_file(name)) as f:
        return certgen.fingerprint(f.read())


def test_two_nodes_renew_once(make_node, etcd1):
    first, second = make_cluster(make_node, etcd1.url, 2)
    both = (first, second)
    start = {n.uid: versions(n) for n in both}
    assert start[first.uid] == start[second.uid]
    v0 = start[first.uid]

    # syncer: five days left; the PUT through node 1 renews it.
    short = rotate(first, "syncer", 5)
    assert short["version"] == v0["syncer"] + 1
    settings = jobs_put(first, cron_expression="* * * * *")
    assert settings == dict(DEFAULTS, cron_expression="* * * * *")
    assert jobs_get(second) == settings
    syncer = wait_version(first, "syncer", short["version"] + 1)
    check_renewed(syncer, short["fingerprint_sha256"])

    # api: three days left, with the job off, then both nodes switch it on
    # at the same moment: both run the job at once, one renewal commits.
    jobs_put(second, enabled=False)
    short_api = rotate(first, "api", 3)
    answers = {}
    first_try = {}

    def enable(n):
        r = n.sock("PUT", "/v1/job_scheduler",
                   {"cert_rotation_job_settings": {"enabled": True}})
        answers[n.uid] = first_try[n.uid] = r
    threads = [threading.Thread(target=enable, args=(n,)) for n in both]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for uid, r in sorted(answers.items()):
        if r.status_code == 409:
            # The two PUTs raced for the settings' key: this one lost and
            # is sent again (its node then runs the job just after).
            assert r.json()["error_code"] == "config_edit_conflict", r.text
            n = first if uid == first.uid else second
            r = answers[uid] = n.sock("PUT", "/v1/job_scheduler",
                                      {"cert_rotation_job_settings":
                                       {"enabled": True}})
        assert r.status_code == 200, (uid, r.text)
    api = wait_version(first, "api", short_api["version"] + 1)
    print("concurrent PUTs answered %s; api renewed by node %s" % (
        {u: r.status_code for u, r in first_try.items()},
        [e.get("node_uid") for e in renewed_events(first, "api")]))
    check_renewed(api, short_api["fingerprint_sha256"])

    # Let every node's tick run a few times more: still one renewal each.
    time.sleep(15)
    for n in both:
        assert cert(n, "syncer")["version"] == short["version"] + 1
        assert cert(n, "api")["version"] == short_api["version"] + 1
        evs = renewed_events(n, "syncer")
        assert len(evs) == 1, evs
        check_event(evs[0], "syncer", syncer["version"],
                    short["fingerprint_sha256"], syncer["fingerprint_sha256"])
        evs = renewed_events(n, "api")
        assert len(evs) == 1, evs
        check_event(evs[0], "api", api["version"],
                    short_api["fingerprint_sha256"], api["fingerprint_sha256"])
        assert len(events(n, "certificate_renewed")) == 2
        assert "last_error" not in jobs_get(n), jobs_get(n)
        assert versions(n) == dict(v0, syncer=v0["syncer"] + 2,
                                   api=v0["api"] + 2)
    # Every node applied both: reported by each, on disk, served.
    want = {first.uid: syncer["version"], second.uid: syncer["version"]}
    for n in both:
        assert wait_for(lambda: node_versions(n, "syncer") == want, 10), \
            node_versions(n, "syncer")
        assert wait_for(lambda: node_versions(n, "api") == {
            first.uid: api["version"], second.uid: api["version"]}, 10), \
            node_versions(n, "api")
        assert file_fp(n, "syncer") == syncer["fingerprint_sha256"], n.addr
        assert file_fp(n, "api") == api["fingerprint_sha256"], n.addr
        assert served_fingerprint(n.addr, n.port) == \
            api["fingerprint_sha256"], n.addr


# -- 3. disabled ----------------------------------------------------------------

def test_disabled_renews_nothing_until_enabled(node):
    n = node
    # Every minute, were it on; the PUT's own run finds it off.
    off = jobs_put(n, enabled=False, cron_expression="* * * * *")
    assert off == dict(DEFAULTS, enabled=False, cron_expression="* * * * *")
    before = versions(n)
    short = rotate(n, "cm", 10)
    time.sleep(12.5)  # two ticks of the job at least
    assert cert(n, "cm") == dict(short, expires_in_seconds=cert(
        n, "cm")["expires_in_seconds"]), "renewed while disabled"
    assert versions(n) == dict(before, cm=before["cm"] + 1)
    assert renewed_events(n, "cm") == []
    assert jobs_get(n) == off

    on = jobs_put(n, enabled=True)
    assert on == dict(off, enabled=True)
    renewed = wait_version(n, "cm", short["version"] + 1, timeout=5)
    check_renewed(renewed, short["fingerprint_sha256"])
    evs = renewed_events(n, "cm")
    assert len(evs) == 1, evs
    check_event(evs[0], "cm", renewed["version"], short["fingerprint_sha256"],
                renewed["fingerprint_sha256"])
    assert versions(n) == dict(before, cm=before["cm"] + 2)


# -- 4. operator certificates ---------------------------------------------------

def test_operator_certificate_is_never_renewed(node, test_ca):
    n = node
    now = certgen.utcnow()
    leaf = certgen.make_leaf(
        test_ca, sans=certgen.service_sans(n.fqdn, (n.addr,)),
        not_before=now - datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=10))
    r = n.sock("PUT", "/v1/cluster/update_cert",
               {"name": "metrics_exporter", "key": leaf.key_pem,
                "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    op = cert(n, "metrics_exporter")
    assert op["issued_by_cluster_ca"] is False, op
    assert op["fingerprint_sha256"] == leaf.fingerprint
    # A cluster-CA certificate due as well, to see that the job ran.
    short = rotate(n, "syncer", 10)

    jobs_put(n, expiry_days_before_rotation=30)
    renewed = wait_version(n, "syncer", short["version"] + 1)
    check_renewed(renewed, short["fingerprint_sha256"])
    # The job ran and left the operator's certificate alone.
    after = cert(n, "metrics_exporter")
    assert after["version"] == op["version"], after
    assert after["fingerprint_sha256"] == leaf.fingerprint, after
    assert after["updated_by"] == op["updated_by"], after
    assert renewed_events(n, "metrics_exporter") == []
    assert "last_error" not in jobs_get(n), jobs_get(n)

    # It stays as it is (the PUT runs the job once more), and the expiry
    # alert names it instead.
    jobs_put(n, expiry_days_before_rotation=90)
    time.sleep(1)
    assert cert(n, "metrics_exporter")["version"] == op["version"]
    assert cert(n, "syncer")["version"] == renewed["version"]
    r = n.sock("GET", "/v1/cluster/alerts/cluster_certs_about_to_expire")
    assert r.status_code == 200, r.text
    alert = r.json()
    assert alert["state"] is True, alert
    hot = alert["change_value"]["certificates"]
    assert [c["name"] for c in hot] == ["metrics_exporter"], alert
    assert hot[0]["issued_by_cluster_ca"] is False, alert
    assert hot[0]["days_left"] in (9, 10), alert
    assert "last_error" not in jobs_get(n), jobs_get(n)


# -- 5. validation ----------------------------------------------------------------

BAD_BODIES = [
    {"cert_rotation_job_settings": {"enabled": False}, "other_job": {}},
    {"backup_job_settings": {"cron_expression": "0 * * * *"}},
    [],
    [{"cert_rotation_job_settings": {"enabled": False}}],
    {"cert_rotation_job_settings": "enabled"},
    {"cert_rotation_job_settings": ["enabled", False]},
    {"cert_rotation_job_settings": None},
]

BAD_FIELDS = [
    {"unknown": 1},
    {"enabled": False, "cron": "* * * * *"},
    {"enabled": "false"},
    {"enabled": 0},
    {"enabled": None},
    {"expiry_days_before_rotation": 0},
    {"expiry_days_before_rotation": 91},
    {"expiry_days_before_rotation": -1},
    {"expiry_days_before_rotation": "30"},
    {"expiry_days_before_rotation": 30.5},
    {"expiry_days_before_rotation": True},
    {"expiry_days_before_rotation": None},
    {"cron_expression": "61 * * * *"},
    {"cron_expression": "* * *"},
    {"cron_expression": "*/0 * * * *"},
    {"cron_expression": "a b c d e"},
    {"cron_expression": "* * * * * *"},
    {"cron_expression": ""},
    {"cron_expression": "* 24 * * *"},
    {"cron_expression": "* * 0 * *"},
    {"cron_expression": "* * * 13 *"},
    {"cron_expression": "* * * * 8"},
    {"cron_expression": "30-10 * * * *"},
    {"cron_expression": 5},
    {"cron_expression": None},
    # A good field with a bad one: nothing of it is stored.
    {"enabled": False, "expiry_days_before_rotation": 0},
    {"cron_expression": "*/5 * * * *", "enabled": "yes"},
]

GOOD_CRONS = ["*/15 * * * *", "0 0 * * 0", "0,30 1-5 * * 1-5", "0 0 1 1 7",
              "5-55/10 */2 1-31 1-12 0-6"]


def test_settings_validation(node):
    n = node
    assert jobs_get(n) == DEFAULTS
    for cron in GOOD_CRONS:
        assert jobs_put(n, cron_expression=cron)["cron_expression"] == cron
    stored = jobs_put(n, cron_expression="30 2 * * *",
                      expiry_days_before_rotation=90)
    assert stored == {"cron_expression": "30 2 * * *", "enabled": True,
                      "expiry_days_before_rotation": 90}
    assert jobs_put(n, expiry_days_before_rotation=1)[
        "expiry_days_before_rotation"] == 1
    stored = jobs_put(n, expiry_days_before_rotation=45)
    assert jobs_get(n) == stored
    changes = len(events(n, "job_scheduler_changed"))

    wrong = []
    for body in BAD_BODIES + [{"cert_rotation_job_settings": f}
                              for f in BAD_FIELDS]:
        r = n.sock("PUT", "/v1/job_scheduler", body)
        if r.status_code != 400 or \
                r.json().get("error_code") != "invalid_schema":
            wrong.append((body, r.status_code, r.text[:300]))
        elif jobs_get(n) != stored:
            wrong.append((body, "stored", jobs_get(n)))
    assert not wrong, wrong
    # Over HTTPS too, with RS's error body.
    assert_error(n.https("PUT", "/v1/job_scheduler",
                         {"cert_rotation_job_settings":
                          {"cron_expression": "61 * * * *"}}),
                 400, "invalid_schema")
    # Not a JSON object at all: refused before the settings are looked at.
    for raw in ("{not json", '"cert_rotation_job_settings"', "true", "null",
                "1", ""):
        r = n.https("PUT", "/v1/job_scheduler", raw)
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["error_code"] in ("invalid_json", "invalid_schema"), \
            (raw, r.text)
    assert jobs_get(n) == stored
    assert len(events(n, "job_scheduler_changed")) == changes

    # Only an admin may change it; a viewer may read it.
    r = n.sock("POST", "/v1/users", {"email": "viewer@example.com",
                                     "password": "viewer-password-1",
                                     "role": "cluster_viewer"})
    assert r.status_code in (200, 201), r.text
    viewer = ("viewer@example.com", "viewer-password-1")
    r = n.https("GET", "/v1/job_scheduler", auth=viewer)
    assert r.status_code == 200, r.text
    assert r.json() == {"cert_rotation_job_settings": stored}
    assert_error(n.https("PUT", "/v1/job_scheduler",
                         {"cert_rotation_job_settings": {"enabled": False}},
                         auth=viewer), 403, "forbidden")
    assert jobs_get(n) == stored

    # rotate's validity_days: 1 to 825 days.
    before = versions(n)
    for days in (0, 826, -1, "x", "10", 10.5, True, None):
        r = n.sock("POST", "/v1/cluster/certificates/rotate",
                   {"name": "proxy", "validity_days": days})
        if r.status_code != 400 or \
                r.json().get("error_code") != "invalid_schema":
            wrong.append((days, r.status_code, r.text[:300]))
    assert not wrong, wrong
    assert versions(n) == before
    assert rotate(n, "proxy", 825)["version"] == before["proxy"] + 1
    assert rotate(n, "proxy", 1)["version"] == before["proxy"] + 2


def test_cron_list_elements_must_not_be_empty(node):
    """A comma list with an empty element is not a cron field (cron(8)
    refuses "1,,2"); moatd must not store it."""
    n = node
    stored = jobs_put(n, cron_expression="0,30 * * * *")
    wrong = []
    for cron in ("1,,2 * * * *", "1, * * * *", ",1 * * * *", "* * * * 1,",
                 ", * * * *"):
        r = n.sock("PUT", "/v1/job_scheduler",
                   {"cert_rotation_job_settings": {"cron_expression": cron}})
        if r.status_code != 400 or \
                r.json().get("error_code") != "invalid_schema":
            wrong.append((cron, r.status_code, jobs_get(n)))
            jobs_put(n, **stored)
    assert not wrong, "malformed cron expressions accepted: %r" % wrong
    assert jobs_get(n) == stored
