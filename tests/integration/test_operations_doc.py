"""docs/operations.md's Prometheus examples work as written.

A newcomer copies the scrape config from the guide, puts in their CA file,
cluster name and node, and must see the expiry of every certificate; the
alerting rule must load.  The config is taken from the document itself
(only the placeholders change), so the guide cannot drift from what the
exporter serves.  Prometheus is stopped by its PID.
"""

import os
import re
import subprocess

import requests

from moatlib import FQDN, wait_for
from test_metrics import LOGICAL_NAMES, Prometheus

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "docs", "operations.md")


def doc_blocks(lang):
    """The fenced blocks of the guide whose fence names lang ("" for a
    bare fence), in order."""
    blocks, cur, kind = [], None, None
    with open(DOC) as f:
        for line in f:
            if line.startswith("```"):
                if cur is None:
                    cur, kind = [], line[3:].strip()
                else:
                    if kind == lang:
                        blocks.append("".join(cur))
                    cur = None
                continue
            if cur is not None:
                cur.append(line)
    return blocks


def scrape_config(node):
    """The guide's first YAML block with the placeholders filled in."""
    cfg = doc_blocks("yaml")[0]
    assert "scrape_configs:" in cfg, cfg
    cfg = cfg.replace("/etc/prometheus/moat-ca.pem", node.ca)
    cfg = cfg.replace("cluster.example.com", FQDN)
    cfg = re.sub(r'targets: \[.*\]',
                 'targets: ["%s:%d"]' % (node.addr, node.metrics_port), cfg)
    # The guide scrapes every 30 s; a test cannot wait that long for two
    # samples, and the interval is not what is being checked.
    return cfg.replace("scrape_interval: 30s", "scrape_interval: 1s")


def test_scrape_config_from_the_guide(node):
    prom = Prometheus({})
    with open(prom.config, "w") as f:
        f.write(scrape_config(node))
    subprocess.run(["promtool", "check", "config", prom.config], check=True,
                   capture_output=True)
    prom.start()
    try:
        def up():
            try:
                t = prom.api("/api/v1/targets")["activeTargets"]
            except (requests.ConnectionError, AssertionError):
                return False    # Prometheus still starting (503)
            return len(t) == 1 and t[0]["health"] == "up"
        assert wait_for(up, 30), "the guide's target is not up: %s" % (
            prom.api("/api/v1/targets"), )
        # The expression the guide gives.
        expr = [b for b in doc_blocks("") if "node_cert_expiration" in b][0]
        got = prom.query(expr.strip())
        names = sorted(s["metric"]["logical_name"] for s in got)
        assert names == sorted(LOGICAL_NAMES), got
        for s in got:
            days = float(s["value"][1])
            want = 3650 if s["metric"]["logical_name"] == "ca" else 365
            assert want - 1 < days <= want, s
            assert s["metric"]["node"] == "1", s
            assert s["metric"]["cluster"] == FQDN, s
    finally:
        prom.stop()


def test_alerting_rule_from_the_guide(tmp_path):
    rule = [b for b in doc_blocks("yaml") if "groups:" in b][0]
    path = tmp_path / "rules.yml"
    path.write_text(rule)
    p = subprocess.run(["promtool", "check", "rules", str(path)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 rules found" in p.stdout, p.stdout
    # And it would fire for a certificate inside a month, not outside.
    test = tmp_path / "test.yml"
    test.write_text("""rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'node_cert_expiration_seconds{logical_name="proxy",node="1"}'
        values: '86400'
      - series: 'node_cert_expiration_seconds{logical_name="api",node="1"}'
        values: '31536000'
    alert_rule_test:
      - eval_time: 1m
        alertname: MoatCertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, logical_name: proxy, node: "1"}
            exp_annotations:
              summary: "proxy on node 1 expires in 1d 0h 0m 0s"
""")
    p = subprocess.run(["promtool", "test", "rules", str(test)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
