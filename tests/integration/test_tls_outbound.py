"""Outbound TLS (issue 7, part 2): `flush` to a real TLS primary
(aiosmtpd with an SSL context offering STARTTLS) at every tls-outbound
level, with a valid certificate, one for the wrong name and an expired
one (certs.py: a private CA made with the openssl command).

Shown here: none never starts TLS; may uses TLS when offered, delivers
whatever the certificate (and in plaintext when STARTTLS is not offered,
or after a failed handshake on a new connection); encrypt defers without
STARTTLS but does not check certificates; verify needs a chain to
tls-ca-file (or the system store) and the MX name, and defers with the
reason logged otherwise; the per-domain `relay-domain ... tls LEVEL`
override wins over tls-outbound.

DANE (RFC 7672): the test DNS server serves the TLSA records and sets the
AD bit itself.  mxfb trusts the AD bit of its configured resolver (as
Postfix and Exim do with a local validating resolver); there is no DNSSEC
chain in this test: the test resolver stands in for a validating one.
"""
import re
import ssl

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
from dnslib import QTYPE, RCODE, RD

from certs import Certs
from test_flush import FAST, RCPT_LINE, message

MXHOST = "mx1.example.test"


@pytest.fixture
def certs(tmp_path):
    return Certs(tmp_path / "certs")


def server_context(cert, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if maximum is not None:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = maximum
    ctx.load_cert_chain(cert.chain, cert.key)
    return ctx


class TlsSeen:
    """Wraps the recorder's DATA handler to note whether TLS was on."""

    def __init__(self, rec):
        self.rec = rec
        orig = rec.handle_DATA

        async def handle_DATA(server, session, envelope):
            r = await orig(server, session, envelope)
            with rec.lock:
                if rec.messages:
                    rec.messages[-1]["tls"] = session.ssl is not None
            return r
        rec.handle_DATA = handle_DATA


def tls_primary(primary_factory, cert, **kw):
    ctx = server_context(cert, **kw) if cert is not None else None
    if ctx is not None:
        c, rec = primary_factory("127.0.0.2", tls_context=ctx,
                                 require_starttls=False)
    else:
        c, rec = primary_factory("127.0.0.2")
    TlsSeen(rec)
    return c, rec


def route(mx, dns, port, *lines):
    dns.mx("example.test", 10, MXHOST)
    dns.a(MXHOST, "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % port, "retry-min 60s", "retry-max 1h",
              *(FAST + lines))


def flush(mx):
    p = mx.run("flush", timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = p.stdout.decode()
    m = re.match(r"delivered (\d+), deferred (\d+), failed (\d+)\n$", out)
    assert m, out
    log = p.stderr.decode(errors="replace")
    lines = [RCPT_LINE.search(l) for l in log.splitlines()]
    return tuple(int(x) for x in m.groups()), [l for l in lines if l], log


def send_one(mx):
    return mx.inject("sender@sender.test", ["user@example.test"],
                     message())


def delivered_with(rec, tls):
    assert len(rec.messages) == 1, rec.messages
    assert rec.messages[0]["tls"] is tls
    assert rec.messages[0]["rcpts"] == ["user@example.test"]


def deferred_because(mx, rec, lines, why):
    assert rec.messages == []
    assert len(lines) == 1 and lines[0]["status"] == "deferred", lines
    assert why in lines[0]["why"], lines[0]["why"]
    (m,) = mx.status_json()
    assert why in m["recipients"][0]["last_error"]


def ca_line(certs):
    return "tls-ca-file %s" % certs.ca


# ---- none, may, encrypt

def test_none_stays_plaintext(mx, dns, primary_factory, certs):
    c, rec = tls_primary(primary_factory, certs.valid(MXHOST))
    route(mx, dns, c.port, "tls-outbound none")
    send_one(mx)
    counts, _, _ = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, False)


def test_may_is_the_default(mx, dns, primary_factory, certs):
    c, rec = tls_primary(primary_factory, certs.valid(MXHOST))
    route(mx, dns, c.port, ca_line(certs))
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, True)
    assert re.search(r"Verified TLS connection established to "
                     r"mx1\.example\.test\[127\.0\.0\.2\]:\d+: TLSv1\.3", log), log


