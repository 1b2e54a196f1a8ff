"""scripts/cluster-demo, as a newcomer runs it: three etcd members and
three nodes started together come up every time (the nodes wait for
their store instead of exiting), on free ports so that nothing else on
the machine is in the way."""

import os
import shutil
import signal
import socket
import subprocess
import time

from moatlib import BUILD, MOATADM, free_port, short_tmpdir

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RUNS = 3


def free_pair(addrs=("127.0.0.1", "127.0.0.2", "127.0.0.3")):
    """A port p free on every address with p + 1 free too (etcd's client
    and peer ports)."""
    for _ in range(50):
        p = free_port("127.0.0.1")
        if p >= 65535:
            continue
        ok = True
        for a in addrs:
            for q in (p, p + 1):
                with socket.socket() as s:
                    try:
                        s.bind((a, q))
                    except OSError:
                        ok = False
        if ok:
            return p
    raise AssertionError("no free port pair")


def run_once(i):
    d = short_tmpdir("moat-demo-")
    env = dict(os.environ, MOAT_DEMO_DIR=d,
               MOAT_DEMO_API_PORT=str(free_pair()),
               MOAT_DEMO_CM_PORT=str(free_pair()),
               MOAT_DEMO_ETCD_PORT=str(free_pair()))
    out = open(os.path.join(d, "demo.out"), "w+")
    p = subprocess.Popen([os.path.join(ROOT, "scripts", "cluster-demo"),
                          BUILD], cwd=ROOT, env=env, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 60:
            out.seek(0)
            text = out.read()
            if "Three nodes" in text:
                break
            assert p.poll() is None, "run %d: cluster-demo exited %s:\n%s" % (
                i, p.returncode, text)
            time.sleep(0.1)
        else:
            raise AssertionError("run %d: not up in 60 s:\n%s" % (i, text))
        took = time.monotonic() - t0
        st = subprocess.run([MOATADM, "--data-dir", os.path.join(d, "node3"),
                             "status"], capture_output=True, text=True,
                            timeout=30)
        assert st.returncode == 0, st.stderr
        active = [l for l in st.stdout.splitlines()
                  if l.lstrip("*").startswith("node:") and "active" in l]
        assert len(active) == 3, st.stdout
        return took
    finally:
        # Ctrl-C, as a person stops it: the script stops its six processes.
        try:
            os.killpg(p.pid, signal.SIGINT)
            p.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(10)
        out.close()
        shutil.rmtree(d, ignore_errors=True)


def test_cluster_demo_comes_up_every_time():
    times = [run_once(i) for i in range(RUNS)]
    print("cluster-demo up in %s s" % ", ".join("%.1f" % t for t in times))
