"""bounce together with flush: a primary's 5xx reported with its own text
(Diagnostic-Code, Remote-MTA, Status), DSNs delivered by `mxfb flush` to a
real SMTP server standing for the sender's MX (by MX lookup, or
`smarthost`), BODY=8BITMIME for 8-bit originals, a DSN that cannot be
delivered dropped and never bounced.  Loopback only: primaries on
127.0.0.2, the sender's MX on 127.0.0.3."""
import time

from test_bounce import Dsn, all_dsns, bounce, dsns, message, originals, \
    queue, read_dsn, summary, wait_age

FAST = ("connect-timeout 2s", "command-timeout 3s", "data-timeout 3s",
        "data-done-timeout 3s", "retry-min 60s", "retry-max 1h")
REJECT = "550 5.1.1 <bob@example.test>: Recipient address rejected: no such user"


def flush(mx, *args):
    p = mx.run("flush", *args, timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p


def setup_peers(mx, dns, primary_factory, *extra, sender_mx=True):
    """Primary for example.test on 127.0.0.2, us at preference 20, and
    (sender_mx) an MX for example.org on 127.0.0.3, same port."""
    primary, prec = primary_factory("127.0.0.2")
    port = primary.port
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    srec = None
    if sender_mx:
        _, srec = primary_factory("127.0.0.3", port=port)
        dns.mx("example.org", 10, "mx.example.org")
        dns.a("mx.example.org", "127.0.0.3")
    mx.config("smtp-port %d" % port, *(FAST + extra))
    return prec, srec


def test_primary_5xx_in_diagnostic_code_and_dsn_delivered(
        mx, dns, primary_factory):
    prec, srec = setup_peers(mx, dns, primary_factory)
    prec.rcpt_replies["bob@example.test"] = REJECT
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"], message())
    flush(mx)
    assert [m["rcpts"] for m in prec.messages] == [["carol@example.test"]]
    [m] = originals(mx)
    states = {r["addr"]: r["state"] for r in m["recipients"]}
    assert states == {"bob@example.test": "failed",
                      "carol@example.test": "delivered"}

    p = bounce(mx)
    assert summary(p) == (1, 0, 0)
    assert originals(mx) == []          # every recipient is done now
    [d] = dsns(mx)
    dsn = read_dsn(mx, d["id"])
    assert dsn.orig_id == qid
    assert dsn.addrs() == ["bob@example.test"]
    r = dsn.rcpt("bob@example.test")
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx1.example.test"
    assert r["Diagnostic-Code"] == "smtp; " + REJECT
    assert "Last-Attempt-Date" in r
    assert "host mx1.example.test" in dsn.text
    assert "no such user" in dsn.text
    assert "%s: sender non-delivery notification: %s" % (qid, d["id"]) in \
        p.stderr.decode()
    stored = dsn.data

    # flush takes the DSN to the sender's MX, from <>.
    flush(mx)
    assert queue(mx) == []
    [got] = srec.messages
    assert got["from"] in ("", "<>")
    assert got["rcpts"] == ["alice@example.org"]
    assert got["data"].replace(b"\r\n", b"\n") == \
        stored.replace(b"\r\n", b"\n")
    delivered = Dsn(got["data"].replace(b"\r\n", b"\n").replace(
        b"\n", b"\r\n"), d["id"])
    assert delivered.rcpt("bob@example.test")["Diagnostic-Code"] == \
        "smtp; " + REJECT
    assert delivered.returned_type == "message/rfc822"
    assert b"Hello Bob." in delivered.returned_bytes()


def test_partial_failure_reported_once_message_stays(
        mx, dns, primary_factory):
    prec, _ = setup_peers(mx, dns, primary_factory, sender_mx=False)
    prec.rcpt_replies["bob@example.test"] = REJECT
    prec.rcpt_replies["carol@example.test"] = "451 4.3.0 try again later"
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"], message())
    flush(mx)
    assert summary(bounce(mx)) == (1, 0, 0)
    assert summary(bounce(mx)) == (0, 0, 0)
    [m] = originals(mx)
    assert m["id"] == qid
    states = {r["addr"]: r["state"] for r in m["recipients"]}
    assert states == {"bob@example.test": "failed",
                      "carol@example.test": "deferred"}
    [d] = all_dsns(mx)
    assert d.addrs() == ["bob@example.test"]
    # Carol then fails too: a second report, for her only.
    prec.rcpt_replies["carol@example.test"] = "550 5.2.1 mailbox disabled"
    flush(mx, "-f", qid)
    assert summary(bounce(mx)) == (1, 0, 0)
    assert originals(mx) == []
    reports = sorted((d.addrs(), d.rcpts[0]["Status"]) for d in all_dsns(mx))
    assert reports == [(["bob@example.test"], "5.1.1"),
                       (["carol@example.test"], "5.2.1")]


def test_expired_after_deferrals_and_policy_verified(mx, dns, primary_factory):
    """Expiry: 4.4.7 with the primary's last 4xx as diagnostic.  Under
    bounce-policy verified an unverified expiry gets no DSN, but a
    primary's own 5xx does."""
    prec, _ = setup_peers(mx, dns, primary_factory, "queue-lifetime 2s",
                    "delay-warning 0", "bounce-policy verified",
                    sender_mx=False)
    prec.rcpt_replies["bob@example.test"] = REJECT
    prec.rcpt_replies["carol@example.test"] = "451 4.3.0 try again later"
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"], message())
    flush(mx)
    wait_age(mx, qid, 2)
    p = bounce(mx)
    assert summary(p) == (0, 0, 1)
    assert originals(mx) == []
    [d] = all_dsns(mx)
    assert d.addrs() == ["bob@example.test"]
    assert d.rcpts[0]["Status"] == "5.1.1"
    log = p.stderr.decode()
    assert "to=<carol@example.test>" in log
    assert "not returned (bounce-policy verified)" in log

    # Under `all`, the expired recipient's report quotes the primary.
    mx.config(*(mx.extra[:-1] + ["bounce-policy all"]))
    qid = mx.inject("alice@example.org", ["carol@example.test"], message())
    flush(mx)
    wait_age(mx, qid, 2)
    bounce(mx)
    [d] = [x for x in all_dsns(mx) if x.orig_id == qid]
    r = d.rcpt("carol@example.test")
    assert r["Status"] == "4.4.7" and r["Action"] == "failed"
    assert r["Diagnostic-Code"] == "smtp; 451 4.3.0 try again later"
    assert r["Remote-MTA"] == "dns; mx1.example.test"


def test_dsn_via_smarthost_with_8bitmime(mx, dns, primary_factory):
    smart, srec = primary_factory("127.0.0.3")
    mx.config("smarthost [127.0.0.3]:%d" % smart.port, "queue-lifetime 1s",
              "delay-warning 0", *FAST)
    data = message(subject="caf\u00e9", body="Gr\u00fc\u00dfe\n").encode()
    qid = mx.inject("alice@example.org", ["bob@example.test"], data)
    wait_age(mx, qid, 1)
    assert summary(bounce(mx)) == (0, 0, 1)
    flush(mx, "-f")
    [got] = srec.messages
    assert got["rcpts"] == ["alice@example.org"]
    assert "BODY=8BITMIME" in [o.upper() for o in got["mail_options"]]
    d = Dsn(got["data"].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert d.orig_id == qid
    assert d.msg["Content-Transfer-Encoding"] == "8bit"
    assert "Grüße".encode() in d.returned_bytes()


def test_undeliverable_dsn_is_dropped_never_bounced(mx, dns, primary_factory):
    prec, srec = setup_peers(mx, dns, primary_factory, "queue-lifetime 1h")
    srec.rcpt_replies["alice@example.org"] = "550 5.1.1 no such sender here"
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    bounce(mx, qid)
    [d] = dsns(mx)
    flush(mx, "-f")
    [m] = queue(mx)
    assert m["id"] == d["id"]
    assert m["recipients"][0]["state"] == "failed"
    p = bounce(mx)
    assert summary(p) == (0, 0, 0)
    assert queue(mx) == []
    assert "the sender is <>" in p.stderr.decode()
    assert srec.messages == []


def test_smtputf8_dsn_delivered_with_smtputf8(mx, dns, primary_factory):
    from test_bounce import smtputf8_send
    smart, srec = primary_factory("127.0.0.3", enable_SMTPUTF8=True)
    mx.config("smarthost [127.0.0.3]:%d" % smart.port, "queue-lifetime 2s",
              "delay-warning 0", *FAST)
    sender = "j\u00f6rg@example.org"
    data = ("From: <%s>\nSubject: x\n\nK\u00e4se.\n" % sender).encode()
    qid = smtputf8_send(mx, sender, "bob@example.test", data)
    wait_age(mx, qid, 2)
    bounce(mx)
    flush(mx, "-f")
    [got] = srec.messages
    assert got["rcpts"] == [sender]
    assert "SMTPUTF8" in [o.upper() for o in got["mail_options"]]
    d = Dsn(got["data"].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert d.utf8 and d.orig_id == qid
