"""DNS answers as the internet gives them (issue 11 point 1), against
`flush`, `probe` and the delivery of DSNs: never a signal, always a
bounded time, and the outcome RFC 5321 section 5.1 asks for (deliver to
the better hosts that work, defer on temporary DNS trouble, "loops back
to myself" when we are the best, permanent failure only for NXDOMAIN,
Null MX, or no MX and no address).

The zone is served by dnslib on 127.0.0.1 over UDP and TCP, with CNAMEs
chased as a recursive resolver does (also round a loop, up to 16 links),
UDP answers over 512 bytes truncated (TC) as without EDNS, and names that
never get an answer, and answers packed by hand where dnslib refuses
(names over 255 octets, bad label types, pointer loops, cut short).
Primaries are aiosmtpd on 127.0.0.2/127.0.0.3; "down" is a port nobody
listens on.
"""
import socket
import threading
import time

import pytest
from dnslib import A, AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, DNSHeader, \
    DNSLabel, DNSRecord

import conftest
from conftest import Zone, free_port
from test_flush import FAST, message

US = "backup.example.test"


class HostileZone(Zone):
    """Zone plus CNAMEs (chased in the answer, at most 16 links, as a
    recursive resolver would hand them over), truncation of UDP answers
    over 512 bytes, and the protocol of every query."""

    def __init__(self):
        super().__init__()
        self.protocols = []
        self.raw = {}       # name -> bytes of the answer after the question

    class Raw:
        """An answer packed by hand (what dnslib refuses to build)."""

        def __init__(self, data):
            self.data = data

        def pack(self):
            return self.data

    def cname(self, name, target):
        self.add(name, "CNAME", CNAME(target.rstrip(".") + "."))

    def resolve(self, request, handler):
        qname = self._norm(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            self.protocols.append(handler.protocol)
            if qname in self.silent:
                return None
            raw = self.raw.get(qname)
        if raw is not None:
            q = DNSRecord(DNSHeader(id=request.header.id),
                          q=request.q).pack()     # the question alone
            return self.Raw(q[:2] + b"\x85\x80" + q[4:6] + b"\x00\x01"
                            + b"\x00\x00\x00\x00" + q[12:] + raw)
        reply = request.reply()
        reply.header.aa = 1
        owner, name = request.q.qname, qname
        with self.lock:
            for _ in range(16):
                if name in self.rcodes:
                    reply.header.rcode = self.rcodes[name]
                    return self._fit(request, reply, handler)
                alias = self.records.get((name, "CNAME"))
                if not alias or qtype == "CNAME":
                    break
                reply.add_answer(RR(owner, QTYPE.CNAME, rdata=alias[0],
                                    ttl=60))
                owner = alias[0].label
                name = self._norm(owner)
            known = any(k[0] == name for k in self.records)
            rdatas = list(self.records.get((name, qtype), []))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        for rd in rdatas:
            reply.add_answer(RR(owner, QTYPE.reverse[qtype], rdata=rd,
                                ttl=60))
        return self._fit(request, reply, handler)

    @staticmethod
    def _fit(request, reply, handler):
        if handler.protocol == "udp" and len(reply.pack()) > 512:
            short = request.reply()
            short.header.aa = 1
            short.header.tc = 1
            return short
        return reply

    def names_asked(self, qtype="A"):
        with self.lock:
            return {n for n, t in self.queries if t == qtype}


@pytest.fixture
def dns():
    yield from conftest.serve_dns(HostileZone())


def configure(mx, dns, port, *extra, ours=20):
    if ours is not None:
        dns.mx("example.test", ours, US)
        dns.a(US, "127.0.0.1")
    mx.config("smtp-port %d" % port, "retry-min 60s", "retry-max 1h",
              *(FAST + extra))


def down_port():
    """A port nobody listens on, on 127.0.0.2 and 127.0.0.3."""
    while True:
        port = free_port("127.0.0.2")
        try:
            s = socket.socket()
            s.bind(("127.0.0.3", port))
            s.close()
            return port
        except OSError:
            continue


def no_crash(err):
    assert "abnormally" not in err and "died" not in err, err
    assert "signal" not in err.lower() and "Sanitizer" not in err, err


def flush(mx, bound, *args):
    t0 = time.monotonic()
    p = mx.run("flush", "-f", *args, timeout=180)
    took = time.monotonic() - t0
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, (p.returncode, err)
    no_crash(err)
    assert took < bound, (took, err)
    return err


def probe(mx, bound, *args):
    t0 = time.monotonic()
    p = mx.run("probe", *args, timeout=180)
    took = time.monotonic() - t0
    out, err = p.stdout.decode(), p.stderr.decode(errors="replace")
    assert p.returncode >= 0, (p.returncode, out, err)   # no signal
    no_crash(err)
    assert took < bound, (took, out, err)
    lines = out.splitlines()
    assert lines and lines[0].startswith("MXFB "), out   # the plugin's line
    return p.returncode, lines[1:]


def recipient(mx, qid):
    found = [m for m in mx.status_json() if m["id"] == qid]
    if not found:
        return None                 # delivered and removed
    return found[0]["recipients"][0]


def connects(err, ip):
    """Connection attempts to ip in flush's log."""
    return sum(1 for line in err.splitlines()
               if ": connect to " in line and "status=" not in line and
               "[%s]:" % ip in line)


def inject(mx):
    return mx.inject("s@sender.test", ["u@example.test"], message())


# ---- the same host, the same address, case and trailing dots

def test_same_host_twice_down(mx, dns):
    """The known crash: MX 10 mx1, MX 15 mx1, mx1 down (SIGSEGV in flush's
    worker and in probe before)."""
    port = down_port()
    dns.mx("example.test", 10, "mx1.example.test")
    dns.mx("example.test", 15, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    configure(mx, dns, port)
    qid = inject(mx)
    err = flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "deferred" and r["attempts"] == 1, r
    assert "127.0.0.2" in r["last_error"], r
    assert connects(err, "127.0.0.2") == 1, err
    rc, lines = probe(mx, 20)
    assert rc == 2, lines
    assert len(lines) == 1 and " pref=10 down " in lines[0], lines


def test_same_host_under_case_and_dot_variants_up(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 15, "mx1.example.test")
    dns.mx("example.test", 10, "MX1.Example.TEST.")
    dns.mx("example.test", 12, "mx1.EXAMPLE.test")
    dns.a("mx1.example.test", "127.0.0.2")
    # Ourselves, spelled otherwise: never a primary.
    dns.mx("example.test", 20, "Backup.Example.Test.")
    dns.mx("example.test", 30, "mx3.example.test")
    dns.a("mx3.example.test", "127.0.0.3")
    configure(mx, dns, c.port, ours=None)
    rc, lines = probe(mx, 20)
    assert rc == 0 and len(lines) == 1, lines
    assert "mx1.example.test[127.0.0.2]" in lines[0], lines
    assert " pref=10 up " in lines[0], lines
    qid = inject(mx)
    flush(mx, 20)
    assert recipient(mx, qid) is None
    assert len(rec.messages) == 1


def test_same_address_under_several_names_tried_once(mx, dns):
    port = down_port()
    dns.mx("example.test", 10, "mx1.example.test")
    dns.mx("example.test", 11, "mx2.example.test")
    dns.mx("example.test", 12, "mx3.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.a("mx2.example.test", "127.0.0.2")
    dns.a("mx3.example.test", "127.0.0.2")
    dns.a("mx3.example.test", "127.0.0.3")
    dns.a("mx3.example.test", "127.0.0.3")
    configure(mx, dns, port)
    qid = inject(mx)
    err = flush(mx, 20)
    assert recipient(mx, qid)["state"] == "deferred"
    assert connects(err, "127.0.0.2") == 1, err
    assert connects(err, "127.0.0.3") == 1, err


# ---- CNAMEs

def test_mx_host_a_cname_is_tolerated(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "alias.example.test")
    dns.cname("alias.example.test", "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    configure(mx, dns, c.port)
    qid = inject(mx)
    flush(mx, 20)
    assert recipient(mx, qid) is None and len(rec.messages) == 1


def test_domain_a_cname(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    dns.cname("example.test", "real.test")
    dns.mx("real.test", 10, "mx1.real.test")
    dns.a("mx1.real.test", "127.0.0.2")
    dns.mx("real.test", 20, US)
    dns.a(US, "127.0.0.1")
    configure(mx, dns, c.port, ours=None)
    qid = inject(mx)
    flush(mx, 20)
    assert recipient(mx, qid) is None and len(rec.messages) == 1


def test_domain_cname_loop_defers(mx, dns, primary_factory):
    """A CNAME loop is DNS trouble, not a name without mail: deferred."""
    dns.cname("example.test", "loop.test")
    dns.cname("loop.test", "example.test")
    configure(mx, dns, down_port(), ours=None)
    qid = inject(mx)
    flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "deferred", r
    assert "CNAME" in r["last_error"], r
    rc, lines = probe(mx, 20)
    assert rc == 3, lines


def test_mx_host_cname_loop_and_long_chain_skipped(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.3")
    dns.mx("example.test", 10, "loop1.example.test")
    dns.cname("loop1.example.test", "loop2.example.test")
    dns.cname("loop2.example.test", "loop1.example.test")
    # Twelve links: followed by the server, too long for us (8).
    dns.mx("example.test", 11, "c0.example.test")
    for i in range(12):
        dns.cname("c%d.example.test" % i, "c%d.example.test" % (i + 1))
    dns.a("c12.example.test", "127.0.0.2")
    dns.mx("example.test", 15, "mx2.example.test")
    dns.a("mx2.example.test", "127.0.0.3")
    configure(mx, dns, c.port)
    qid = inject(mx)
    err = flush(mx, 20)
    assert recipient(mx, qid) is None, err
    assert len(rec.messages) == 1
    assert connects(err, "127.0.0.2") == 0, err


# ---- many records, TCP, silence

def test_many_mx_records_over_tcp(mx, dns, primary_factory):
    """300 MX records (only over TCP): a bounded number of hosts looked
    up, the best working one used."""
    c, rec = primary_factory("127.0.0.2")
    for i in range(300):
        dns.mx("example.test", 100 + i, "h%03d.example.test" % i)
    dns.mx("example.test", 50, "good.example.test")
    dns.a("good.example.test", "127.0.0.2")
    configure(mx, dns, c.port, ours=1000)
    qid = inject(mx)
    flush(mx, 30)
    assert recipient(mx, qid) is None and len(rec.messages) == 1
    assert "tcp" in dns.protocols
    assert len(dns.names_asked("A")) <= 21, len(dns.names_asked("A"))
    rc, lines = probe(mx, 30)
    assert rc == 0 and len(lines) == 1, lines


def test_cap_never_delivers_where_we_could_be(mx, dns, primary_factory):
    """Our own entry (by address) lies beyond the lookup cap: nothing at
    or after the cut may get the mail, the host worse than us least."""
    c, rec = primary_factory("127.0.0.2")
    for i in range(25):
        dns.mx("example.test", 1 + i, "h%02d.example.test" % i)
    dns.mx("example.test", 30, "alias-of-us.example.test")
    dns.a("alias-of-us.example.test", "127.0.0.1")
    dns.mx("example.test", 40, "worse.example.test")
    dns.a("worse.example.test", "127.0.0.2")
    configure(mx, dns, c.port, ours=None)
    qid = inject(mx)
    flush(mx, 30)
    assert recipient(mx, qid)["state"] == "deferred"
    assert rec.messages == []
    assert len(dns.names_asked("A")) <= 21


def test_one_host_servfail_silent_or_without_address(mx, dns,
                                                     primary_factory):
    c, rec = primary_factory("127.0.0.3")
    dns.mx("example.test", 10, "silent.example.test")
    dns.silent.add("silent.example.test")
    dns.mx("example.test", 11, "sf.example.test")
    dns.rcodes["sf.example.test"] = RCODE.SERVFAIL
    dns.mx("example.test", 12, "noaddr.example.test")
    dns.add("noaddr.example.test", "TXT", TXT("no address here"))
    dns.mx("example.test", 13, "gone.example.test")
    dns.mx("example.test", 15, "mx2.example.test")
    dns.a("mx2.example.test", "127.0.0.3")
    configure(mx, dns, c.port)
    qid = inject(mx)
    flush(mx, 15)
    assert recipient(mx, qid) is None and len(rec.messages) == 1
    rc, lines = probe(mx, 15)
    assert rc == 0 and len(lines) == 1 and "127.0.0.3" in lines[0], lines


def test_many_silent_hosts_bounded(mx, dns, primary_factory):
    """40 hosts whose lookups time out, then a working one: the route's
    lookups stop within their overall bound (4 x dns-timeout x
    dns-retry); the hosts after the cut may be us: deferred."""
    c, rec = primary_factory("127.0.0.2")
    for i in range(40):
        dns.mx("example.test", 10 + i, "s%02d.example.test" % i)
        dns.silent.add("s%02d.example.test" % i)
    dns.mx("example.test", 60, "mx2.example.test")
    dns.a("mx2.example.test", "127.0.0.2")
    configure(mx, dns, c.port, ours=100)
    qid = inject(mx)
    flush(mx, 12)
    r = recipient(mx, qid)
    assert r["state"] == "deferred" and r["last_error"], r
    assert rec.messages == []
    rc, lines = probe(mx, 12)
    assert rc == 3, lines


class TruncatingServer:
    """UDP: every answer truncated (TC); TCP: accepts, never answers."""

    def __init__(self):
        # UDP and TCP on one port: a port whose TCP side is taken is
        # given up whole (fresh sockets each try), never half bound.
        for _ in range(20):
            port = free_port(kind=socket.SOCK_DGRAM)
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.tcp = socket.socket()
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.udp.bind(("127.0.0.1", port))
                self.tcp.bind(("127.0.0.1", port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        self.tcp.listen(16)
        self.port = port
        self.held = []
        self.tcp_seen = 0
        self.stop = False
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _udp(self):
        while not self.stop:
            try:
                data, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            # Same ID and question, QR and TC set, no records.
            flags = bytes([data[2] | 0x80 | 0x02, 0x80])
            self.udp.sendto(data[:2] + flags + data[4:], peer)

    def _tcp(self):
        while not self.stop:
            try:
                s, _ = self.tcp.accept()
            except OSError:
                return
            self.tcp_seen += 1
            self.held.append(s)

    def close(self):
        self.stop = True
        self.udp.close()
        self.tcp.close()
        for s in self.held:
            s.close()


def test_truncated_answer_and_silent_tcp_bounded(mx, dns):
    srv = TruncatingServer()
    try:
        mx.dns = type("D", (), {"address": "127.0.0.1:%d" % srv.port})()
        configure(mx, dns, down_port(), ours=None)
        qid = inject(mx)
        flush(mx, 12)
        r = recipient(mx, qid)
        assert r["state"] == "deferred", r
        assert srv.tcp_seen >= 1
        rc, lines = probe(mx, 12)
        assert rc == 3, lines
    finally:
        srv.close()


# ---- odd names

def test_odd_labels_null_mx_mixed_and_long_names(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 0, ".")
    for raw in (b"mx one", b"mx\x00nul", b"mx\xffhigh", b"mx\\back",
                b"mx.dot"):
        dns.add("example.test", "MX",
                MX(DNSLabel([raw, b"example", b"test"]), 5))
    # A valid name of three 63-octet labels, 242 octets in all.
    long = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 37, "example",
                     "test"])
    assert len(long) == 242
    dns.mx("example.test", 10, long)
    dns.a(long, "127.0.0.2")
    configure(mx, dns, c.port)
    qid = inject(mx)
    err = flush(mx, 20)
    assert recipient(mx, qid) is None and len(rec.messages) == 1
    assert long + "[127.0.0.2]" in err
    assert "example.test: 5 MX records with a malformed host name " \
        "skipped" in err, err
    # Names no host can have are never looked up.
    assert not [n for n in dns.names_asked("A") if "mx" in n], \
        dns.names_asked("A")
    rc, lines = probe(mx, 20)
    assert rc == 0 and len(lines) == 1, lines


def _mx_rdata(exchange):
    rdata = b"\x00\x0a" + exchange
    return (b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x00\x3c"
            + len(rdata).to_bytes(2, "big") + rdata)


@pytest.mark.parametrize("raw", [
    # An exchange of 334 octets (names end at 255).
    _mx_rdata(b"".join(b"\x3f" + b"a" * 63 for _ in range(5))
              + b"\x07example\x04test\x00"),
    # A label type that does not exist (0x40), a pointer loop.
    _mx_rdata(b"\x41" + b"a" * 65 + b"\x00"),
    _mx_rdata(b"\x02mx\xc0\x2c"),      # 44: the exchange itself
    # One answer announced, half of it sent.
    _mx_rdata(b"\x03mx1\x07example\x04test\x00")[:9],
], ids=["name-over-255", "label-type-0x40", "pointer-loop", "cut-short"])
def test_malformed_answer_defers(mx, dns, raw):
    dns.raw["example.test"] = raw
    configure(mx, dns, down_port(), ours=None)
    qid = inject(mx)
    flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "deferred", r
    rc, lines = probe(mx, 20)
    assert rc == 3, lines


def test_null_mx_alone_fails(mx, dns):
    dns.mx("example.test", 0, ".")
    configure(mx, dns, down_port(), ours=None)
    qid = inject(mx)
    flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "failed" and "nullMX" in r["last_error"], r


def test_only_bad_names_defers(mx, dns):
    dns.add("example.test", "MX", MX(DNSLabel([b"a b", b"test"]), 10))
    configure(mx, dns, down_port(), ours=None)
    qid = inject(mx)
    flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "deferred", r


def test_ip_literal_exchange_is_an_address(mx, dns, primary_factory):
    """An MX naming an address (as Postfix: used as that address), ours
    included: 127.0.0.1 at preference 10 makes us the best."""
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "127.0.0.2.")
    configure(mx, dns, c.port)
    qid = inject(mx)
    flush(mx, 20)
    assert recipient(mx, qid) is None and len(rec.messages) == 1
    dns.clear("example.test", "MX")
    dns.mx("example.test", 10, "127.0.0.1.")
    dns.mx("example.test", 20, US)
    qid = inject(mx)
    flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "deferred", r
    assert "loops back to myself" in r["last_error"], r


def test_mx_is_the_domain_itself(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "example.test")
    dns.a("example.test", "127.0.0.2")
    configure(mx, dns, c.port)
    qid = inject(mx)
    flush(mx, 20)
    assert recipient(mx, qid) is None and len(rec.messages) == 1


# ---- our own addresses

@pytest.mark.parametrize("kind,addr", [
    ("A", A("127.0.0.1")),
    ("AAAA", AAAA([0] * 10 + [255, 255, 127, 0, 0, 1])),   # ::ffff:127.0.0.1
    ("A", A("0.0.0.0"))], ids=["127.0.0.1", "v4mapped", "0.0.0.0"])
def test_our_address_under_another_name(mx, dns, primary_factory, kind,
                                        addr):
    """mx0 (down) at 5, another name for us at 10, mx2 (up) at 15, our
    name at 20: only mx0 may get the mail."""
    c, rec = primary_factory("127.0.0.2")
    c3, rec3 = primary_factory("127.0.0.3", port=c.port)
    c3.stop()
    dns.mx("example.test", 5, "mx0.example.test")
    dns.a("mx0.example.test", "127.0.0.3")
    dns.mx("example.test", 10, "alias.example.test")
    dns.add("alias.example.test", kind, addr)
    dns.mx("example.test", 15, "mx2.example.test")
    dns.a("mx2.example.test", "127.0.0.2")
    configure(mx, dns, c.port)
    qid = inject(mx)
    err = flush(mx, 20)
    r = recipient(mx, qid)
    assert r["state"] == "deferred", r
    assert rec.messages == [], err
    assert connects(err, "127.0.0.3") == 1, err


def test_127_0_0_2_is_not_ours(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    configure(mx, dns, c.port)
    qid = inject(mx)
    flush(mx, 20)
    assert recipient(mx, qid) is None and len(rec.messages) == 1


# ---- DSNs to a sender whose domain has the hostile zone

def test_dsn_to_hostile_sender_domain(mx, dns, primary_factory):
    """The return path is the sender's: its zone names mx1 twice (down).
    The DSN is deferred, mail for the relay domain still goes out."""
    c, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("hostile.test", 10, "mx1.hostile.test")
    dns.mx("hostile.test", 15, "MX1.hostile.test.")
    dns.a("mx1.hostile.test", "127.0.0.3")
    for i in range(60):
        dns.mx("hostile.test", 20 + i, "s%02d.hostile.test" % i)
        dns.silent.add("s%02d.hostile.test" % i)
    configure(mx, dns, c.port)
    orig = mx.inject("spammer@hostile.test", ["u@example.test"], message())
    p = mx.run("bounce", orig)
    assert p.returncode == 0, p.stderr
    [dsn] = [m for m in mx.status_json() if m["sender"] == ""]
    qid = inject(mx)
    err = flush(mx, 15)
    assert recipient(mx, qid) is None and len(rec.messages) == 1
    r = recipient(mx, dsn["id"])
    assert r["addr"] == "spammer@hostile.test"
    assert r["state"] == "deferred" and r["attempts"] == 1, r
    assert connects(err, "127.0.0.3") == 1, err


def test_dsn_via_smarthost_name_listed_twice(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    s, srec = primary_factory("127.0.0.3", port=c.port)
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("smart.test", 10, "relay.smart.test")
    dns.mx("smart.test", 20, "RELAY.smart.test.")
    dns.a("relay.smart.test", "127.0.0.3")
    configure(mx, dns, c.port, "smarthost smart.test")
    orig = mx.inject("alice@example.org", ["u@example.test"], message())
    assert mx.run("bounce", orig).returncode == 0
    flush(mx, 20)
    assert mx.status_json() == []
    assert len(srec.messages) == 1
