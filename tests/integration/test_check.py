"""mxfb check: the relay domain's setup linted from DNS and the network.

Each test serves a zone on loopback (an authoritative dnslib server that
sets AD on TLSA answers, as a validating resolver would), a primary
(aiosmtpd, STARTTLS with a certificate from a test CA), an HTTPS MTA-STS
server on 127.0.0.x port 443 (the port RFC 8461 names; tests run as
root) and our own certificate, then breaks one thing at a time.  Every
address involved is in 127.0.0.0/8.
"""
import http.server
import json
import os
import re
import ssl
import threading

import pytest
from dnslib import MX, PTR, TLSA, TXT

from conftest import Zone, serve_dns
from certs import Certs
from test_probe import FIRST, STATUS, perfdata
from test_submission import write_users

HOST = "backup.example.test"
DOMAIN = "example.test"
PRIMARY = "mx1.example.test"
STS_IP = "127.0.0.5"
CHECKS = {"mx", "address", "primary", "mta-sts", "dane", "cert"}
GOOD_POLICY = ("version: STSv1\r\nmode: enforce\r\nmx: %s\r\n"
               "mx: *.example.test\r\nmax_age: 86400\r\n" % PRIMARY)
LINE = re.compile(r"^(OK|WARN|CRIT|UNKNOWN) (\S+) ([a-z-]+): (.*)$")


class CheckZone(Zone):
    """The conftest zone; TLSA answers carry AD (validated) unless .ad
    is False."""
    ad = True

    def resolve(self, request, handler):
        reply = Zone.resolve(self, request, handler)
        if reply is not None and request.q.qtype == 52 and self.ad:
            reply.header.ad = 1
        return reply


@pytest.fixture
def dns():
    yield from serve_dns(CheckZone())


@pytest.fixture
def certs(tmp_path):
    c = Certs(tmp_path / "certs")
    os.chmod(c.dir, 0o755)
    return c


class Policy(http.server.BaseHTTPRequestHandler):
    body = GOOD_POLICY.encode()
    status = 200
    headers_out = {"Content-Type": "text/plain"}
    requests = []

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Host")))
        self.send_response(self.status)
        for k, v in self.headers_out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