@pytest.mark.parametrize("kind", ["wrong", "expired"])
def test_may_delivers_despite_bad_certificate(mx, dns, primary_factory,
                                              certs, kind):
    cert = (certs.valid("other.example.test") if kind == "wrong"
            else certs.expired(MXHOST))
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound may", ca_line(certs))
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, True)
    assert "Untrusted TLS connection" in log, log


def test_may_without_starttls_is_plaintext(mx, dns, primary_factory):
    c, rec = tls_primary(primary_factory, None)
    route(mx, dns, c.port, "tls-outbound may")
    send_one(mx)
    counts, _, _ = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, False)


def test_may_failed_handshake_retries_in_plaintext(mx, dns, primary_factory,
                                                   certs):
    """A primary that only speaks TLS 1.1: the handshake fails; under
    may the message goes on a new plaintext connection (RFC 7435)."""
    c, rec = tls_primary(primary_factory, certs.valid(MXHOST),
                         maximum=ssl.TLSVersion.TLSv1_1)
    route(mx, dns, c.port, "tls-outbound may")
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0), log
    delivered_with(rec, False)
    assert "plaintext" in log, log


def test_encrypt_accepts_any_certificate(mx, dns, primary_factory, certs):
    c, rec = tls_primary(primary_factory, certs.expired("other.example.test"))
    route(mx, dns, c.port, "tls-outbound encrypt")
    send_one(mx)
    counts, _, _ = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, True)


@pytest.mark.parametrize("level", ["encrypt", "verify", "dane"])
def test_required_tls_without_starttls_defers(mx, dns, primary_factory,
                                              certs, level):
    c, rec = tls_primary(primary_factory, None)
    route(mx, dns, c.port, "tls-outbound %s" % level, ca_line(certs))
    if level == "dane":
        secure_tlsa(dns, c.port, certs.valid(MXHOST))
    send_one(mx)
    counts, lines, _ = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, "offers no STARTTLS")


@pytest.mark.parametrize("level", ["encrypt", "verify"])
def test_required_tls_failed_handshake_defers(mx, dns, primary_factory,
                                              certs, level):
    c, rec = tls_primary(primary_factory, certs.valid(MXHOST),
                         maximum=ssl.TLSVersion.TLSv1_1)
    route(mx, dns, c.port, "tls-outbound %s" % level, ca_line(certs))
    send_one(mx)
    counts, lines, _ = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, "TLS with mx1.example.test")


# ---- verify

def test_verify_ok(mx, dns, primary_factory, certs):
    c, rec = tls_primary(primary_factory, certs.valid(MXHOST))
    route(mx, dns, c.port, "tls-outbound verify", ca_line(certs))
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, True)
    assert "Verified TLS connection" in log


@pytest.mark.parametrize("kind,why", [
    ("wrong", "hostname mismatch"),
    ("expired", "certificate has expired"),
])
def test_verify_bad_certificate_defers(mx, dns, primary_factory, certs, kind,
                                       why):
    cert = (certs.valid("other.example.test") if kind == "wrong"
            else certs.expired(MXHOST))
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound verify", ca_line(certs))
    send_one(mx)
    counts, lines, log = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, why)
    assert "certificate verification failed for mx1.example.test" in log


def test_verify_untrusted_ca_defers(mx, dns, primary_factory, certs):
    """Without tls-ca-file the system store is used: our private CA is
    not in it."""
    c, rec = tls_primary(primary_factory, certs.valid(MXHOST))
    route(mx, dns, c.port, "tls-outbound verify")
    send_one(mx)
    counts, lines, _ = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, "certificate verification failed")
    assert re.search(r"unable to get local issuer|self-signed certificate "
                     r"in certificate chain", lines[0]["why"]), lines[0]["why"]


def test_per_domain_override(mx, dns, primary_factory, certs):
    """tls-outbound may, but example.test says verify: deferred; then a
    domain override of none under a global verify: plaintext delivery."""
    c, rec = tls_primary(primary_factory, certs.valid("other.example.test"))
    route(mx, dns, c.port)
    base = [l for l in mx.base_lines() if not l.startswith("relay-domain")]
    common = base + ["smtp-port %d" % c.port, ca_line(certs)] + list(FAST)
    mx.config(*(common + ["tls-outbound may",
                          "relay-domain example.test tls verify"]),
              replace_base=True)
    send_one(mx)
    counts, lines, _ = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, "hostname mismatch")
    mx.config(*(common + ["tls-outbound verify",
                          "relay-domain example.test tls none"]),
              replace_base=True)
    p = mx.run("flush", "-f", timeout=120)
    assert p.stdout.decode() == "delivered 1, deferred 0, failed 0\n", \
        p.stderr.decode()
    delivered_with(rec, False)


