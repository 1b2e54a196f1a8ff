"""The inputs with which fuzzing crashed a harness (tests/fuzz/corpus/*/
crash-*), sent to a running moatd the way a user could send them: each is
refused with a clear error, and moatd keeps serving.

`make test` also replays every corpus through the harnesses themselves
(tests/fuzz/replay.c); this checks the same inputs end to end.  (The first
one, a certificate whose public key does not decode, crashed the
validation in the library; through the API the key-match check happened
to refuse it first.)
"""

import glob
import os

import certgen
from moatlib import FQDN, assert_error

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "fuzz", "corpus")


def test_x509_crash_inputs_through_update_cert(ro_node):
    n = ro_node
    found = sorted(glob.glob(os.path.join(CORPUS, "x509", "crash-*")))
    assert found, "no kept crash input under tests/fuzz/corpus/x509"
    key = certgen.make_leaf(None, sans=certgen.service_sans(FQDN)).key_pem
    before = n.fingerprints()
    for path in found:
        with open(path, "rb") as f:
            raw = f.read()
        cert, _, key_part = raw.partition(b"\0")
        body = {"name": "api",
                "certificate": cert.decode("utf-8", "replace"),
                "key": key_part.decode("utf-8", "replace") or key}
        r = n.sock("PUT", "/v1/cluster/update_cert", body)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        assert r.json()["error_code"] and r.json()["description"], r.text
        # Still serving, nothing changed.
        assert n.sock("GET", "/v1/cluster").status_code == 200, path
    assert n.fingerprints() == before
    assert_error(n.sock("PUT", "/v1/cluster/update_cert", {
        "name": "api", "certificate": "x", "key": key}), 400, "invalid_pem")
