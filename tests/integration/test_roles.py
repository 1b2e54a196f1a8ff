"""RS roles and their permission table, over HTTPS with Basic auth.

One node per role (parametrized), so that each role's row of the table
is reported on its own and the tests can run in parallel.
"""

import pytest
import requests

import certgen
from moatlib import ADMIN_EMAIL, assert_error, free_db_port

ROLES = ("admin", "cluster_member", "cluster_viewer", "db_member",
         "db_viewer", "user_manager", "none")
PASSWORD = "role-password-1"

# Who may do what beyond reading cluster, nodes, bdbs and certificates
# (which every role but `none` may).
MAY_LIST_USERS = {"admin", "user_manager"}
MAY_CREATE_BDB = {"admin", "cluster_member", "db_member"}
MAY_CHANGE_CLUSTER = {"admin"}
MAY_MANAGE_USERS = {"admin", "user_manager"}


def email(role):
    return "role-%s@example.com" % role.replace("_", "-")


def add_user(n, mail, role, password=PASSWORD):
    r = n.sock("POST", "/v1/users", {"email": mail, "password": password,
                                     "role": role})
    assert r.status_code in (200, 201), "%s: %s" % (role, r.text)
    u = r.json()
    assert u["role"] == role and u["email"] == mail, u
    return u


def session(n, creds):
    s = requests.Session()
    s.trust_env = False
    s.verify = n.ca
    s.auth = creds
    return s


def test_every_rs_role_is_accepted_and_an_unknown_one_is_not(node):
    n = node
    made = {}
    for role in ROLES:
        made[role] = add_user(n, email(role), role)["uid"]
    r = n.https("GET", "/v1/users")
    assert r.status_code == 200, r.text
    got = {u["email"]: u["role"] for u in r.json()}
    for role in ROLES:
        assert got[email(role)] == role, got
        r = n.https("GET", "/v1/users/%d" % made[role])
        assert r.status_code == 200 and r.json()["role"] == role, r.text
    # PUT accepts them too.
    r = n.https("PUT", "/v1/users/%d" % made["none"], {"role": "db_member"})
    assert r.status_code == 200 and r.json()["role"] == "db_member", r.text
    for bad in ("superuser", "Admin", "", "viewer"):
        r = n.https("POST", "/v1/users", {"email": "x@example.com",
                                          "password": PASSWORD, "role": bad})
        assert_error(r, 400, "invalid_role")
        r = n.https("PUT", "/v1/users/%d" % made["db_viewer"], {"role": bad})
        assert_error(r, 400, "invalid_role")
    assert "x@example.com" not in {u["email"] for u in
                                   n.https("GET", "/v1/users").json()}


@pytest.mark.parametrize("role", ROLES)
def test_role_permission_table(db_node, test_ca, role):
    n = db_node
    me = add_user(n, email(role), role)
    victim = add_user(n, "victim@example.com", "db_viewer")
    doomed = add_user(n, "doomed@example.com", "db_viewer")
    s = session(n, (me["email"], PASSWORD))
    syncer = certgen.make_leaf(test_ca, sans=certgen.service_sans(n.fqdn))

    reads = ("/v1/cluster", "/v1/nodes", "/v1/bdbs",
             "/v1/cluster/certificates")
    table = [("GET", p, None, role != "none") for p in reads]
    table += [
        ("GET", "/v1/users", None, role in MAY_LIST_USERS),
        ("POST", "/v1/bdbs", {"name": "db-" + role.replace("_", "-"),
                              "memory_size": 104857600,
                              "port": free_db_port()},
         role in MAY_CREATE_BDB),
        ("PUT", "/v1/cluster", {"min_data_TLS_version": "1.2"},
         role in MAY_CHANGE_CLUSTER),
        ("PUT", "/v1/cluster/update_cert",
         {"name": "syncer", "key": syncer.key_pem,
          "certificate": syncer.cert_pem}, role in MAY_CHANGE_CLUSTER),
        ("POST", "/v1/cluster/certificates/rotate", {"name": "cm"},
         role in MAY_CHANGE_CLUSTER),
        ("POST", "/v1/users", {"email": "made-by-%s@example.com" %
                               role.replace("_", "-"),
                               "password": PASSWORD, "role": "db_viewer"},
         role in MAY_MANAGE_USERS),
        ("PUT", "/v1/users/%d" % victim["uid"], {"name": "Renamed"},
         role in MAY_MANAGE_USERS),
        ("DELETE", "/v1/users/%d" % doomed["uid"], None,
         role in MAY_MANAGE_USERS),
    ]
    wrong = []
    for method, path, body, allowed in table:
        r = s.request(method, n.url(path), json=body, timeout=60)
        want = (200, 201) if method == "POST" and path == "/v1/users" \
            else (200,)
        if allowed:
            if r.status_code not in want:
                wrong.append((method, path, "want %s" % (want,),
                               r.status_code, r.text[:300]))
        else:
            if r.status_code != 403 or \
                    r.json().get("error_code") != "forbidden":
                wrong.append((method, path, "want 403 forbidden",
                              r.status_code, r.text[:300]))
    assert not wrong, "role %s:\n%s" % (role, "\n".join(map(str, wrong)))

    # What a forbidden call would have changed did not change.
    emails = {u["email"]: u for u in n.sock("GET", "/v1/users").json()}
    assert ("doomed@example.com" in emails) == (role not in MAY_MANAGE_USERS)
    assert emails["victim@example.com"]["name"] == \
        ("Renamed" if role in MAY_MANAGE_USERS else victim["name"])
    bdbs = [b["name"] for b in n.sock("GET", "/v1/bdbs").json()]
    assert bdbs == (["db-" + role.replace("_", "-")]
                    if role in MAY_CREATE_BDB else []), bdbs
    assert (n.sock("GET", "/v1/cluster/certificates/syncer").json()
            ["fingerprint_sha256"] == syncer.fingerprint) == \
        (role in MAY_CHANGE_CLUSTER)


def test_user_manager_cannot_touch_admins(node):
    n = node
    add_user(n, email("user_manager"), "user_manager")
    s = session(n, (email("user_manager"), PASSWORD))
    admin = [u for u in n.sock("GET", "/v1/users").json()
             if u["email"] == ADMIN_EMAIL][0]
    other = add_user(n, "second-admin@example.com", "admin")
    plain = add_user(n, "plain@example.com", "db_viewer")

    def call(method, path, body=None):
        return s.request(method, n.url(path), json=body, timeout=60)

    assert_error(call("POST", "/v1/users", {"email": "new-admin@example.com",
                                            "password": PASSWORD,
                                            "role": "admin"}),
                 403, "forbidden")
    for target in (admin, other):
        path = "/v1/users/%d" % target["uid"]
        assert_error(call("PUT", path, {"role": "db_viewer"}), 403,
                     "forbidden")
        assert_error(call("PUT", path, {"password": "taken-over-pass-1"}),
                     403, "forbidden")
    # Nothing changed: no new admin, both admins as they were.
    users = {u["email"]: u["role"] for u in
             n.sock("GET", "/v1/users").json()}
    assert "new-admin@example.com" not in users
    assert users[ADMIN_EMAIL] == "admin" and \
        users["second-admin@example.com"] == "admin"
    assert n.https("GET", "/v1/cluster").status_code == 200
    assert session(n, ("second-admin@example.com", PASSWORD)).get(
        n.url("/v1/cluster"), timeout=60).status_code == 200
    # A non-admin user is theirs to manage.
    r = call("PUT", "/v1/users/%d" % plain["uid"],
             {"password": "plain-new-pass-1", "role": "cluster_viewer"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "cluster_viewer"