# ---- dane

def tlsa_name(port):
    return "_%d._tcp.%s" % (port, MXHOST)


def add_tlsa(dns, port, usage, selector, mtype, hexdigest):
    dns.add(tlsa_name(port), "TLSA",
            RD(bytes([usage, selector, mtype]) + bytes.fromhex(hexdigest)))


def trust_ad(dns, secure=True):
    """The test DNS server sets AD on every answer: it stands in for a
    validating resolver (no DNSSEC chain is built in these tests)."""
    orig = dns.resolve

    def resolve(request, handler):
        reply = orig(request, handler)
        if reply is not None and secure:
            reply.header.ad = 1
        return reply
    dns.resolve = resolve


def secure_tlsa(dns, port, cert, usage=3):
    add_tlsa(dns, port, usage, 1, 1, cert.spki_sha256)
    trust_ad(dns)


def test_dane_ee_match_delivers_whatever_the_name(mx, dns, primary_factory,
                                                  certs):
    """DANE-EE(3): the key is what counts, not names or dates (7672
    3.1.1); no CA file is needed."""
    cert = certs.expired("other.example.test")
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    secure_tlsa(dns, c.port, cert)
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0), log
    delivered_with(rec, True)
    assert "Verified (DANE) TLS connection" in log, log
    assert (tlsa_name(c.port).lower(), "TLSA") in dns.queries


def test_dane_tlsa_retried_after_a_timeout(mx, dns, primary_factory,
                                           certs):
    """The TLSA lookup goes through the resolver set-up of every lookup
    (dns-timeout, dns-retry): its first query goes unanswered, the retry
    is answered, and the delivery is DANE-verified."""
    cert = certs.valid(MXHOST)
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    base = [l for l in mx.base_lines() if not l.startswith("dns-retry ")]
    mx.config(*(base + ["dns-retry 2"] + mx.extra), replace_base=True)
    secure_tlsa(dns, c.port, cert)
    answered = dns.resolve
    asked = []

    def resolve(request, handler):
        if QTYPE[request.q.qtype] == "TLSA":
            asked.append(str(request.q.qname))
            if len(asked) == 1:
                return None
        return answered(request, handler)
    dns.resolve = resolve
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0), log
    delivered_with(rec, True)
    assert "Verified (DANE) TLS connection" in log, log
    assert len(asked) == 2, asked


def test_dane_ta_match(mx, dns, primary_factory, certs):
    cert = certs.valid(MXHOST)
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    add_tlsa(dns, c.port, 2, 0, 1, certs.ca_sha256)
    trust_ad(dns)
    send_one(mx)
    counts, _, log = flush(mx)
    assert counts == (1, 0, 0), log
    delivered_with(rec, True)


def test_dane_mismatch_defers(mx, dns, primary_factory, certs):
    cert = certs.valid(MXHOST)
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    secure_tlsa(dns, c.port, certs.valid("other.example.test"))
    send_one(mx)
    counts, lines, _ = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, "no TLSA record")


def test_dane_insecure_tlsa_is_opportunistic(mx, dns, primary_factory,
                                             certs):
    """The same mismatching record without AD is ignored (7672 2.2):
    delivered over unauthenticated TLS."""
    cert = certs.valid(MXHOST)
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    add_tlsa(dns, c.port, 3, 1, 1, certs.valid("x.example.test").spki_sha256)
    send_one(mx)
    counts, _, _ = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, True)


def test_dane_no_tlsa_is_opportunistic(mx, dns, primary_factory, certs):
    """Validated denial (NXDOMAIN with AD), and no STARTTLS either:
    plaintext, as under may."""
    c, rec = tls_primary(primary_factory, None)
    route(mx, dns, c.port, "tls-outbound dane")
    trust_ad(dns)
    send_one(mx)
    counts, _, _ = flush(mx)
    assert counts == (1, 0, 0)
    delivered_with(rec, False)


def test_dane_tlsa_servfail_defers(mx, dns, primary_factory, certs):
    cert = certs.valid(MXHOST)
    c, rec = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    dns.rcodes[tlsa_name(c.port)] = RCODE.SERVFAIL
    send_one(mx)
    counts, lines, _ = flush(mx)
    assert counts == (0, 1, 0)
    deferred_because(mx, rec, lines, "TLSA lookup")


