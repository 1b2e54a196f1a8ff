"""moatadm against a remote node's REST API, signed in by a client
certificate (--url/--cert/--key/--cacert), and the words for certificate
sign-in and OCSP (`cluster config ...`, `cluster certificate set
mtls_trusted_ca`, `cluster ocsp ...`)."""
import os
import subprocess

import pytest

import certgen
from moatlib import MOATADM, Node, assert_no_private_key


def run(*argv, timeout=60):
    env = dict(os.environ)
    env.pop("MOAT_PASSWORD", None)
    env.pop("MOAT_DATA_DIR", None)
    return subprocess.run([MOATADM] + list(argv), capture_output=True,
                          text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def write(node, name, text):
    p = os.path.join(node.tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o600)
    return p


@pytest.fixture
def node():
    n = Node()
    n.start()
    n.create_cluster()
    yield n
    n.stop()
    n.cleanup()


@pytest.fixture
def cert_admin(node):
    """Certificate sign-in on, set up with moatadm's own words; returns
    (cert file, key file) of an admin's client certificate."""
    ca = certgen.make_ca("moatadm clients CA")
    leaf = certgen.make_leaf(ca, cn="remote-admin")
    r = node.adm("cluster", "certificate", "set", "mtls_trusted_ca",
                 "certificate_file", write(node, "cca.crt", ca.cert_pem))
    assert r.returncode == 0, r.stderr
    assert "Set mtls_trusted_ca" in r.stdout
    r = node.adm("cluster", "config", "mtls_certificate_authentication",
                 "enabled")
    assert r.returncode == 0, r.stderr
    r = node.https("POST", "/v1/users", {
        "email": "remote@example.com", "role": "admin",
        "auth_method": "certificate",
        "certificate_subject_line": "CN=remote-admin, O=moat tests"})
    assert r.status_code == 200, r.text
    return (write(node, "admin.crt", leaf.cert_pem),
            write(node, "admin.key", leaf.key_pem), ca)


def remote(node, pair, *words, cacert=True):
    argv = ["--url", node.url(""), "--cert", pair[0], "--key", pair[1]]
    if cacert:
        argv += ["--cacert", node.ca]
    return run(*(argv + list(words)))


def test_remote_commands_sign_in_with_the_certificate(node, cert_admin):
    r = remote(node, cert_admin, "info", "cluster")
    assert r.returncode == 0, r.stderr
    assert node.fqdn in r.stdout
    assert "mtls_certificate_authentication" in r.stdout
    # A change, through the remote API, as the certificate's user.
    r = remote(node, cert_admin, "cluster", "config", "min_data_TLS_version",
               "1.3")
    assert r.returncode == 0, r.stderr
    assert node.https("GET", "/v1/cluster").json()[
        "min_data_TLS_version"] == "1.3"
    assert "remote@example.com" in node.log
    assert_no_private_key(r.stdout, r.stderr, node.log)


def test_remote_with_passwords_off(node, cert_admin):
    r = node.adm("cluster", "config", "control_plane_basic_authentication",
                 "disabled")
    assert r.returncode == 0, r.stderr
    assert node.https("GET", "/v1/cluster").status_code == 401
    r = remote(node, cert_admin, "info", "cluster")
    assert r.returncode == 0, r.stderr
    assert "control_plane_basic_authentication: False" in r.stdout or \
        "control_plane_basic_authentication: false" in r.stdout, r.stdout
    # The way back needs no API: the local control socket.
    r = node.adm("cluster", "config", "control_plane_basic_authentication",
                 "enabled")
    assert r.returncode == 0, r.stderr
    assert node.https("GET", "/v1/cluster").status_code == 200


def test_remote_refusals_are_clear(node, cert_admin):
    # The server is verified: without the cluster CA, curl refuses it.
    r = remote(node, cert_admin, "info", "cluster", cacert=False)
    assert r.returncode == 1
    assert "certificate" in r.stderr.lower(), r.stderr
    # A certificate no user has: moatd's 401 says why.
    stranger = certgen.make_leaf(cert_admin[2], cn="stranger")
    pair = (write(node, "s.crt", stranger.cert_pem),
            write(node, "s.key", stranger.key_pem))
    r = remote(node, pair, "info", "cluster")
    assert r.returncode == 1
    assert "certificate_subject_line" in r.stderr, r.stderr
    # Option errors: usage (2), before anything is sent.
    for argv in (["--url", "http://127.0.0.1:1", "--cert", pair[0], "--key",
                  pair[1], "info", "cluster"],
                 ["--url", node.url(""), "info", "cluster"],
                 ["--data-dir", node.data_dir, "--cert", pair[0], "info",
                  "cluster"],
                 ["--url"]):
        r = run(*argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert r.stderr.strip(), argv


def test_config_words(node):
    r = node.adm("cluster", "config", "mtls_certificate_authentication",
                 "maybe")
    assert r.returncode == 2 and "enabled or disabled" in r.stderr, r.stderr
    # Refused by moatd (no trusted CA yet): said, and nothing changes.
    r = node.adm("cluster", "config", "mtls_certificate_authentication",
                 "enabled")
    assert r.returncode == 1 and "mtls_trusted_ca" in r.stderr, r.stderr
    r = node.adm("cluster", "config", "control_plane_basic_authentication",
                 "disabled")
    assert r.returncode == 1, r.stderr
    assert "needs mtls_certificate_authentication true" in r.stderr
    r = node.adm("cluster", "config",
                 "mtls_client_cert_subject_validation_type", "san_cn")
    assert r.returncode == 1 and "mtls_authorized_subjects" in r.stderr
    c = node.https("GET", "/v1/cluster").json()
    assert c["mtls_certificate_authentication"] is False
    assert c["control_plane_basic_authentication"] is True
    assert c["mtls_client_cert_subject_validation_type"] == "disabled"


def test_trusted_ca_words(node):
    ca = certgen.make_ca("words CA")
    leaf = certgen.make_leaf(ca, cn="x")
    r = node.adm("cluster", "certificate", "set", "mtls_trusted_ca",
                 "certificate_file", write(node, "leaf.crt", leaf.cert_pem))
    assert r.returncode == 1 and "not a CA" in r.stderr, r.stderr
    r = node.adm("cluster", "certificate", "set", "mtls_trusted_ca",
                 "certificate_file", write(node, "ca.crt", ca.cert_pem),
                 "key_file", write(node, "ca.key", ca.key_pem))
    assert r.returncode == 2 and "key" in r.stderr, r.stderr
    r = node.adm("cluster", "certificate", "set", "mtls_trusted_ca",
                 "certificate_file", write(node, "ca.crt", ca.cert_pem))
    assert r.returncode == 0, r.stderr
    r = node.adm("cluster", "certificate", "set", "mtls_trusted_ca",
                 "certificate_file", write(node, "ca.crt", ca.cert_pem))
    assert r.returncode == 0 and "already in place" in r.stdout, r.stdout


def test_ocsp_words(node):
    r = node.adm("cluster", "ocsp", "certificate_compatible")
    assert r.returncode == 1 and "no OCSP" in r.stderr, r.stderr
    r = node.adm("cluster", "ocsp", "config", "query_frequency")
    assert r.returncode == 0 and "query_frequency: 3600" in r.stdout
    r = node.adm("cluster", "ocsp", "config", "query_frequency", "set",
                 "600")
    assert r.returncode == 0 and "query_frequency: 600" in r.stdout, r.stderr
    assert node.https("GET", "/v1/ocsp").json()["query_frequency"] == 600
    r = node.adm("cluster", "ocsp", "config", "query_frequency", "set", "5")
    assert r.returncode == 1 and "60 to 86400" in r.stderr, r.stderr
    r = node.adm("cluster", "ocsp", "config", "query_frequency", "set",
                 "soon")
    assert r.returncode == 2, r.stderr
    r = node.adm("cluster", "ocsp", "config", "ocsp_functionality", "set",
                 "enabled")
    assert r.returncode == 1, r.stderr
    assert "names no OCSP responder" in r.stderr, r.stderr
    r = node.adm("cluster", "ocsp", "config", "ocsp_functionality")
    assert r.returncode == 0 and "disabled" in r.stdout
    r = node.adm("cluster", "ocsp", "test_certificate")
    assert r.returncode == 1 and "responder" in r.stderr, r.stderr
    r = node.adm("cluster", "ocsp", "status")
    assert r.returncode == 0 and "cert_status" in r.stdout
