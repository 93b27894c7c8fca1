"""RFC 3461 success notifications (6.2): a recipient with NOTIFY=SUCCESS
delivered to a primary that does not offer DSN gets, from `mxfb bounce`,
a report with Action: relayed and Status: 2.0.0 (the primary's 250 as
Diagnostic-Code), delivered by `mxfb flush` to the sender's MX; the
message stays in the spool until that report is made.  A primary that
offers DSN gets NOTIFY itself and reports on its own: nothing from us.
Mail comes in through `mxfb receive -l` with smtplib's rcpt_options, so
the DSN parameters are a client's own.  Loopback only: primaries on
127.0.0.2 (aiosmtpd, which offers no DSN, or a raw server that does),
the sender's MX on 127.0.0.3."""
from test_bounce import Dsn, bounce, dsns, message, originals, queue, \
    read_dsn, smtp_send, summary
from test_bounce_flush import flush, setup_peers
from test_flush_peers import RawPrimary, send_via_receive

SUCCESS = ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x@example.test"]


def states(m):
    return {r["addr"]: r["state"] for r in m["recipients"]}


def test_no_dsn_primary_relayed_report_delivered(mx, dns, primary_factory):
    prec, srec = setup_peers(mx, dns, primary_factory)
    qid = smtp_send(mx, "alice@example.org",
                    [("bob@example.test", SUCCESS)], message(),
                    mail_options=["ENVID=env+2B1", "RET=FULL"])
    p = flush(mx)
    # The primary (no DSN in its EHLO) got the mail without parameters.
    [got] = prec.messages
    assert got["rcpts"] == ["bob@example.test"]
    assert got["rcpt_options"] == [[]]
    assert not [o for o in got["mail_options"] if "ENVID" in o.upper()]
    # Delivered, but the message stays: a success report is owed.
    [m] = originals(mx)
    assert m["id"] == qid
    assert states(m) == {"bob@example.test": "delivered"}
    assert "%s: removed" % qid not in p.stderr.decode()
    # A second flush neither delivers again nor removes it.
    flush(mx, "-f")
    assert len(prec.messages) == 1
    assert [x["id"] for x in originals(mx)] == [qid]

    p = bounce(mx)
    assert summary(p) == (0, 0, 0)      # a success is not a bounce
    assert originals(mx) == []
    [d] = dsns(mx)
    log = p.stderr.decode()
    assert "%s: sender delivery status notification: %s" % (qid, d["id"]) \
        in log
    assert "%s: removed" % qid in log
    dsn = read_dsn(mx, d["id"])
    assert dsn.subject == "Successful Mail Relay"
    assert dsn.msg["To"] == "<alice@example.org>"
    assert dsn.orig_id == qid
    assert dsn.fields["Original-Envelope-Id"] == "env+1"
    assert dsn.addrs() == ["bob@example.test"]
    r = dsn.rcpt("bob@example.test")
    assert r["Action"] == "relayed"
    assert r["Status"] == "2.0.0"
    assert r["Original-Recipient"] == "rfc822;x@example.test"
    assert r["Final-Recipient"] == "rfc822; bob@example.test"
    assert r["Remote-MTA"] == "dns; mx1.example.test"
    assert r["Diagnostic-Code"] == "smtp; 250 2.0.0 OK queued"
    assert "Last-Attempt-Date" in r
    assert "Will-Retry-Until" not in r
    assert "successfully relayed" in dsn.text
    assert "does not issue delivery" in dsn.text.replace("\r\n", " ")
    # Success reports return the headers only, even with RET=FULL.
    assert dsn.returned_type == "text/rfc822-headers"
    assert b"Subject: hello" in dsn.returned_bytes()
    assert b"Hello Bob." not in dsn.returned_bytes()

    # Nothing more to report; flush takes the report to the sender's MX.
    assert summary(bounce(mx)) == (0, 0, 0)
    assert len(dsns(mx)) == 1
    flush(mx)
    assert queue(mx) == []
    [got] = srec.messages
    assert got["from"] in ("", "<>")
    assert got["rcpts"] == ["alice@example.org"]
    delivered = Dsn(got["data"].replace(b"\r\n", b"\n").replace(
        b"\n", b"\r\n"), d["id"])
    r = delivered.rcpt("bob@example.test")
    assert (r["Action"], r["Status"]) == ("relayed", "2.0.0")
    assert r["Original-Recipient"] == "rfc822;x@example.test"
    assert delivered.subject == "Successful Mail Relay"