# ---- probe

PROBE_LINE = re.compile(r"^(?P<domain>\S+) (?P<relay>\S+) pref=(?P<pref>\S+) "
                        r"(?P<state>up|down|unknown) (?P<ms>\d+)ms "
                        r"(?P<text>.*)$")


def probe(mx):
    p = mx.run("probe", timeout=60)
    out = p.stdout.decode().splitlines()
    assert out and out[0].startswith("MXFB "), out   # the plugin's line
    lines = [PROBE_LINE.match(l) for l in out[1:]]
    assert lines and all(lines), p.stdout.decode()
    return p.returncode, lines, p


def test_probe_shows_tls(mx, dns, primary_factory, certs):
    c, _ = tls_primary(primary_factory, certs.valid(MXHOST))
    route(mx, dns, c.port, ca_line(certs))
    rc, (line,), p = probe(mx)
    assert rc == 0, p.stdout
    t = line["text"]
    assert line["state"] == "up"
    assert "starttls=yes" in t
    assert "tls=TLSv1.3" in t
    assert re.search(r"cipher=TLS_\S+", t), t
    assert 'subject="CN=mx1.example.test"' in t, t
    assert re.search(r"expires=(29|30)d\b", t), t
    assert "verify=ok" in t, t


def test_probe_no_starttls(mx, dns, primary_factory):
    c, _ = tls_primary(primary_factory, None)
    route(mx, dns, c.port)
    rc, (line,), _ = probe(mx)
    assert rc == 0
    assert "starttls=no" in line["text"]


def test_probe_expiring_certificate_warns(mx, dns, primary_factory, certs):
    c, _ = tls_primary(primary_factory, certs.expiring(MXHOST, days=10))
    route(mx, dns, c.port, ca_line(certs))
    rc, (line,), p = probe(mx)
    assert rc == 1, p.stdout
    assert line["state"] == "up"
    assert re.search(r"expires=(9|10)d\b", line["text"]), line["text"]


def test_probe_may_reports_failed_verification(mx, dns, primary_factory,
                                               certs):
    """Under may a wrong name is reported but the primary is up; an
    expired certificate warns (it expires within 14 days: it has)."""
    c, _ = tls_primary(primary_factory, certs.valid("other.example.test"))
    route(mx, dns, c.port, ca_line(certs))
    rc, (line,), p = probe(mx)
    assert rc == 0, p.stdout
    assert 'verify="hostname mismatch"' in line["text"], line["text"]


def test_probe_verify_level_bad_certificate_is_down(mx, dns, primary_factory,
                                                     certs):
    c, _ = tls_primary(primary_factory, certs.expired(MXHOST))
    route(mx, dns, c.port, ca_line(certs), "tls-outbound verify")
    rc, (line,), p = probe(mx)
    assert rc == 2, p.stdout
    assert line["state"] == "down"
    assert "certificate has expired" in line["text"], line["text"]
    assert re.search(r"expires=-\d+d", line["text"]), line["text"]


def test_probe_dane(mx, dns, primary_factory, certs):
    cert = certs.valid("other.example.test")
    c, _ = tls_primary(primary_factory, cert)
    route(mx, dns, c.port, "tls-outbound dane")
    secure_tlsa(dns, c.port, cert)
    rc, (line,), p = probe(mx)
    assert rc == 0, p.stdout
    assert line["state"] == "up"
    assert "verify=dane" in line["text"], line["text"]


def test_probe_may_failed_handshake(mx, dns, primary_factory, certs):
    """Under may a primary whose handshake fails is still up (flush
    would deliver in plaintext), marked tls=failed."""
    c, _ = tls_primary(primary_factory, certs.valid(MXHOST),
                       maximum=ssl.TLSVersion.TLSv1_1)
    route(mx, dns, c.port)
    rc, (line,), p = probe(mx)
    assert rc == 0, p.stdout
    assert line["state"] == "up"
    assert "starttls=yes" in line["text"] and "tls=failed" in line["text"]


def test_probe_encrypt_without_starttls_is_down(mx, dns, primary_factory):
    c, _ = tls_primary(primary_factory, None)
    route(mx, dns, c.port, "tls-outbound encrypt")
    rc, (line,), p = probe(mx)
    assert rc == 2, p.stdout
    assert line["state"] == "down"
    assert "offers no STARTTLS" in line["text"], line["text"]
