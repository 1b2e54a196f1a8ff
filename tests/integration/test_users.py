"""Users, roles, authentication and login throttling over HTTPS."""

import time

import requests

import certgen
from moatlib import ADMIN_EMAIL, assert_error, assert_no_private_key

VIEWER = ("viewer@example.com", "viewer-password-1")
DBVIEWER = ("dbviewer@example.com", "dbviewer-password-1")
# auth_method: RS says how each user signs in ("regular": a password)
USER_FIELDS = {"uid", "email", "name", "role", "auth_method"}


SECRETS = ("viewer-password-1", "dbviewer-password-1", "new-viewer-pass-2",
           "another-pass-1")


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


def no_password(r):
    """No password, hash or password field in a response.  (An error
    description may say the word, e.g. invalid_password's.)"""
    from moatlib import ADMIN_PASSWORD
    for secret in SECRETS + (ADMIN_PASSWORD,):
        assert secret not in r.text, r.text
    assert "$argon2" not in r.text, r.text
    try:
        body = r.json()
    except ValueError:
        return
    bad = [k for k in _keys(body) if "password" in k.lower() or
           "hash" in k.lower()]
    assert not bad, (bad, r.text)


def create_user(n, email, password, role, name=None):
    body = {"email": email, "password": password, "role": role}
    if name:
        body["name"] = name
    r = n.session.post(n.url("/v1/users"), json=body, timeout=60)
    assert r.status_code in (200, 201), r.text
    no_password(r)
    u = r.json()
    assert set(u) == USER_FIELDS, u
    assert u["email"] == email and u["role"] == role
    return u


def as_user(n, creds):
    s = requests.Session()
    s.trust_env = False
    s.verify = n.ca
    s.auth = creds
    return s


def test_roles(node, test_ca):
    n = node
    viewer = create_user(n, *VIEWER, "cluster_viewer", name="Viewer")
    assert viewer["name"] == "Viewer"
    dbv = create_user(n, *DBVIEWER, "db_viewer")

    r = n.session.get(n.url("/v1/users"), timeout=30)
    assert r.status_code == 200, r.text
    no_password(r)
    users = r.json()
    assert {u["email"] for u in users} == {ADMIN_EMAIL, VIEWER[0], DBVIEWER[0]}
    assert all(set(u) == USER_FIELDS for u in users), users
    r = n.session.get(n.url("/v1/users/%d" % viewer["uid"]), timeout=30)
    assert r.status_code == 200 and r.json() == viewer, r.text
    no_password(r)

    v = as_user(n, VIEWER)
    for path in ("/v1/cluster", "/v1/nodes", "/v1/nodes/1",
                 "/v1/cluster/certificates", "/v1/cluster/certificates/api"):
        r = v.get(n.url(path), timeout=30)
        assert r.status_code == 200, (path, r.text)
        assert_no_private_key(r.text)
    # As in RS, only admin and user_manager may list users.
    assert_error(v.get(n.url("/v1/users"), timeout=30), 403, "forbidden")

    before = n.snapshot()
    leaf = certgen.make_leaf(test_ca,
                             sans=certgen.service_sans(n.fqdn, (n.addr,)))
    for method, path, body in (
            ("PUT", "/v1/cluster", {"min_control_TLS_version": "1.3"}),
            ("PUT", "/v1/cluster/update_cert",
             {"name": "api", "key": leaf.key_pem, "certificate": leaf.cert_pem}),
            ("PUT", "/v1/cluster/certificates",
             {"certificates": [{"name": "api", "key": leaf.key_pem,
                                "certificate": leaf.cert_pem}]}),
            ("POST", "/v1/cluster/certificates/rotate", {"name": "api"}),
            ("POST", "/v1/users", {"email": "x@example.com",
                                   "password": "xxxxxxxxxxxx",
                                   "role": "admin"}),
            ("PUT", "/v1/users/%d" % viewer["uid"], {"role": "admin"}),
            ("DELETE", "/v1/users/%d" % dbv["uid"], None)):
        r = v.request(method, n.url(path), json=body, timeout=60)
        assert_error(r, 403, "forbidden")
    assert n.snapshot() == before
    assert len(n.session.get(n.url("/v1/users"), timeout=30).json()) == 3

    d = as_user(n, DBVIEWER)
    assert_error(d.get(n.url("/v1/users"), timeout=30), 403, "forbidden")
    assert_error(d.get(n.url("/v1/users/%d" % viewer["uid"]), timeout=30),
                 403, "forbidden")
    for path in ("/v1/cluster", "/v1/nodes", "/v1/cluster/certificates"):
        r = d.get(n.url(path), timeout=30)
        assert r.status_code == 200, (path, r.text)
        assert_no_private_key(r.text)
    assert_error(d.put(n.url("/v1/cluster/update_cert"),
                       json={"name": "api", "key": leaf.key_pem,
                             "certificate": leaf.cert_pem}, timeout=60),
                 403, "forbidden")
    assert n.snapshot() == before