def test_notify_failure_only_no_success_report(mx, dns, primary_factory):
    prec, _ = setup_peers(mx, dns, primary_factory, sender_mx=False)
    smtp_send(mx, "alice@example.org",
              [("bob@example.test", ["NOTIFY=FAILURE",
                                     "ORCPT=rfc822;x@example.test"]),
               ("carol@example.test", [])], message())
    flush(mx)
    assert len(prec.messages) == 1
    assert queue(mx) == []              # removed at once: nothing owed
    assert summary(bounce(mx)) == (0, 0, 0)
    assert queue(mx) == []


def test_relayed_and_failed_in_one_report(mx, dns, primary_factory):
    prec, _ = setup_peers(mx, dns, primary_factory, sender_mx=False)
    prec.rcpt_replies["carol@example.test"] = "550 5.1.1 no such user"
    qid = smtp_send(mx, "alice@example.org",
                    [("bob@example.test", SUCCESS),
                     ("carol@example.test", SUCCESS)], message())
    flush(mx)
    [m] = originals(mx)
    assert states(m) == {"bob@example.test": "delivered",
                         "carol@example.test": "failed"}
    assert summary(bounce(mx)) == (1, 0, 0)
    assert originals(mx) == []
    [d] = dsns(mx)
    dsn = read_dsn(mx, d["id"])
    assert dsn.orig_id == qid
    assert dsn.subject == "Undelivered Mail Returned to Sender"
    assert dsn.rcpt("bob@example.test")["Action"] == "relayed"
    assert dsn.rcpt("bob@example.test")["Status"] == "2.0.0"
    assert dsn.rcpt("carol@example.test")["Action"] == "failed"
    assert dsn.rcpt("carol@example.test")["Status"] == "5.1.1"


def test_null_sender_never_gets_a_success_report(mx, dns, primary_factory):
    prec, _ = setup_peers(mx, dns, primary_factory, sender_mx=False)
    _, port = mx.listen()
    send_via_receive(mx, port, "", ["bob@example.test"], message(sender=""),
                     rcpt_options=SUCCESS)
    assert [m["sender"] for m in queue(mx)] == [""]
    flush(mx)
    assert len(prec.messages) == 1
    assert queue(mx) == []
    assert summary(bounce(mx)) == (0, 0, 0)
    assert queue(mx) == []


def test_dsn_primary_gets_notify_no_report_from_us(mx, dns):
    raw = RawPrimary("127.0.0.2")      # offers DSN
    try:
        dns.mx("example.test", 10, "mx1.example.test")
        dns.a("mx1.example.test", "127.0.0.2")
        dns.mx("example.test", 20, "backup.example.test")
        dns.a("backup.example.test", "127.0.0.1")
        mx.config("smtp-port %d" % raw.port, "connect-timeout 2s",
                  "command-timeout 3s", "data-timeout 3s",
                  "data-done-timeout 3s")
        smtp_send(mx, "alice@example.org", [("bob@example.test", SUCCESS)],
                  message(), mail_options=["ENVID=env+2B1"])
        flush(mx)
        [m] = raw.messages
        assert m["rcpts"] == ["RCPT TO:<bob@example.test> "
                              "NOTIFY=SUCCESS,FAILURE "
                              "ORCPT=rfc822;x@example.test"]
        assert "ENVID=env+2B1" in m["mail"]
        assert queue(mx) == []          # the primary reports, not us
        assert summary(bounce(mx)) == (0, 0, 0)
        assert queue(mx) == []
    finally:
        raw.close()
