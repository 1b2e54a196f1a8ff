"""moatadm end to end, through the control socket of a real moatd."""

import os
import subprocess

import pytest
import requests

import certgen
from moatlib import (ADMIN_EMAIL, ADMIN_PASSWORD, CERT_NAMES, MOATADM,
                     assert_no_private_key)


def ok(p):
    assert p.returncode == 0, "rc=%d\nstdout: %s\nstderr: %s" % (
        p.returncode, p.stdout, p.stderr)
    return p


def out(p):
    return p.stdout + p.stderr


def test_cluster_create(fresh_node):
    n = fresh_node
    # A password on the command line is refused: ps would show it.
    p = n.adm("cluster", "create", "name", n.fqdn, "username", ADMIN_EMAIL,
              "password", ADMIN_PASSWORD)
    assert p.returncode == 2 and "ps" in p.stderr, out(p)
    assert n.sock("GET", "/v1/cluster").status_code == 503
    # Left out, it is read from stdin (or asked on a terminal).
    p = ok(n.adm("cluster", "create", "name", n.fqdn, "username", ADMIN_EMAIL,
                 input=ADMIN_PASSWORD + "\n"))
    assert_no_private_key(out(p))
    assert ADMIN_PASSWORD not in out(p)
    r = requests.get(n.url("/v1/cluster"), verify=n.ca,
                     auth=(ADMIN_EMAIL, ADMIN_PASSWORD), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == n.fqdn
    # Creating again: the server's 409 -> exit 1 with its description.
    desc = n.sock("POST", "/v1/bootstrap/create_cluster", {
        "action": "create_cluster", "cluster": {"name": n.fqdn},
        "credentials": {"username": ADMIN_EMAIL,
                        "password": ADMIN_PASSWORD}}).json()["description"]
    p = n.adm("cluster", "create", "name", n.fqdn, "username", ADMIN_EMAIL,
              env={"MOAT_PASSWORD": ADMIN_PASSWORD})
    assert p.returncode == 1, out(p)
    assert desc in p.stderr, (desc, p.stderr)


def test_status_and_info(ro_node):
    n = ro_node
    p = ok(n.adm("status"))
    assert p.stdout.strip()
    assert n.fqdn in p.stdout, p.stdout
    p = ok(n.adm("info", "cluster"))
    assert "min_control_TLS_version" in p.stdout, p.stdout
    assert_no_private_key(out(p))


def _line_with(text, word):
    lines = [l for l in text.splitlines() if word in l]
    assert lines, "%s not in:\n%s" % (word, text)
    return lines[0]


def test_config_min_control_tls(node):
    n = node
    p = ok(n.adm("cluster", "config", "min_control_TLS_version", "1.3"))
    assert "Cluster configured successfully" in p.stdout, out(p)
    assert n.sock("GET", "/v1/cluster").json()["min_control_TLS_version"] == "1.3"
    info = ok(n.adm("info", "cluster")).stdout
    assert "1.3" in _line_with(info, "min_control_TLS_version"), info
    p = ok(n.adm("cluster", "config", "min_control_TLS_version", "1.2"))
    assert "Cluster configured successfully" in p.stdout
    assert n.sock("GET", "/v1/cluster").json()["min_control_TLS_version"] == "1.2"
    info = ok(n.adm("info", "cluster")).stdout
    assert "1.2" in _line_with(info, "min_control_TLS_version"), info
    # Data side and a cipher list through the same command.
    p = ok(n.adm("cluster", "config", "min_data_TLS_version", "1.3"))
    assert "Cluster configured successfully" in p.stdout
    assert n.sock("GET", "/v1/cluster").json()["min_data_TLS_version"] == "1.3"
    p = ok(n.adm("cluster", "config", "data_cipher_list", "ECDHE+AESGCM"))
    assert n.sock("GET", "/v1/cluster").json()["data_cipher_list"] == \
        "ECDHE+AESGCM"
    # A bad value: the server's description, exit 1, nothing changed.
    before = n.sock("GET", "/v1/cluster").json()
    desc = n.sock("PUT", "/v1/cluster",
                  {"min_control_TLS_version": "1.1"}).json()["description"]
    p = n.adm("cluster", "config", "min_control_TLS_version", "1.1")
    assert p.returncode == 1, out(p)
    assert desc in p.stderr, (desc, p.stderr)
    assert n.sock("GET", "/v1/cluster").json() == before


def test_certificate_set_show_rotate(node, test_ca):
    n = node
    sans = certgen.service_sans(n.fqdn, (n.addr,))
    # certificate_file + key_file
    leaf = certgen.make_leaf(test_ca, sans=sans)
    cert_path = os.path.join(n.tmp, "api_cert.pem")
    key_path = os.path.join(n.tmp, "api_key.pem")
    open(cert_path, "w").write(leaf.cert_pem)
    open(key_path, "w").write(leaf.key_pem)
    p = ok(n.adm("cluster", "certificate", "set", "api", "certificate_file",
                 cert_path, "key_file", key_path))
    assert "Set api certificate to contents of file %s" % cert_path in p.stdout
    assert_no_private_key(out(p))
    assert n.cert_info("api")["fingerprint_sha256"] == leaf.fingerprint
    assert n.served_fp() == leaf.fingerprint

    # One combined PEM file (certificate then key).
    leaf2 = certgen.make_leaf(test_ca, sans=sans)
    both = os.path.join(n.tmp, "proxy.pem")
    open(both, "w").write(leaf2.combined_pem())
    p = ok(n.adm("cluster", "certificate", "set", "proxy", "certificate_file",
                 both))
    assert "Set proxy certificate to contents of file %s" % both in p.stdout
    assert n.cert_info("proxy")["fingerprint_sha256"] == leaf2.fingerprint

    # A chain file (leaf + intermediate) with its key file.
    inter = certgen.make_intermediate(test_ca, "moatadm intermediate")
    leaf3 = certgen.make_leaf(inter, sans=sans)
    chain_path = os.path.join(n.tmp, "syncer_chain.pem")
    key3_path = os.path.join(n.tmp, "syncer_key.pem")
    open(chain_path, "w").write(leaf3.chain(inter))
    open(key3_path, "w").write(leaf3.key_pem)
    p = ok(n.adm("cluster", "certificate", "set", "syncer", "certificate_file",
                 chain_path, "key_file", key3_path))
    assert "Set syncer certificate to contents of file %s" % chain_path \
        in p.stdout
    info = n.cert_info("syncer")
    assert info["fingerprint_sha256"] == leaf3.fingerprint
    assert info["chain_length"] == 2

    # show: one and all.
    p = ok(n.adm("cluster", "certificate", "show", "api"))
    assert leaf.fingerprint in p.stdout or \
        leaf.fingerprint.replace(":", "").lower() in p.stdout.lower(), p.stdout
    assert_no_private_key(out(p))
    p = ok(n.adm("cluster", "certificate", "show"))
    fps = n.fingerprints()
    for c in CERT_NAMES:
        assert c in p.stdout, (c, p.stdout)
        assert fps[c] in p.stdout or \
            fps[c].replace(":", "").lower() in p.stdout.lower(), (c, p.stdout)
    assert_no_private_key(out(p))

    # rotate one, then all.  api is the operator's now: refused, unless
    # forced.
    before = n.fingerprints()
    p = n.adm("cluster", "certificate", "rotate", "api")
    assert p.returncode == 1 and "force" in p.stderr, out(p)
    assert n.fingerprints() == before
    ok(n.adm("cluster", "certificate", "rotate", "api", "force"))
    after = n.fingerprints()
    assert after["api"] != before["api"]
    assert n.cert_info("api")["issued_by_cluster_ca"] is True
    assert {k: after[k] for k in after if k != "api"} == \
        {k: before[k] for k in before if k != "api"}
    # All: the operator's proxy and syncer are skipped, and said so.
    p = ok(n.adm("cluster", "certificate", "rotate"))
    final = n.fingerprints()
    for c in CERT_NAMES:
        if c in ("proxy", "syncer"):
            assert final[c] == after[c], c
            assert c in p.stdout, out(p)
        else:
            assert final[c] != after[c], c
    ok(n.adm("cluster", "certificate", "rotate", "force"))
    forced = n.fingerprints()
    assert all(forced[c] != final[c] for c in CERT_NAMES)

    # A bad certificate: exit 1, the server's description, nothing changed.
    snap = n.snapshot()
    expired = certgen.make_leaf(test_ca, sans=sans, expired=True)
    bad = os.path.join(n.tmp, "expired.pem")
    open(bad, "w").write(expired.combined_pem())
    desc = n.sock("PUT", "/v1/cluster/update_cert", {
        "name": "api", "key": expired.key_pem,
        "certificate": expired.cert_pem}).json()["description"]
    p = n.adm("cluster", "certificate", "set", "api", "certificate_file", bad)
    assert p.returncode == 1, out(p)
    assert desc in p.stderr, (desc, p.stderr)
    assert_no_private_key(out(p))
    assert n.snapshot() == snap
    # Unknown certificate name: exit 1 (server 403) or 2 (grammar), no change.
    p = n.adm("cluster", "certificate", "set", "nope", "certificate_file", bad)
    assert p.returncode in (1, 2), out(p)
    assert p.stderr.strip()
    # A file that does not exist.
    p = n.adm("cluster", "certificate", "set", "api", "certificate_file",
              os.path.join(n.tmp, "missing.pem"))
    assert p.returncode != 0 and p.stderr.strip(), out(p)
    assert n.snapshot() == snap


def test_usage_errors(ro_node):
    n = ro_node
    p = n.adm("cluster", "frobnicate")
    assert p.returncode == 2, out(p)
    text = out(p)
    for alt in ("create", "certificate", "config"):
        assert alt in text, (alt, text)
    p = n.adm("frobnicate")
    assert p.returncode == 2, out(p)
    for alt in ("cluster", "status", "info"):
        assert alt in out(p), (alt, out(p))
    p = n.adm("cluster", "config", "min_control_TLS_version")
    assert p.returncode == 2, out(p)
    assert out(p).strip()


def test_no_daemon(tmp_path):
    if not os.access(MOATADM, os.X_OK):
        pytest.fail("not built: %s" % MOATADM)
    missing = str(tmp_path / "does-not-exist")
    p = subprocess.run([MOATADM, "--data-dir", missing, "status"],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert p.stderr.strip(), "no message on stderr"
    empty = tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run([MOATADM, "--data-dir", str(empty), "info", "cluster"],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "moatd.sock" in p.stderr or str(empty) in p.stderr or \
        "connect" in p.stderr.lower(), p.stderr
