"""A database holds thousands of TLS clients even when moatd starts with
Debian's default soft limit of 1024 open files: each client costs moatd two
descriptors (the client's and the shard's), so moatd raises its soft limit
to the hard one, and its shard takes as many clients."""
import os
import resource
import ssl

from moatlib import (Node, make_bdb, resp_ping, tls_client_context,
                     tls_data_connect)

CLIENTS = 3000


def limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open files limit in /proc/%d/limits" % pid)


def test_thousands_of_clients_from_a_soft_limit_of_1024():
    own = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert own[1] >= 2 * CLIENTS + 1000, \
        "the hard open files limit (%d) is too low for this test" % own[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, own[1]))
    n = Node()
    try:
        n.start()
    finally:
        # This process holds the clients' ends.
        resource.setrlimit(resource.RLIMIT_NOFILE, (own[1], own[1]))
    socks = []
    try:
        soft, hard = limits(n.proc.pid)
        assert soft == hard == own[1], (soft, hard)
        n.create_cluster()
        db = make_bdb(n)
        ctx = tls_client_context(cafile=n.ca)
        for i in range(CLIENTS):
            s = tls_data_connect(n, db["port"], ctx)
            socks.append(s)
            # Every so often, and the last one: answered, not queued.
            if i % 500 == 0 or i == CLIENTS - 1:
                assert resp_ping(s) == b"+PONG\r\n", i
        for s in socks[::100]:
            assert resp_ping(s) == b"+PONG\r\n"
        assert "Too many open files" not in n.log
        assert "max number of clients" not in n.log.lower()
    finally:
        for s in socks:
            try:
                s.close()
            except (OSError, ssl.SSLError):
                pass
        n.stop()
        n.cleanup()
