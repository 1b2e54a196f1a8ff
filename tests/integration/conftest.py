"""Fixtures: real moatd processes on loopback, one data dir each.

    node        function-scoped, cluster created through the control socket
    ro_node     module-scoped, same, for tests that only read or that must
                leave everything unchanged (error cases)
    fresh_node  function-scoped, moatd running, no cluster yet
    make_node   factory for extra nodes (other addresses, tokens, ...)
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certgen  # noqa: E402
import moatlib  # noqa: E402
from moatlib import Node  # noqa: E402


def _require_binaries():
    missing = moatlib.binaries_missing()
    if missing:
        pytest.fail("not built: %s (set MOAT_BUILD)" % ", ".join(missing),
                    pytrace=False)


class _Nodes:
    """Starts nodes and stops every one of them, by PID, at teardown."""

    def __init__(self):
        self.nodes = []

    def __call__(self, create=True, start=True, **kw):
        _require_binaries()
        n = Node(**kw)
        self.nodes.append(n)
        if start:
            n.start()
            if create:
                n.create_cluster()
        return n

    def close(self):
        died = []
        for n in self.nodes:
            n.stop()
            if n.died is not None:
                died.append((n, n.died))
            elif n.needed_sigkill:
                died.append((n, "none: SIGTERM did not stop it in 5 s, "
                                 "SIGKILL did"))
            elif n.bad_exit is not None:
                died.append((n, "%s after SIGTERM (want 0)" % n.bad_exit))
        logs = [(n, n.log) for n in self.nodes]
        for n in self.nodes:
            n.cleanup()
        return died, logs


def _finish(nodes):
    died, logs = nodes.close()
    if died:
        msg = []
        for n, rc in died:
            msg.append("moatd on %s:%d did not run/stop as expected (exit %s); "
                       "log tail:\n%s"
                       % (n.addr, n.port, rc, n.log[-4000:] or
                          dict(logs).get(n, "")[-4000:]))
        pytest.fail("\n".join(msg), pytrace=False)


@pytest.fixture
def make_node(request):
    nodes = _Nodes()
    request.node._moat_nodes = nodes
    yield nodes
    _finish(nodes)


@pytest.fixture
def node(make_node):
    return make_node()


@pytest.fixture
def fresh_node(make_node):
    return make_node(create=False)


@pytest.fixture(scope="module")
def ro_node(request):
    nodes = _Nodes()
    request.node._moat_nodes = nodes
    n = nodes()
    yield n
    _finish(nodes)


@pytest.fixture(scope="session")
def test_ca():
    """Our own CA (not the cluster's) for replacement certificates."""
    return certgen.make_ca("moat integration test CA")


@pytest.fixture(scope="session", autouse=True)
def _stop_leftovers():
    yield
    for pid, n in list(moatlib.LIVE.items()):
        n.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    seen = set()
    holders = [item] + [p for p in item.listchain() if p is not item]
    for h in holders:
        nodes = getattr(h, "_moat_nodes", None)
        if not nodes:
            continue
        for n in nodes.nodes:
            if id(n) in seen:
                continue
            seen.add(id(n))
            rep.sections.append(("moatd %s:%d log (tail)" % (n.addr, n.port),
                                 n.log[-6000:]))


# -- databases ----------------------------------------------------------------

def _stop_checking_shards(n):
    """Stop moatd n (SIGTERM by PID) and check that the redis-server of
    each of its databases exited with it; any left is killed by PID and the
    test fails."""
    pids = []
    dbs = os.path.join(n.data_dir, "dbs")
    if os.path.isdir(dbs):
        for uid in os.listdir(dbs):
            if uid.isdigit():
                pid = moatlib.redis_pid(n, int(uid))
                if pid:
                    pids.append(pid)
    n.stop()
    left = [p for p in pids
            if not moatlib.wait_for(lambda: not moatlib.pid_running(p), 5)]
    if left:
        killed = moatlib.kill_redis_leftovers()
        pytest.fail("redis-server pid(s) %s still ran 5 s after moatd stopped "
                    "(killed by PID: %s)" % (left, killed), pytrace=False)


@pytest.fixture
def db_node(make_node):
    """Like `node`; at teardown also checks that its shards stopped."""
    n = make_node()
    yield n
    _stop_checking_shards(n)


@pytest.fixture(scope="module")
def db_ro_node(request):
    """Module-scoped `db_node`."""
    nodes = _Nodes()
    request.node._moat_nodes = nodes
    n = nodes()
    yield n
    try:
        _stop_checking_shards(n)
    finally:
        _finish(nodes)


@pytest.fixture(scope="session", autouse=True)
def _stop_redis_leftovers(_stop_leftovers):
    # Depends on _stop_leftovers so that it runs after every moatd stopped.
    yield
    moatlib.kill_redis_leftovers()


# Etcd members on 127.0.0.1-3 (free ports), stopped by PID at the end: for
# tests of clusters and of moving to etcd.  (test_cluster.py has its own.)
@pytest.fixture
def etcd3():
    e = moatlib.EtcdCluster(3)
    try:
        e.start_all()
        yield e
    finally:
        e.close()


@pytest.fixture
def etcd1():
    e = moatlib.EtcdCluster(1)
    try:
        e.start_all()
        yield e
    finally:
        e.close()