def test_authentication(node):
    n = node
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, timeout=30)
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate") == 'Basic realm="moat"', r.headers
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, timeout=30,
                     auth=(ADMIN_EMAIL, "wrong-password-123"))
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate") == 'Basic realm="moat"'
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, timeout=30,
                     auth=("nobody@example.com", n.password))
    assert_error(r, 401, "unauthorized")
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, timeout=30,
                     headers={"Authorization": "Bearer abc"})
    assert r.status_code in (400, 401), r.text
    # A successful login works (and resets the failure count).
    assert n.session.get(n.url("/v1/cluster"), timeout=30).status_code == 200


def test_user_management_errors(node):
    n = node
    s = n.session
    me = [u for u in s.get(n.url("/v1/users"), timeout=30).json()
          if u["email"] == ADMIN_EMAIL][0]
    create_user(n, *VIEWER, "cluster_viewer")

    def post(body):
        return s.post(n.url("/v1/users"), json=body, timeout=60)

    # Lazily, one at a time: a request that wrongly succeeds must not
    # change what the following ones see.
    cases = (
        (lambda: post({"email": VIEWER[0], "password": "another-pass-1",
                       "role": "admin"}), 409, "email_already_exists"),
        (lambda: post({"email": "r@example.com", "password": "another-pass-1",
                       "role": "superuser"}), 400, "invalid_role"),
        (lambda: post({"email": "r@example.com", "password": "short",
                       "role": "admin"}), 400, "invalid_password"),
        (lambda: post({"email": "r@example.com", "role": "admin"}), 400,
         "invalid_schema"),
        (lambda: s.get(n.url("/v1/users/999"), timeout=30), 404,
         "user_not_found"),
        (lambda: s.put(n.url("/v1/users/999"), json={"name": "x"},
                       timeout=30), 404, "user_not_found"),
        (lambda: s.delete(n.url("/v1/users/999"), timeout=30), 404,
         "user_not_found"),
        (lambda: s.delete(n.url("/v1/users/%d" % me["uid"]), timeout=30),
         409, "change_last_admin_role_not_allowed"),
        (lambda: s.put(n.url("/v1/users/%d" % me["uid"]),
                       json={"role": "cluster_viewer"}, timeout=30), 409,
         "change_last_admin_role_not_allowed"),
        (lambda: post({"email": "bad:colon@example.com",
                       "password": "another-pass-1",
                       "role": "cluster_viewer"}), 400, "invalid_email"),
        (lambda: post({"email": "two words@example.com",
                       "password": "another-pass-1",
                       "role": "cluster_viewer"}), 400, "invalid_email"),
        # Last: not an email address at all (no "@").
        (lambda: post({"email": "not-an-email", "password": "another-pass-1",
                       "role": "cluster_viewer"}), 400, "invalid_email"),
    )
    for send, st, code in cases:
        r = send()
        assert_error(r, st, code)
        no_password(r)
    users = s.get(n.url("/v1/users"), timeout=30).json()
    assert len(users) == 2
    assert [u["role"] for u in users if u["uid"] == me["uid"]] == ["admin"]


