"""`mxfb flush` against real primaries (aiosmtpd, raw sockets) on 127.0.0.x
and a real DNS server (dnslib), loopback only.

Shows: per-recipient 250/451/550 outcomes and the spool state they leave,
the Postfix-like log line per recipient, back-off, -f/-d/ID selection,
held messages skipped, MX selection (only hosts better than us; loop to
ourselves deferred; implicit MX; Null MX and NXDOMAIN failed; SERVFAIL and
DNS timeout deferred), via, bytes delivered equal to bytes stored, many
messages over one connection, checksum mismatch never sent.
"""
import os
import re
import socket
import threading
import time

import pytest

from conftest import free_port

RCPT_LINE = re.compile(
    r"(?P<id>[0-9A-Z]+): to=<(?P<to>[^>]*)>, relay=(?P<relay>\S+), "
    r"delay=[0-9.]+, dsn=(?P<dsn>[245]\.[0-9]+\.[0-9]+), "
    r"status=(?P<status>sent|deferred|bounced) \((?P<why>.*)\)$")

FAST = ("connect-timeout 2s", "command-timeout 3s", "data-timeout 3s",
        "data-done-timeout 3s")


def message(subject="test", body="hello\n"):
    return ("From: sender@sender.test\nTo: user@example.test\n"
            "Subject: %s\nMessage-ID: <%s@sender.test>\n\n%s"
            % (subject, subject.replace(" ", "."), body))


def setup_domain(mx, dns, port, *extra, primaries=(("mx1.example.test",
                 "127.0.0.2", 10),), ours=20):
    for name, ip, pref in primaries:
        dns.mx("example.test", pref, name)
        dns.a(name, ip)
    dns.mx("example.test", ours, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % port, "retry-min 60s", "retry-max 1h",
              *(FAST + extra))


