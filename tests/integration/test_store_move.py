"""Moving a populated single node from the embedded store to a three-member
etcd (members on 127.0.0.1/.2/.3), and the refusal to move into an etcd
that already holds a cluster."""

import time

import pytest

import moatlib
from moatlib import (ADMIN_EMAIL, assert_error, free_db_port, https_request,
                     redis_client, sock_many, wait_bdb_active)

USERS = 300
DBS = 20
# Roles every build knows, so that the move itself is what is tested.
USER_ROLES = ("db_viewer", "cluster_viewer", "admin")


def user_set(n):
    r = n.sock("GET", "/v1/users")
    assert r.status_code == 200, r.text
    return sorted((u["uid"], u["email"], u["role"]) for u in r.json())


def bdb_set(n):
    r = n.sock("GET", "/v1/bdbs")
    assert r.status_code == 200, r.text
    return sorted((b["uid"], b["name"], b["port"]) for b in r.json())


def wait_all_active(n, uids, timeout=30):
    deadline = time.monotonic() + timeout
    for uid in uids:
        wait_bdb_active(n, uid, timeout=max(1.0, deadline - time.monotonic()))


def db_client(n, obj, **kw):
    return redis_client(n, obj["port"], tls=obj.get("tls_mode") == "enabled",
                        **kw)


def check_data(n, dbs):
    for obj in dbs:
        c = db_client(n, obj)
        try:
            assert c.ping()
            assert c.get("moved") == obj["name"].encode(), obj["name"]
        finally:
            c.close()


def sign_in(n, email, password):
    return https_request(n.addr, n.port, "GET", "/v1/cluster",
                         auth=(email, password), cafile=n.ca)


def test_move_to_etcd_keeps_300_users_and_20_databases(etcd3, db_node):
    n = db_node
    t0 = time.monotonic()
    rs = sock_many(n, [("POST", "/v1/users", {
        "email": "user%03d@example.com" % i,
        "password": "user-password-%03d" % i,
        "role": USER_ROLES[i % len(USER_ROLES)]}) for i in range(USERS)],
        threads=8)
    took_users = time.monotonic() - t0
    bad = [(i, r.status_code, r.text[:200]) for i, r in enumerate(rs)
           if r.status_code not in (200, 201)]
    assert not bad, bad[:5]
    print("created %d users in %.1fs" % (USERS, took_users))

    dbs = []
    for i in range(DBS):
        r = n.sock("POST", "/v1/bdbs", {"name": "db%d" % i,
                                        "memory_size": 104857600,
                                        "port": free_db_port()})
        assert r.status_code == 200, r.text
        dbs.append(r.json())
    wait_all_active(n, [d["uid"] for d in dbs])
    for obj in dbs:
        c = db_client(n, obj)
        c.set("moved", obj["name"])
        c.close()
    users_before = user_set(n)
    assert len(users_before) == USERS + 1
    bdbs_before = bdb_set(n)
    fps_before = n.fingerprints()
    policy_before = n.sock("GET", "/v1/cluster").json()
    assert_error(n.sock("GET", "/v1/cluster/store"), 409, "store_not_shared")
    keys_before = etcd3.key_count()

    t0 = time.monotonic()
    r = n.sock("PUT", "/v1/cluster/store", {"store": etcd3.url}, timeout=120)
    took_move = time.monotonic() - t0
    assert r.status_code == 200, r.text
    print("moved in %.1fs" % took_move)

    def everything_there(tag):
        r = n.sock("GET", "/v1/cluster/store")
        assert r.status_code == 200, (tag, r.text)
        assert r.json()["store"] == etcd3.url, tag
        assert user_set(n) == users_before, tag
        assert bdb_set(n) == bdbs_before, tag
        wait_all_active(n, [d["uid"] for d in dbs])
        assert n.fingerprints() == fps_before, tag
        assert n.served_fp() == fps_before["api"], tag
        assert n.sock("GET", "/v1/cluster").json() == policy_before, tag
        # Password hashes came along: users sign in with their passwords.
        for i in (0, 1, 2, USERS - 1):
            r = sign_in(n, "user%03d@example.com" % i,
                        "user-password-%03d" % i)
            assert r.status_code == 200, (tag, i, r.text)
        assert sign_in(n, ADMIN_EMAIL, n.password).status_code == 200, tag
        check_data(n, dbs)

    everything_there("after the move")
    # The cluster is in etcd now.
    assert etcd3.key_count() > keys_before
    # It reads the etcd URL from its data dir when it starts again.
    n.restart()
    everything_there("after a restart")
    # A change lands in etcd and is served.
    r = n.sock("POST", "/v1/cluster/certificates/rotate", {"name": "api"})
    assert r.status_code == 200, r.text
    assert n.served_fp() != fps_before["api"]


def test_move_into_an_etcd_that_holds_a_cluster_is_refused(etcd1, make_node):
    other = make_node(addr="127.0.0.2", extra_args=["--store", etcd1.url])
    r = other.sock("POST", "/v1/users", {"email": "theirs@example.com",
                                         "password": "their-password-1",
                                         "role": "db_viewer"})
    assert r.status_code in (200, 201), r.text
    n = make_node(addr="127.0.0.1")
    r = n.sock("POST", "/v1/users", {"email": "ours@example.com",
                                     "password": "our-password-1",
                                     "role": "db_viewer"})
    assert r.status_code in (200, 201), r.text
    ours, theirs = n.snapshot(), other.snapshot()
    our_users, their_users = user_set(n), user_set(other)

    r = n.sock("PUT", "/v1/cluster/store", {"store": etcd1.url})
    assert_error(r, 409, "cluster_already_exists")
    p = n.adm("cluster", "store", "move", etcd1.url)
    assert p.returncode != 0, p.stdout

    # Nothing changed on either side.
    assert_error(n.sock("GET", "/v1/cluster/store"), 409, "store_not_shared")
    assert n.snapshot() == ours and user_set(n) == our_users
    assert other.snapshot() == theirs and user_set(other) == their_users
    n.restart()
    assert_error(n.sock("GET", "/v1/cluster/store"), 409, "store_not_shared")
    assert user_set(n) == our_users