def test_user_update_and_delete(node):
    n = node
    s = n.session
    u = create_user(n, *VIEWER, "cluster_viewer")
    r = s.put(n.url("/v1/users/%d" % u["uid"]),
              json={"password": "new-viewer-pass-2", "name": "Renamed"},
              timeout=60)
    assert r.status_code == 200, r.text
    no_password(r)
    assert r.json()["name"] == "Renamed"
    assert as_user(n, (VIEWER[0], "new-viewer-pass-2")).get(
        n.url("/v1/cluster"), timeout=30).status_code == 200
    assert as_user(n, VIEWER).get(n.url("/v1/cluster"),
                                  timeout=30).status_code == 401
    # Promote to admin: now the first admin may be removed.
    r = s.put(n.url("/v1/users/%d" % u["uid"]), json={"role": "admin"},
              timeout=60)
    assert r.status_code == 200 and r.json()["role"] == "admin", r.text
    other = as_user(n, (VIEWER[0], "new-viewer-pass-2"))
    r = other.put(n.url("/v1/cluster"), json={"min_data_TLS_version": "1.2"},
                  timeout=60)
    assert r.status_code == 200, r.text
    r = s.delete(n.url("/v1/users/%d" % u["uid"]), timeout=30)
    assert r.status_code == 200, r.text
    assert_error(s.get(n.url("/v1/users/%d" % u["uid"]), timeout=30), 404,
                 "user_not_found")
    assert other.get(n.url("/v1/cluster"), timeout=30).status_code == 401


def test_unknown_path_and_method(ro_node):
    n = ro_node
    assert_error(n.session.get(n.url("/v1/no_such_thing"), timeout=30), 404,
                 "not_found")
    assert_error(n.session.delete(n.url("/v1/cluster"), timeout=30), 405,
                 "method_not_allowed")
    assert_error(n.sock("GET", "/v1/no_such_thing"), 404, "not_found")
    assert_error(n.sock("PATCH", "/v1/cluster/update_cert", {}), 405,
                 "method_not_allowed")


def test_failed_login_throttling(node):
    """Own node: throttling slows down 127.0.0.1 for this moatd only.  The
    failures are for another name: five for the admin would lock the admin
    (test_user_lockout)."""
    n = node
    bad = ("someone-else@example.com", "wrong-password-123")
    for i in range(5):
        r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=bad,
                         timeout=30)
        assert_error(r, 401, "unauthorized")
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=bad, timeout=30)
    assert_error(r, 429, "too_many_failed_logins")
    retry = r.headers.get("Retry-After")
    assert retry is not None and retry.isdigit(), r.headers
    assert 1 <= int(retry) <= 60
    # Even the right password is held back while the delay runs.
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=n.creds,
                     timeout=30)
    assert_error(r, 429, "too_many_failed_logins")
    # The control socket is not an HTTP-auth client: unaffected.
    assert n.sock("GET", "/v1/cluster").status_code == 200
    wait = int(r.headers.get("Retry-After", retry))
    if wait > 8:
        return  # the 429 is asserted; do not spend the suite's time waiting
    time.sleep(wait + 0.5)
    r = requests.get(n.url("/v1/cluster"), verify=n.ca, auth=n.creds,
                     timeout=30)
    assert r.status_code == 200, r.text
    # The successful login reset the address's count: one failure is a
    # plain 401 (for a name not locked by its own five failures).
    r = requests.get(n.url("/v1/cluster"), verify=n.ca,
                     auth=("a-third@example.com", "wrong-password-123"),
                     timeout=30)
    assert_error(r, 401, "unauthorized")


def test_users_survive_restart(node):
    n = node
    u = create_user(n, *VIEWER, "cluster_viewer", name="Viewer")
    n.restart()
    r = as_user(n, VIEWER).get(n.url("/v1/cluster"), timeout=30)
    assert r.status_code == 200, r.text
    r = n.session.get(n.url("/v1/users/%d" % u["uid"]), timeout=30)
    assert r.status_code == 200 and r.json() == u, r.text
    assert_error(as_user(n, VIEWER).put(n.url("/v1/cluster"), json={},
                                        timeout=30), 403, "forbidden")