def flush(mx, *args):
    p = mx.run("flush", *args, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = p.stdout.decode()
    m = re.match(r"delivered (\d+), deferred (\d+), failed (\d+)\n$", out)
    assert m, out
    lines = [RCPT_LINE.search(l) for l in p.stderr.decode().splitlines()]
    return tuple(int(x) for x in m.groups()), [l for l in lines if l]


def by_id(mx):
    return {m["id"]: m for m in mx.status_json()}


def test_per_recipient_outcomes(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["later@example.test"] = "451 4.3.0 try again later"
    rec.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
    setup_domain(mx, dns, c.port)
    qid = mx.inject("sender@sender.test", ["ok@example.test",
                    "later@example.test", "nobody@example.test"], message())
    counts, lines = flush(mx)
    assert counts == (1, 1, 1)
    assert len(rec.messages) == 1
    assert rec.messages[0]["rcpts"] == ["ok@example.test"]
    assert rec.messages[0]["from"] == "sender@sender.test"
    got = {l["to"]: l for l in lines}
    assert got["ok@example.test"]["status"] == "sent"
    assert got["ok@example.test"]["relay"] == "mx1.example.test[127.0.0.2]:%d" % c.port
    assert got["ok@example.test"]["dsn"] == "2.0.0"
    assert got["ok@example.test"]["id"] == qid
    assert got["later@example.test"]["status"] == "deferred"
    assert got["later@example.test"]["dsn"] == "4.3.0"
    assert "451 4.3.0 try again later" in got["later@example.test"]["why"]
    assert got["nobody@example.test"]["status"] == "bounced"
    assert got["nobody@example.test"]["dsn"] == "5.1.1"
    assert "in reply to RCPT TO command" in got["nobody@example.test"]["why"]

    m = by_id(mx)[qid]
    st = {r["addr"]: r for r in m["recipients"]}
    assert st["ok@example.test"]["state"] == "delivered"
    assert st["later@example.test"]["state"] == "deferred"
    assert st["later@example.test"]["attempts"] == 1
    assert st["nobody@example.test"]["state"] == "failed"
    assert st["nobody@example.test"]["last_error"] == "550 5.1.1 no such user"
    # Back-off: the deferred recipient is not due again for retry-min.
    assert m["next_retry"] >= time.time() + 50
    counts, _ = flush(mx)
    assert counts == (0, 0, 0)
    # -f ignores back-off; the delivered recipient is never sent again.
    rec.rcpt_replies.pop("later@example.test")
    counts, _ = flush(mx, "-f")
    assert counts == (1, 0, 0)
    assert rec.messages[1]["rcpts"] == ["later@example.test"]
    # The failed recipient keeps the message for bounce.
    assert qid in by_id(mx)


def test_backoff_doubles(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["later@example.test"] = "451 4.3.0 later"
    setup_domain(mx, dns, c.port)
    mx.config("smtp-port %d" % c.port, "retry-min 100s", "retry-max 350s",
              *FAST)
    qid = mx.inject("s@sender.test", ["later@example.test"], message())
    waits = []
    for i in range(4):
        t0 = time.time()
        counts, _ = flush(mx, "-f")
        assert counts == (0, 1, 0)
        waits.append(by_id(mx)[qid]["next_retry"] - t0)
    assert [round(w, -1) for w in waits] == [100, 200, 350, 350]


def test_all_delivered_leaves_spool_and_bytes_equal(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    body = ("line one\r\n.starts with a dot\r\n..two dots\r\n.\r\n"
            "caf\xe9 8bit\r\n" + "x" * 990 + "\r\nlast line no newline")
    raw = ("Subject: bytes\r\nMessage-ID: <b@sender.test>\r\n\r\n"
           + body).encode("latin-1")
    p = mx.run("inject", "-f", "s@sender.test", "a@example.test",
               "b@example.test", input=raw, check=True)
    qid = p.stdout.decode().strip()
    stored = mx.run("status", "-b", qid, check=True).stdout
    counts, lines = flush(mx)
    assert counts == (2, 0, 0), lines[0]["why"]
    assert len(rec.messages) == 1
    data = rec.messages[0]["data"]
    # What the primary got is exactly what we stored...
    assert data.rstrip(b"\r\n") == stored.rstrip(b"\r\n")
    # ...which is the input but for our Received header (and CRLF ends).
    assert data.startswith(b"Received: ")
    assert raw.rstrip(b"\r\n") in data
    assert data.count(b"Received: ") == 1
    assert mx.status_json() == []


def test_many_messages_one_connection(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port, "flush-concurrency 1")
    sessions = []
    orig = rec.handle_DATA

    async def data(server, session, envelope):
        sessions.append(id(session))
        return await orig(server, session, envelope)
    rec.handle_DATA = data
    ids = [mx.inject("s@sender.test", ["u%d@example.test" % i],
                     message("m%d" % i)) for i in range(10)]
    counts, lines = flush(mx)
    assert counts == (10, 0, 0)
    assert len(rec.messages) == 10
    assert len(set(sessions)) == 1
    assert sorted(l["id"] for l in lines) == sorted(ids)


def test_selection_hold_ids_domain(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    dns.mx("other.test", 10, "mx.other.test")
    dns.a("mx.other.test", "127.0.0.3")
    c3, rec3 = primary_factory("127.0.0.3", port=c.port)
    mx.config("smtp-port %d" % c.port, "relay-domain other.test", *FAST)
    a = mx.inject("s@sender.test", ["a@example.test"], message("a"))
    b = mx.inject("s@sender.test", ["b@example.test"], message("b"))
    o = mx.inject("s@sender.test", ["o@other.test"], message("o"))
    h = mx.inject("s@sender.test", ["h@example.test"], message("h"))
    mx.run("hold", h, check=True)
    counts, _ = flush(mx, b)
    assert counts == (1, 0, 0)
    assert [m["rcpts"] for m in rec.messages] == [["b@example.test"]]
    counts, _ = flush(mx, "-d", "OTHER.test.")
    assert counts == (1, 0, 0)
    assert [m["rcpts"] for m in rec3.messages] == [["o@other.test"]]
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)          # a; h is held
    assert set(by_id(mx)) == {h}
    mx.run("release", h, check=True)
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)
    assert mx.status_json() == []
    assert a and o


def test_only_better_mx_and_loop(mx, dns, primary_factory):
    c2, rec2 = primary_factory("127.0.0.2")
    c3, rec3 = primary_factory("127.0.0.3", port=c2.port)
    # mx3 (30) is worse than us (20): never used even when mx1 is down.
    setup_domain(mx, dns, c2.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx3.example.test", "127.0.0.3", 30)))
    c2.stop()
    qid = mx.inject("s@sender.test", ["a@example.test"], message())
    counts, lines = flush(mx)
    assert counts == (0, 1, 0)
    assert rec3.messages == []
    assert "connect to mx1.example.test[127.0.0.2]" in lines[0]["why"]
    assert lines[0]["relay"] == "none"

    # We are the best MX: mail loops back to myself, deferred.
    dns.clear("example.test", "MX")
    dns.mx("example.test", 10, "backup.example.test")
    dns.mx("example.test", 30, "mx3.example.test")
    counts, lines = flush(mx, "-f")
    assert counts == (0, 1, 0)
    assert lines[0]["why"] == "mail for example.test loops back to myself"
    assert rec3.messages == []
    # Found by address too: a differently named host on 127.0.0.1.
    dns.clear("example.test", "MX")
    dns.mx("example.test", 10, "alias.example.test")
    dns.a("alias.example.test", "127.0.0.1")
    dns.mx("example.test", 30, "mx3.example.test")
    counts, lines = flush(mx, "-f")
    assert lines[0]["why"] == "mail for example.test loops back to myself"
    assert qid in by_id(mx)


def test_equal_preference_both_used(mx, dns, primary_factory):
    c2, rec2 = primary_factory("127.0.0.2")
    c3, rec3 = primary_factory("127.0.0.3", port=c2.port)
    setup_domain(mx, dns, c2.port, "flush-concurrency 1", primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx2.example.test", "127.0.0.3", 10)))
    for i in range(24):
        mx.inject("s@sender.test", ["a@example.test"], message("m%d" % i))
        counts, _ = flush(mx)
        assert counts == (1, 0, 0)
        if rec2.messages and rec3.messages:
            break
    assert rec2.messages and rec3.messages


def test_implicit_mx(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    mx.config("smtp-port %d" % c.port, *FAST)
    dns.a("example.test", "127.0.0.2")
    mx.inject("s@sender.test", ["a@example.test"], message())
    counts, lines = flush(mx)
    assert counts == (1, 0, 0)
    assert lines[0]["relay"] == "example.test[127.0.0.2]:%d" % c.port


def test_dns_failures(mx, dns, primary_factory):
    from dnslib import RCODE, MX
    mx.config("relay-domain sf.test", "relay-domain silent.test",
              "relay-domain nx.test", "relay-domain null.test",
              "smtp-port 9", *FAST)
    dns.rcodes["sf.test"] = RCODE.SERVFAIL
    dns.silent.add("silent.test")
    dns.add("null.test", "MX", MX(".", 0))
    ids = {d: mx.inject("s@sender.test", ["u@%s" % d], message(d))
           for d in ("sf.test", "silent.test", "nx.test", "null.test")}
    t0 = time.time()
    counts, lines = flush(mx)
    assert time.time() - t0 < 20
    assert counts == (0, 2, 2)
    got = {l["to"].split("@")[1]: l for l in lines}
    assert got["sf.test"]["status"] == "deferred"
    assert got["silent.test"]["status"] == "deferred"
    assert got["nx.test"]["status"] == "bounced"
    assert got["nx.test"]["dsn"] == "5.1.2"
    assert got["null.test"]["status"] == "bounced"
    assert got["null.test"]["dsn"] == "5.1.10"
    st = by_id(mx)
    assert st[ids["nx.test"]]["recipients"][0]["state"] == "failed"
    assert st[ids["sf.test"]]["recipients"][0]["state"] == "deferred"


def test_via_literal(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.3")
    # No DNS records at all: via [127.0.0.3]:port needs none.
    mx.config("relay-domain via.test via [127.0.0.3]:%d" % c.port, *FAST)
    mx.inject("s@sender.test", ["a@via.test"], message())
    counts, lines = flush(mx)
    assert counts == (1, 0, 0)
    assert lines[0]["relay"] == "127.0.0.3[127.0.0.3]:%d" % c.port


def test_smarthost_for_non_relay(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.3")
    mx.config("smarthost [127.0.0.3]:%d" % c.port, *FAST)
    mx.inject("", ["someone@elsewhere.test"], message())
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)
    assert rec.messages[0]["from"] in ("", "<>")   # null sender kept
    assert rec.messages[0]["rcpts"] == ["someone@elsewhere.test"]


def test_non_relay_domain_uses_its_mx(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.3")
    dns.mx("sender.test", 10, "mx.sender.test")
    dns.a("mx.sender.test", "127.0.0.3")
    mx.config("smtp-port %d" % c.port, *FAST)
    mx.inject("", ["s@sender.test"], message())
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)


def test_corrupt_message_never_sent(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    qid = mx.inject("s@sender.test", ["a@example.test"],
                    message(body="original body\n"))
    path = None
    for root, _, files in os.walk(mx.spool):
        for f in files:
            if f.startswith(qid) and "state" not in root:
                path = os.path.join(root, f)
    assert path
    with open(path, "r+b") as f:
        data = f.read()
        i = data.index(b"original body")
        f.seek(i)
        f.write(b"ORIGINAL")
    p = mx.run("flush")
    assert p.returncode == 0
    assert p.stdout.decode() == "delivered 0, deferred 0, failed 0\n"
    assert rec.messages == []
    assert "checksum" in p.stderr.decode()
    assert qid not in by_id(mx)


def test_no_spool_is_an_error_and_bad_id(mx):
    p = mx.run("flush", "../etc")
    assert p.returncode == 64
    mx.config("spool /nonexistent/mxfb-spool")
    p = mx.run("flush")
    assert p.returncode != 0


def test_via_ipv6_literal(mx, dns):
    from aiosmtpd.controller import Controller
    from conftest import Recorder
    s = socket.socket(socket.AF_INET6)
    s.bind(("::1", 0))
    port = s.getsockname()[1]
    s.close()
    rec = Recorder()
    c = Controller(rec, hostname="::1", port=port, decode_data=False)
    c.start()
    try:
        mx.config("relay-domain v6.test via [::1]:%d" % port, *FAST)
        mx.inject("s@sender.test", ["a@v6.test"], message())
        counts, lines = flush(mx)
        assert counts == (1, 0, 0)
        assert lines[0]["relay"] == "::1[::1]:%d" % port
        assert rec.messages[0]["rcpts"] == ["a@v6.test"]
    finally:
        c.stop()


def test_each_host_looked_up_once(mx, dns, primary_factory):
    """Self-detection resolves every MX host; the delivery targets reuse
    those addresses instead of asking the DNS again."""
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx2.example.test", "127.0.0.2", 15)))
    mx.inject("sender@sender.test", ["a@example.test"], message())
    del dns.queries[:]
    assert flush(mx)[0] == (1, 0, 0)
    asked = [q for q in dns.queries if q[1] in ("A", "AAAA")]
    for host in ("mx1.example.test", "mx2.example.test",
                 "backup.example.test"):
        for t in ("A", "AAAA"):
            assert asked.count((host, t)) <= 1, (host, t, asked)
    assert dns.queries.count(("example.test", "MX")) == 1


def test_reason_names_the_host_without_address(mx, dns, primary_factory):
    """mx1's lookup fails (SERVFAIL: a deferral), mx2 exists but has no
    address: the reason given is mx2's, from its own lookup (the
    addresses self-detection found are reused, their errors too)."""
    from dnslib import RCODE, TXT
    setup_domain(mx, dns, free_port("127.0.0.2"), primaries=())
    dns.mx("example.test", 10, "mx1.example.test")
    dns.rcodes["mx1.example.test"] = RCODE.SERVFAIL
    dns.mx("example.test", 15, "mx2.example.test")
    dns.add("mx2.example.test", "TXT", TXT("no address here"))
    mx.inject("sender@sender.test", ["a@example.test"], message())
    counts, lines = flush(mx)
    assert counts == (0, 1, 0)
    assert "no address record for mx2.example.test" in lines[0]["why"], \
        lines