@pytest.fixture
def sts_server(certs):
    """HTTPS on 127.0.0.5:443 with a certificate for mta-sts.example.test;
    .handler's class attributes set what it answers."""
    cert = certs.valid("mta-sts." + DOMAIN)
    handler = type("H", (Policy,), {"requests": []})
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer((STS_IP, 443), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.chain, cert.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    srv.handler = handler
    yield srv
    srv.shutdown()
    srv.server_close()


def tls_context(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.chain, cert.key)
    return ctx


class Setup:
    """The correct set-up; tests change one thing and call run()."""

    def __init__(self, mx, dns, certs, primary_factory, sts_server):
        self.mx, self.dns, self.certs = mx, dns, certs
        self.sts = sts_server
        z = dns
        ctl, _ = primary_factory(
            "127.0.0.2", tls_context=tls_context(certs.valid(PRIMARY)),
            require_starttls=False)
        self.port = ctl.port
        z.mx(DOMAIN, 10, PRIMARY)
        z.mx(DOMAIN, 20, HOST)
        z.a(PRIMARY, "127.0.0.2")
        z.a(HOST, "127.0.0.1")
        z.add("1.0.0.127.in-addr.arpa", "PTR", PTR(HOST + "."))
        z.add("_mta-sts." + DOMAIN, "TXT", TXT("v=STSv1; id=20261203"))
        z.a("mta-sts." + DOMAIN, STS_IP)
        self.ours = certs.valid(HOST)
        z.add("_25._tcp." + HOST, "TLSA",
              TLSA(3, 1, 1, bytes.fromhex(self.ours.spki_sha256)))
        self.lines = []
        self.configure()

    def configure(self, *extra, cert=None, ca=True):
        cert = self.ours if cert is None else cert
        lines = ["smtp-port %d" % self.port]
        if cert:
            lines += ["tls-cert %s" % cert.chain, "tls-key %s" % cert.key]
        if ca:
            lines.append("tls-ca-file %s" % self.certs.ca)
        self.mx.config(*(lines + list(extra)))

    def run(self, *args):
        p = self.mx.run("check", *args, timeout=90)
        out = p.stdout.decode()
        return p, out


def findings(out):
    """{check: [(level, reason)]} of the text lines after the first."""
    got = {}
    for line in out.splitlines()[1:]:
        m = LINE.match(line)
        assert m, line
        assert m.group(2) == DOMAIN, line
        got.setdefault(m.group(3), []).append((m.group(1), m.group(4)))
    return got


def level_of(found, check):
    levels = [l for l, _ in found[check]]
    for worst in ("CRIT", "UNKNOWN", "WARN", "OK"):
        if worst in levels:
            return worst


@pytest.fixture
def setup(mx, dns, certs, primary_factory, sts_server):
    return Setup(mx, dns, certs, primary_factory, sts_server)


def test_correct_zone_all_ok(setup):
    p, out = setup.run()
    assert p.returncode == 0, out + p.stderr.decode()
    first = FIRST.match(out.splitlines()[0])
    assert first and first.group(1) == "OK", out
    assert first.group(2) == "%s: all %d OK" % (DOMAIN, 6 + 0), out
    perf = perfdata(first.group(3))
    assert perf["%s %s connect" % (DOMAIN, PRIMARY)][1] == "s"
    assert perf["%s %s greeting" % (DOMAIN, PRIMARY)][0] is not None
    found = findings(out)
    assert set(found) == CHECKS, out
    assert all(l == "OK" for v in found.values() for l, _ in v), out
    assert "preference 20 behind %s (10)" % PRIMARY in found["mx"][0][1]
    assert "127.0.0.1 (this host), PTR %s confirmed" % HOST in \
        found["address"][0][1]
    assert "starttls=yes" in found["primary"][0][1]
    assert "verify=ok" in found["primary"][0][1]
    assert "mode enforce" in found["mta-sts"][0][1]
    assert "1 of 1 TLSA record at _25._tcp.%s matches" % HOST in \
        found["dane"][0][1]
    assert "covers %s" % HOST in found["cert"][0][1]
    # The policy was fetched as RFC 8461 says: that path, that Host.
    assert setup.sts.handler.requests == [
        ("/.well-known/mta-sts.txt", "mta-sts." + DOMAIN)]


def test_json(setup):
    setup.dns.clear(DOMAIN, "MX")
    setup.dns.mx(DOMAIN, 10, PRIMARY)
    p, out = setup.run("-j")
    assert p.returncode == 2, out
    objs = [json.loads(l) for l in out.splitlines()]
    assert {o["check"] for o in objs} == CHECKS
    for o in objs:
        assert set(o) == {"domain", "check", "level", "reason"}
        assert o["domain"] == DOMAIN
        assert o["level"] in ("OK", "WARN", "CRIT")
    mxo = [o for o in objs if o["check"] == "mx"][0]
    assert mxo["level"] == "CRIT"
    assert "not among the MX hosts" in mxo["reason"]


@pytest.mark.parametrize("case,records,text", [
    ("missing", [(10, PRIMARY)], "is not among the MX hosts"),
    ("best", [(20, PRIMARY), (10, HOST)], "is the best MX"),
    ("tied", [(10, PRIMARY), (10, HOST)], "is tied with %s" % PRIMARY),
    ("null", [(0, ".")], "Null MX"),
    ("none", [], "has no MX records"),
])
def test_mx_mistakes(setup, case, records, text):
    z = setup.dns
    z.clear(DOMAIN, "MX")
    for pref, host in records:
        z.mx(DOMAIN, pref, host)
    if not records:
        z.a(DOMAIN, "127.0.0.9")        # the name exists, no MX
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert out.startswith("MXFB CRITICAL - %s: mx CRIT" % DOMAIN), out
    assert level_of(found, "mx") == "CRIT", out
    assert text in found["mx"][0][1], out
    if case in ("best", "tied", "null"):
        assert "primary" not in found, out     # nothing better than us


def test_missing_and_unconfirmed_ptr(setup):
    z = setup.dns
    z.clear("1.0.0.127.in-addr.arpa")
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 1, out
    assert out.startswith("MXFB WARNING - %s: address WARN" % DOMAIN), out
    assert level_of(found, "address") == "WARN"
    assert "has no PTR record" in found["address"][0][1]
    z.add("1.0.0.127.in-addr.arpa", "PTR", PTR("elsewhere.example.test."))
    z.a("elsewhere.example.test", "127.0.0.77")
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 1, out
    assert "its PTR elsewhere.example.test does not resolve back" in \
        found["address"][0][1], out


def test_hostname_not_ours_or_missing(setup):
    z = setup.dns
    z.clear(HOST, "A")
    z.a(HOST, "127.0.0.66")
    z.add("66.0.0.127.in-addr.arpa", "PTR", PTR(HOST + "."))
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 1, out
    assert "NOT an address of this host" in found["address"][0][1]
    z.clear(HOST, "A")
    z.add(HOST, "TXT", TXT("exists"))
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert level_of(found, "address") == "CRIT"
    assert "has no A or AAAA record" in found["address"][0][1]


def test_primary_without_starttls_and_down(setup, primary_factory):
    ctl, _ = primary_factory("127.0.0.3")
    setup.configure()
    setup.mx.config(*(setup.mx.extra[1:] + ["smtp-port %d" % ctl.port]))
    z = setup.dns
    z.clear(PRIMARY, "A")
    z.a(PRIMARY, "127.0.0.3")
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 1, out
    assert out.startswith("MXFB WARNING - %s: primary WARN" % DOMAIN), out
    assert "up, no STARTTLS" in found["primary"][0][1]
    assert "enable STARTTLS on the primary" in found["primary"][0][1]
    ctl.stop()
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 1, out
    assert re.search(r"127\.0\.0\.3\]:\d+ down: .*refused",
                     found["primary"][0][1]), out
    perf = perfdata(FIRST.match(out.splitlines()[0]).group(3))
    assert perf["%s %s connect" % (DOMAIN, PRIMARY)] == (None, "")


@pytest.mark.parametrize("mode,level,rc", [
    ("enforce", "CRIT", 2), ("testing", "WARN", 1), ("none", "OK", 0)])
def test_mta_sts_policy_without_us(setup, mode, level, rc):
    setup.sts.handler.body = ("version: STSv1\nmode: %s\nmx: %s\n"
                              "max_age: 604800\n" % (mode, PRIMARY)
                              ).encode()
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == rc, out
    assert level_of(found, "mta-sts") == level, out
    if level != "OK":
        assert "no mx pattern (%s) matches %s" % (PRIMARY, HOST) in \
            found["mta-sts"][0][1]
        assert 'add "mx: %s"' % HOST in found["mta-sts"][0][1]


def test_mta_sts_unfetchable(setup, certs):
    h = setup.sts.handler
    # A certificate the sender cannot verify: no tls-ca-file, so the
    # system store, which does not know the test CA.
    setup.configure(ca=False)
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert "cannot be fetched" in found["mta-sts"][0][1], out
    assert "certificate" in found["mta-sts"][0][1], out
    setup.configure()
    # A redirect is not followed.
    h.status = 301
    h.headers_out = {"Location": "https://elsewhere.example.test/p"}
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert "HTTP 301 redirect" in found["mta-sts"][0][1], out
    # Not text/plain.
    h.status = 200
    h.headers_out = {"Content-Type": "text/html"}
    p, out = setup.run()
    assert "not text/plain" in findings(out)["mta-sts"][0][1], out
    # An invalid policy.
    h.headers_out = {"Content-Type": "text/plain; charset=utf-8"}
    h.body = b"version: STSv1\nmode: enforce\nmax_age: 86400\n"
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert "is invalid: no mx field" in found["mta-sts"][0][1], out
    # Nothing listening at the policy host's address.
    setup.dns.clear("mta-sts." + DOMAIN, "A")
    setup.dns.a("mta-sts." + DOMAIN, "127.0.0.6")
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert "127.0.0.6" in found["mta-sts"][0][1]
    assert "refused" in found["mta-sts"][0][1], out


def test_mta_sts_txt_records(setup):
    z = setup.dns
    z.clear("_mta-sts." + DOMAIN)
    z.add("_mta-sts." + DOMAIN, "TXT", TXT("something else"))
    p, out = setup.run()
    assert p.returncode == 0, out
    assert "no MTA-STS policy" in findings(out)["mta-sts"][0][1]
    assert setup.sts.handler.requests == []
    # Hostile bytes in an invalid record are shown escaped.
    z.add("_mta-sts." + DOMAIN, "TXT",
          TXT(b"v=STSv1; id=\x1b[2J\x07;x"))
    p, out = setup.run()
    assert p.returncode == 1, out
    assert "\x1b" not in out and "\x07" not in out
    assert "is invalid" in findings(out)["mta-sts"][0][1]
    z.add("_mta-sts." + DOMAIN, "TXT", TXT("v=STSv1; id=1"))
    z.add("_mta-sts." + DOMAIN, "TXT", TXT("v=STSv1; id=2"))
    p, out = setup.run("-j")
    sts = [json.loads(l) for l in out.splitlines()
           if json.loads(l)["check"] == "mta-sts"][0]
    assert sts["level"] == "WARN" and "3 v=STSv1 TXT" in sts["reason"]


def test_dane_mismatch(setup):
    z = setup.dns
    z.clear("_25._tcp." + HOST)
    z.add("_25._tcp." + HOST, "TLSA", TLSA(3, 1, 1, b"\x01" * 32))
    z.add("_25._tcp." + HOST, "TLSA", TLSA(3, 0, 1, b"\x02" * 32))
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert level_of(found, "dane") == "CRIT"
    assert "none of the 2 TLSA records" in found["dane"][0][1]
    assert 'publish "_25._tcp.%s. TLSA 3 1 1 %s"' % (
        HOST, setup.ours.spki_sha256) in found["dane"][0][1]
    # A DANE-TA record of the test CA's certificate matches the chain.
    z.clear("_25._tcp." + HOST)
    z.add("_25._tcp." + HOST, "TLSA",
          TLSA(2, 0, 1, bytes.fromhex(setup.certs.ca_sha256)))
    p, out = setup.run()
    assert p.returncode == 0, out
    assert "1 of 1 TLSA record" in findings(out)["dane"][0][1]
    # A match the resolver did not validate: DANE senders ignore it.
    z.ad = False
    p, out = setup.run()
    assert p.returncode == 1, out
    assert "not DNSSEC-validated" in findings(out)["dane"][0][1]
    z.ad = True
    # No TLSA at all: fine, said so.
    z.clear("_25._tcp." + HOST)
    p, out = setup.run()
    assert p.returncode == 0, out
    assert "no TLSA records" in findings(out)["dane"][0][1]


@pytest.mark.parametrize("days,level,rc", [(10, "WARN", 1), (2, "CRIT", 2)])
def test_expiring_certificate(setup, days, level, rc):
    soon = setup.certs.expiring(HOST, days=days)
    setup.dns.clear("_25._tcp." + HOST)
    setup.configure(cert=soon)
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == rc, out
    assert level_of(found, "cert") == level
    assert "expires in %d days" % (days - 1) in found["cert"][0][1] or \
        "expires in %d days" % days in found["cert"][0][1], out


def test_certificate_name_and_none(setup):
    other = setup.certs.valid("other.example.test")
    setup.dns.clear("_25._tcp." + HOST)
    setup.configure(cert=other)
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert "do not cover %s" % HOST in found["cert"][0][1]
    setup.configure(cert=False)
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 1, out
    assert "no tls-cert" in found["cert"][0][1]
    # With TLSA records published, no certificate is critical.
    setup.dns.add("_25._tcp." + HOST, "TLSA",
                  TLSA(3, 1, 1, bytes.fromhex(setup.ours.spki_sha256)))
    p, out = setup.run()
    assert p.returncode == 2, out
    assert "but no tls-cert" in findings(out)["dane"][0][1]


def test_dns_failure_unknown_and_precedence(setup):
    z = setup.dns
    z.rcodes["_mta-sts." + DOMAIN] = 2      # SERVFAIL
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 3, out
    assert out.startswith("MXFB UNKNOWN - %s: mta-sts UNKNOWN" % DOMAIN)
    assert level_of(found, "mta-sts") == "UNKNOWN"
    # CRITICAL outranks UNKNOWN.
    z.clear(DOMAIN, "MX")
    z.mx(DOMAIN, 10, HOST)
    z.mx(DOMAIN, 20, PRIMARY)
    p, out = setup.run()
    assert p.returncode == 2, out
    assert out.startswith("MXFB CRITICAL"), out


def test_domains_and_usage(setup):
    p, out = setup.run(DOMAIN)
    assert p.returncode == 0, out
    p, out = setup.run("other.test")
    assert p.returncode == 64
    assert b"not a relay-domain" in p.stderr
    setup.mx.config("relay-domain second.test", "smtp-port %d" % setup.port,
                    "tls-cert %s" % setup.ours.chain,
                    "tls-key %s" % setup.ours.key,
                    "tls-ca-file %s" % setup.certs.ca)
    p, out = setup.run()
    # second.test does not exist: its mx is critical, example.test's not.
    assert p.returncode == 2, out
    first = out.splitlines()[0]
    assert "%s: all 6 OK; second.test: mx CRIT" % DOMAIN in first, first
    assert re.search(r"^CRIT second\.test mx: ", out, re.M), out


def test_mta_sts_size_and_timeout(setup):
    import socket
    import time
    h = setup.sts.handler
    h.body = b"version: STSv1\nmode: enforce\nmx: *.example.test\n" \
        b"max_age: 1\n" + b"x: " + b"y" * 70000 + b"\n"
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    assert "larger than" in found["mta-sts"][0][1], out
    # A policy host that accepts and then says nothing: -t bounds it.
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.7", 443))
    silent.listen(4)
    try:
        setup.dns.clear("mta-sts." + DOMAIN, "A")
        setup.dns.a("mta-sts." + DOMAIN, "127.0.0.7")
        t0 = time.time()
        p, out = setup.run("-t", "2")
        took = time.time() - t0
    finally:
        silent.close()
    found = findings(out)
    assert p.returncode == 2, out
    assert "cannot be fetched" in found["mta-sts"][0][1], out
    assert "127.0.0.7" in found["mta-sts"][0][1], out
    assert took < 10, took


def test_dkim_records(setup, tmp_path):
    """With dkim lines, one dkim finding per key: OK when the selector's
    TXT record carries our key (an RSA record split into 255-octet
    strings, as it must be published), CRIT with the record to publish
    when it is missing or carries another key."""
    from test_submission import dkim_key
    rsa = dkim_key(str(tmp_path / "rsa.key"), "RSA")
    ed = dkim_key(str(tmp_path / "ed.key"), "ED25519")
    other = dkim_key(str(tmp_path / "other.key"), "ED25519")
    chunks = [rsa[i:i + 255] for i in range(0, len(rsa), 255)]
    assert len(chunks) > 1
    setup.dns.add("rsa1._domainkey." + DOMAIN, "TXT", TXT(chunks))
    setup.configure("dkim %s rsa1 %s" % (DOMAIN, tmp_path / "rsa.key"),
                    "dkim %s ed1 %s" % (DOMAIN, tmp_path / "ed.key"))
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 2, out
    levels = sorted(found["dkim"])
    assert [l for l, _ in levels] == ["CRIT", "OK"], out
    assert "rsa1._domainkey.%s carries our rsa key" % DOMAIN in levels[1][1]
    assert "no DKIM key record at ed1._domainkey.%s" % DOMAIN in \
        levels[0][1]
    assert ed.split("p=")[1] in levels[0][1]
    # Published, but another key: still CRIT; then the right one: all OK.
    setup.dns.add("ed1._domainkey." + DOMAIN, "TXT", TXT(other))
    p, out = setup.run()
    crit = [r for l, r in findings(out)["dkim"] if l == "CRIT"]
    assert len(crit) == 1 and "carries another key" in crit[0], out
    setup.dns.clear("ed1._domainkey." + DOMAIN, "TXT")
    setup.dns.add("ed1._domainkey." + DOMAIN, "TXT", TXT(ed))
    p, out = setup.run()
    assert p.returncode == 0, out
    assert [l for l, _ in findings(out)["dkim"]] == ["OK", "OK"], out
# spf: with `users` the backup sends the domain's users' mail, so the
# domain's SPF record must pass our address (127.0.0.1, HOST's A).
SPF_NET = "_net." + DOMAIN


@pytest.fixture
def users(setup, tmp_path):
    """setup configured with a users file; returns the config lines."""
    path = str(tmp_path / "users")
    write_users(path, ["# no accounts needed to check SPF"])
    line = "users %s" % path
    setup.configure(line)
    return line


def spf_finding(setup, *records, rc=None):
    """Publish records [(name, TXT text)], run check, return the single
    spf (level, reason) and the output."""
    for name, text in records:
        setup.dns.add(name, "TXT", TXT(text))
    p, out = setup.run()
    found = findings(out)
    assert len(found["spf"]) == 1, out
    if rc is not None:
        assert p.returncode == rc, out
    return found["spf"][0], out


def test_spf_no_record(setup, users):
    (level, reason), out = spf_finding(setup, rc=1)
    assert level == "WARN", out
    assert out.startswith("MXFB WARNING - %s: spf WARN" % DOMAIN), out
    assert "127.0.0.1 (none)" in reason, out
    assert "add ip4:127.0.0.1" in reason, out
    assert "no SPF record: senders' receivers will treat mail from the " \
        "backup as neutral" in reason, out


@pytest.mark.parametrize("case,records", [
    ("ip4", [(DOMAIN, "v=spf1 ip4:127.0.0.1 -all")]),
    ("ip4-cidr", [(DOMAIN, "v=spf1 ip4:10.0.0.0/8 ip4:127.0.0.0/30 -all")]),
    ("include-chain", [(DOMAIN, "v=spf1 include:_spf.%s -all" % DOMAIN),
                       ("_spf." + DOMAIN, "v=spf1 include:%s ?all" % SPF_NET),
                       (SPF_NET, "v=spf1 ip4:127.0.0.0/24 -all")]),
    ("redirect", [(DOMAIN, "v=spf1 ip4:192.0.2.1 redirect=_spf.%s" % DOMAIN),
                  ("_spf." + DOMAIN, "v=spf1 a:%s -all" % HOST)]),
    ("a-cidr", [(DOMAIN, "v=spf1 a:%s/24 -all" % PRIMARY)]),
    ("mx", [(DOMAIN, "v=spf1 mx -all")]),
    ("exists-macro", [(DOMAIN, "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"),
                      ("1.0.0.127.in-addr._spf." + DOMAIN, None)]),
    # A name the resolver library cannot ask ("\\9" is no escape) finds
    # nothing; it is no DNS failure.
    ("unaskable", [(DOMAIN, "v=spf1 exists:a\\9.%s ip4:127.0.0.1 -all"
                    % DOMAIN)]),
])
def test_spf_passes(setup, users, case, records):
    for name, text in records:
        if text is None:
            setup.dns.a(name, "127.0.0.2")
        else:
            setup.dns.add(name, "TXT", TXT(text))
    p, out = setup.run()
    found = findings(out)
    assert p.returncode == 0, out
    assert found["spf"] == [("OK", "the SPF record of %s passes our 1 "
                             "address" % DOMAIN)], out
    assert out.splitlines()[0].startswith(
        "MXFB OK - %s: all 7 OK" % DOMAIN), out


@pytest.mark.parametrize("record,result", [
    ("v=spf1 ip4:127.0.0.2 -all", "fail"),
    ("v=spf1 ip4:127.0.0.2 ~all", "softfail"),
    ("v=spf1 ip4:127.0.0.2", "neutral"),
    ("v=spf1 a -all", "fail"),                # example.test has no A
    ("v=spf1 mx:%s -all" % PRIMARY, "fail"),  # not our MX name
    ("v=spf1 exists:%{ir}.%{v}._spf.%{d} -all", "fail"),
])
def test_spf_does_not_cover_us(setup, users, record, result):
    (level, reason), out = spf_finding(setup, (DOMAIN, record), rc=1)
    assert level == "WARN", out
    assert "does not pass 127.0.0.1 (%s)" % result in reason, out
    assert "add ip4:127.0.0.1 to it" in reason, out
    assert "neutral" not in reason or result == "neutral", out


def test_spf_include_loop_and_bad_record(setup, users):
    loop = "loop." + DOMAIN
    (level, reason), out = spf_finding(
        setup, (DOMAIN, "v=spf1 include:%s -all" % loop),
        (loop, "v=spf1 include:%s -all" % DOMAIN), rc=1)
    assert level == "WARN", out
    assert "127.0.0.1 (permerror)" in reason, out
    assert "more than 10 DNS-querying terms" in reason, out
    assert "a loop of includes" in reason, out
    # A syntax error; a control byte (never printed raw); two records.
    setup.dns.clear(DOMAIN, "TXT")
    (level, reason), out = spf_finding(
        setup, (DOMAIN, "v=spf1 ip4:127.0.0.1/33 -all"), rc=1)
    assert "(permerror)" in reason, out
    assert 'syntax error in the term "ip4:127.0.0.1/33"' in reason, out
    setup.dns.clear(DOMAIN, "TXT")
    (level, reason), out = spf_finding(
        setup, (DOMAIN, "v=spf1 ip4:127.0.0.1 \x1b[2J -all"), rc=1)
    assert "\x1b" not in out, out
    assert "(permerror)" in reason and "byte 0x1b" in reason, out
    setup.dns.clear(DOMAIN, "TXT")
    (level, reason), out = spf_finding(
        setup, (DOMAIN, "v=spf1 ip4:127.0.0.1 -all"),
        (DOMAIN, "v=spf1 -all"), rc=1)
    assert "2 v=spf1 TXT records" in reason, out


def test_spf_dns_failure_unknown(setup, users):
    setup.dns.rcodes["_spf." + DOMAIN] = 2      # SERVFAIL
    (level, reason), out = spf_finding(
        setup, (DOMAIN, "v=spf1 include:_spf.%s -all" % DOMAIN), rc=3)
    assert level == "UNKNOWN", out
    assert out.startswith("MXFB UNKNOWN - %s: spf UNKNOWN" % DOMAIN), out
    assert "127.0.0.1 (temperror)" in reason, out
    assert "the TXT lookup of _spf.%s failed" % DOMAIN in reason, out


def test_spf_only_with_users(setup):
    setup.dns.add(DOMAIN, "TXT", TXT("v=spf1 -all"))
    p, out = setup.run()
    assert p.returncode == 0, out
    assert "spf" not in findings(out), out
    assert not any(q[1] == "TXT" and q[0] == DOMAIN
                   for q in setup.dns.queries), setup.dns.queries
