"""Out of file descriptors on the API port: moatd pauses accepting instead
of spinning, says so once, and serves again as soon as descriptors free up.

moatd's descriptor limit is lowered while it runs (prlimit --pid), then
more idle TCP connections are opened to the API port than it can accept.
"""

import os
import socket
import subprocess
import time

from moatlib import wait_for

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def nofile(pid):
    """moatd's (soft, hard) descriptor limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return soft, hard
    raise AssertionError("no open-files limit for %d" % pid)


def test_api_port_out_of_descriptors(node):
    n = node
    pid = n.proc.pid
    assert n.sock("GET", "/v1/cluster").status_code == 200
    soft, hard = nofile(pid)
    # Only the soft limit: lowering the hard one could not be undone.
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=256:" + hard],
                   check=True)
    held = []
    log0 = len(n.log)
    try:
        failed = 0
        while len(held) < 400 and failed < 5:
            s = socket.socket()
            s.settimeout(0.3)
            # From 20 addresses: one address may hold only so many.
            s.bind(("127.0.0.%d" % (100 + len(held) % 20), 0))
            try:
                # Past what moatd took, the kernel's backlog holds some;
                # past that, connecting times out.
                s.connect((n.addr, n.port))
            except OSError:
                s.close()
                failed += 1
                continue
            held.append(s)
        assert len(held) > 256, "only %d connections opened" % len(held)
        cpu0 = cpu_seconds(pid)
        time.sleep(3)
        spent = cpu_seconds(pid) - cpu0
        grown = n.log[log0:]
        # Before the guard: 100% of a core and 200 MB of log in 6 s.
        assert spent < 0.5, "moatd spent %.2f s of CPU in 3 s" % spent
        assert len(grown) < 20000, "the log grew by %d bytes" % len(grown)
        assert grown.count("cannot accept connections") == 1, grown[-2000:]
    finally:
        for s in held:
            s.close()
        subprocess.run(["prlimit", "--pid", str(pid),
                        "--nofile=%s:%s" % (soft, hard)], check=True)
    # Descriptors free again: the API answers within a pause or two.
    def answers():
        try:
            return n.https("GET", "/v1/cluster").status_code == 200
        except Exception:
            return False
    assert wait_for(answers, 10), "the API port never came back"
