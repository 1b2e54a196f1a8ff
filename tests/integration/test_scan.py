"""Every TLS port scanned with sslscan (Debian's package), before and after
raising the minimums: nothing below the minimum is offered, no cipher
weaker than the policy allows (AEAD, 128 bits or more, forward secret),
no insecure renegotiation, no compression.

The ports: the API, the management UI (cm), the metrics exporter and a
database endpoint.
"""

import re
import subprocess

from moatlib import FQDN, make_bdb, openssl_s_client

OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
# What a cipher name may look like under moat's policy: TLS 1.3 suites,
# and TLS 1.2 ECDHE with GCM or ChaCha20-Poly1305.
GOOD_CIPHER = re.compile(r"^(TLS_(AES_(128|256)_GCM_SHA(256|384)|"
                         r"CHACHA20_POLY1305_SHA256)|"
                         r"ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|"
                         r"CHACHA20-POLY1305))$")


def sslscan(addr, port, servername=FQDN):
    p = subprocess.run(["sslscan", "--no-colour", "--sni-name=" + servername,
                        "%s:%d" % (addr, port)], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    protocols = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)",
                                out, re.M))
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)",
                         out, re.M)
    assert set(protocols) == set(OLD_PROTOCOLS) | {"TLSv1.2", "TLSv1.3"}, out
    assert ciphers, out
    return protocols, ciphers, out


def check_port(what, addr, port, min_version):
    protocols, ciphers, out = sslscan(addr, port)
    for p in OLD_PROTOCOLS:
        assert protocols[p] == "disabled", "%s offers %s:\n%s" % (what, p, out)
    want12 = "enabled" if min_version == "1.2" else "disabled"
    assert protocols["TLSv1.2"] == want12, "%s TLSv1.2 %s under minimum %s" % (
        what, protocols["TLSv1.2"], min_version)
    assert protocols["TLSv1.3"] == "enabled", out
    for version, bits, name in ciphers:
        assert version in ("TLSv1.2", "TLSv1.3"), (what, version, name)
        if min_version == "1.3":
            assert version == "TLSv1.3", (what, version, name)
        assert int(bits) >= 128, (what, version, bits, name)
        assert GOOD_CIPHER.match(name), "%s offers %s %s (not AEAD with " \
            "forward secrecy)" % (what, version, name)
    assert "Insecure session renegotiation supported" not in out, (what, out)
    assert "Session renegotiation not supported" in out, (what, out)
    assert "Server supports TLS Fallback SCSV" in out, (what, out)
    # sslscan built without zlib cannot test compression: openssl can.
    p = openssl_s_client(addr, port, "-tls1_2" if min_version == "1.2"
                         else "-tls1_3")
    assert "Compression: NONE" in p.stdout, (what, p.stdout[-1500:])


def test_scan_every_port_before_and_after_raising(node):
    n = node
    db = make_bdb(n, tls=True, name="scanned")
    ports = {"api": n.port, "cm": n.cm_port, "metrics": n.metrics_port,
             "database": db["port"]}
    for what, port in ports.items():
        check_port(what, n.addr, port, "1.2")
    r = n.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.3",
                                      "min_data_TLS_version": "1.3"})
    assert r.status_code == 200, r.text
    for what, port in ports.items():
        check_port(what, n.addr, port, "1.3")
