"""The control thread never waits for the data plane: a redis-server that
does not answer (stopped with SIGSTOP, so it ignores SIGTERM) being deleted
or reconfigured must not stall the API, and a database deleted and created
again on the same port is served at once.

Each of these once held moatd's control thread: stopping a shard slept up
to 5 s waiting for it to exit, and a live CONFIG SET waited 2 s per command
for its reply."""

import os
import signal
import time

import pytest

from moatlib import (bdb_create, bdb_dir, free_db_port, make_bdb, pid_gone,
                     pid_running, redis_client, redis_pid, tls_data_connect,
                     wait_bdb_active, wait_for)

# What "answers at once" means here: far below the 5 s a stuck stop took.
QUICK = 1.0
# moatd's SIGTERM-to-SIGKILL wait for a shard (STOP_WAIT_MS).
STOP_WAIT = 5.0


def timed(f, *args, **kw):
    t0 = time.monotonic()
    r = f(*args, **kw)
    return r, time.monotonic() - t0


def slowest_answer(n, seconds, path="/v1/bdbs"):
    """Ask the API over and over for `seconds`; the slowest answer time."""
    worst = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, dt = timed(n.sock, "GET", path, timeout=10)
        assert r.status_code == 200, r
        worst = max(worst, dt)
        time.sleep(0.05)
    return worst


@pytest.fixture
def stuck():
    """SIGSTOP a pid; SIGCONT at teardown if it still exists, so that no
    test leaves a stopped process behind for moatd's shutdown."""
    pids = []

    def stop(pid):
        pids.append(pid)
        os.kill(pid, signal.SIGSTOP)

    yield stop
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_delete_stuck_shard_keeps_api_answering(db_node, stuck):
    n = db_node
    db = make_bdb(n, tls=True)
    uid, port = db["uid"], db["port"]
    other = make_bdb(n, tls=False)
    pid = redis_pid(n, uid)
    assert pid and pid_running(pid)
    stuck(pid)

    r, dt = timed(n.sock, "DELETE", "/v1/bdbs/%d" % uid, timeout=30)
    assert r.status_code in (200, 204), r.text
    assert dt < QUICK, "DELETE took %.2f s" % dt
    t0 = time.monotonic()
    # The stop takes STOP_WAIT (SIGTERM is not delivered to a stopped
    # process); meanwhile the API keeps answering at once.
    worst = slowest_answer(n, STOP_WAIT - 1.5)
    assert worst < QUICK, "an API call took %.2f s while a shard stopped" \
        % worst
    # SIGKILL after STOP_WAIT; reaped (no zombie), directory removed.
    assert wait_for(lambda: pid_gone(pid), STOP_WAIT + 5), \
        "redis-server %d not reaped %.1f s after DELETE" % (
            pid, time.monotonic() - t0)
    assert wait_for(lambda: not os.path.exists(bdb_dir(n, uid)), 5), \
        os.listdir(bdb_dir(n, uid))
    assert "did not stop in 5000 ms: SIGKILL" in n.log
    # The other database never stopped serving.
    c = redis_client(n, other["port"], tls=False)
    assert c.ping()
    c.close()
    r = n.sock("GET", "/v1/bdbs/%d" % other["uid"])
    assert r.json()["status"] == "active", r.text


def test_reconfigure_stuck_shard_keeps_api_answering(db_node, stuck):
    n = db_node
    db = make_bdb(n, tls=True, memory_size=64 * 1024 * 1024)
    uid, port = db["uid"], db["port"]
    pid = redis_pid(n, uid)
    stuck(pid)

    # Two live changes while it does not answer.
    r, dt = timed(n.sock, "PUT", "/v1/bdbs/%d" % uid,
                  {"memory_size": 48 * 1024 * 1024}, timeout=30)
    assert r.status_code == 200, r.text
    assert dt < QUICK, "PUT took %.2f s" % dt
    r = n.sock("PUT", "/v1/bdbs/%d" % uid,
               {"memory_size": 40 * 1024 * 1024}, timeout=30)
    assert r.status_code == 200, r.text
    worst = slowest_answer(n, 2.5)
    assert worst < QUICK, "an API call took %.2f s while a shard did " \
        "not answer CONFIG SET" % worst
    os.kill(pid, signal.SIGCONT)
    # Applied live once it answers, the last one winning; no restart.
    c = redis_client(n, port)
    assert wait_for(lambda: c.config_get("maxmemory")["maxmemory"] ==
                    str(40 * 1024 * 1024), 15), c.config_get("maxmemory")
    c.close()
    assert redis_pid(n, uid) == pid and pid_running(pid)


def listening(addr, port):
    import socket
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


def test_delete_and_recreate_same_port(db_node, stuck):
    """Deleted, then created again on the same port while the old shard is
    still stopping: the database uid is handed out again, so the new shard
    has the same directory; it starts once the old process is gone and its
    data removed, and the API answers meanwhile."""
    n = db_node
    port = free_db_port(n.addr)
    db = make_bdb(n, tls=True, port=port)
    c = redis_client(n, port)
    c.set("old", "1")
    c.close()
    s = tls_data_connect(n, port)
    pid = redis_pid(n, db["uid"])
    stuck(pid)

    r, dt = timed(n.sock, "DELETE", "/v1/bdbs/%d" % db["uid"], timeout=30)
    assert r.status_code in (200, 204), r.text
    assert dt < QUICK, "DELETE took %.2f s" % dt
    # Applied: the endpoint is closed (its shard is still stopping).
    assert wait_for(lambda: not listening(n.addr, port), 5), \
        "port %d still accepts connections after DELETE" % port
    assert pid_running(pid)
    o = bdb_create(n, {"name": "again%d" % port, "port": port,
                       "tls_mode": "enabled"})
    t0 = time.monotonic()
    worst = slowest_answer(n, 2.0, "/v1/bdbs/%d" % o["uid"])
    assert worst < QUICK, "an API call took %.2f s" % worst
    wait_bdb_active(n, o["uid"], timeout=STOP_WAIT + 10)
    assert pid_gone(pid), "a new shard runs while the old one is not reaped"
    new_pid = redis_pid(n, o["uid"])
    assert new_pid != pid and pid_running(new_pid)
    if o["uid"] == db["uid"]:
        assert time.monotonic() - t0 > STOP_WAIT - 3, \
            "started before the old process of the same uid was killed"
    # The old connection was closed with its database ...
    s.settimeout(10)
    try:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        got = s.recv(64)
    except OSError:
        got = b""
    assert got == b"", got
    s.close()
    # ... and the new database answers on the port, empty.
    c = redis_client(n, port)
    assert c.ping()
    assert c.get("old") is None
    c.set("k", "v")
    assert c.get("k") == b"v"
    c.close()
    assert "cannot serve port %d" % port not in n.log, n.log[-3000:]
