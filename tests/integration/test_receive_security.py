"""`mxfb receive` as a backup MX must never be an open relay and never be
smuggled into: relay tricks refused at RCPT, recipients checked against
the `recipients` file, and every SMTP smuggling variant either refused or
harmless, never two messages from one DATA.
"""
import pytest

from conftest import receive_stdio


def session(mx, env=None):
    proc, raw = receive_stdio(mx, env=env)
    assert raw.cmd("EHLO client.test")[0] == 250
    assert raw.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    return proc, raw


def end(proc, raw):
    raw.cmd("QUIT")
    proc.wait(10)
    return proc.stderr.read().decode(errors="replace")


# The relay tricks (tests/integration/test_submission.py tries them on the
# submission port too).
RELAY_TRICKS = [
    "<user@elsewhere.test>",                       # not a relay domain
    "<user@sub.example.test>",                     # subdomain
    "<user@example.test.elsewhere.test>",          # relay domain as prefix
    "<user@xexample.test>",                        # relay domain as suffix
    "<user%elsewhere.test@example.test>",          # percent hack
    "<elsewhere.test!user@example.test>",          # bang path
    "<@example.test:user@elsewhere.test>",         # source route
    "<@example.test,@x.test:user@example.test>",   # source route, even home
    "<\"user@elsewhere.test\"@example.test>",      # quoted local part with @
    "<\"user%elsewhere.test\"@example.test>",      # quoted percent hack
    "<\"elsewhere!user\"@example.test>",           # quoted bang path
    "<user@[127.0.0.1]>",                          # address literal
    "<user@[IPv6:::1]>",                           # IPv6 literal
    "<user@elsewhere.test.>",                      # trailing dot elsewhere
    "<user@example.test..>",                       # two trailing dots
]


@pytest.mark.parametrize("rcpt", RELAY_TRICKS)
def test_open_relay_tricks_refused(mx, rcpt):
    proc, raw = session(mx)
    code, text = raw.cmd("RCPT TO:%s" % rcpt)
    assert code in (550, 501, 553), text
    assert text.split()[1].startswith("5."), text
    assert raw.cmd("DATA")[0] == 554
    log = end(proc, raw)
    assert "reject: RCPT from unknown[local]:" in log
    assert mx.status_json() == []


@pytest.mark.parametrize("rcpt,stored", [
    ("<user@example.test>", "user@example.test"),
    ("<User@EXAMPLE.TEST>", "User@EXAMPLE.TEST"),
    ("<user@example.test.>", "user@example.test"),     # trailing dot ignored
    ("<user+tag@example.test>", "user+tag@example.test"),
    ("<\"john doe\"@example.test>", "\"john doe\"@example.test"),
])
def test_relay_domain_accepted(mx, rcpt, stored):
    proc, raw = session(mx)
    assert raw.cmd("RCPT TO:%s" % rcpt)[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send("Subject: ok\r\n\r\nok\r\n.\r\n")
    assert raw.reply()[0] == 250
    end(proc, raw)
    msgs = mx.status_json()
    assert [r["addr"] for r in msgs[0]["recipients"]] == [stored]


def test_relay_denied_log_line(mx):
    proc, raw = session(mx, env={"TCPREMOTEIP": "192.0.2.9"})
    code, text = raw.cmd("RCPT TO:<x@elsewhere.test>")
    assert text == "550 5.7.1 <x@elsewhere.test>: Relay access denied"
    log = end(proc, raw)
    assert ("reject: RCPT from unknown[192.0.2.9]: 550 5.7.1 "
            "<x@elsewhere.test>: Relay access denied; from=<a@sender.test> "
            "to=<x@elsewhere.test> proto=ESMTP helo=<client.test>") in log


def test_recipients_file(mx):
    rfile = mx.dir + "/recipients"
    with open(rfile, "w") as f:
        f.write("# who exists\nalice@example.test\nBob@Example.Test\n"
                "@catchall.test\n")
    mx.config("recipients %s" % rfile, "relay-domain catchall.test")
    proc, raw = session(mx)
    assert raw.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<ALICE@example.TEST>")[0] == 250
    assert raw.cmd("RCPT TO:<bob+lists@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<anyone@catchall.test>")[0] == 250
    code, text = raw.cmd("RCPT TO:<mallory@example.test>")
    assert code == 550 and "5.1.1" in text and "User unknown" in text
    code, text = raw.cmd("RCPT TO:<alice+x@elsewhere.test>")
    assert code == 550 and "5.7.1" in text
    assert raw.cmd("DATA")[0] == 354
    raw.send("Subject: v\r\n\r\nv\r\n.\r\n")
    assert raw.reply()[0] == 250
    log = end(proc, raw)
    assert "to=<mallory@example.test>" in log
    m = mx.status_json()[0]
    assert sorted(r["addr"] for r in m["recipients"]) == [
        "ALICE@example.TEST", "alice@example.test", "anyone@catchall.test",
        "bob+lists@example.test"]
    text = mx.run("status", m["id"], check=True).stdout.decode()
    assert "verified: yes" in text


def test_recipients_file_unreadable_is_temporary(mx):
    mx.config("recipients %s/missing" % mx.dir)
    proc, raw = session(mx)
    code, text = raw.cmd("RCPT TO:<alice@example.test>")
    assert code == 451 and "4.3.0" in text
    end(proc, raw)


# Each variant ends the "first" message in a way that a lenient server
# would take for the end of DATA, and then smuggles a second transaction.
SMUGGLE = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\n",
           b"\r\n.\r", b"\r.\r\n", b"\n.\r"]


@pytest.mark.parametrize("ending", SMUGGLE, ids=lambda b: b.hex())
def test_smuggling_variants(mx, ending):
    proc, raw = session(mx)
    assert raw.cmd("RCPT TO:<victim@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"From: a@sender.test\r\nSubject: first\r\n\r\nfirst" + ending +
             b"MAIL FROM:<admin@example.test>\r\n"
             b"RCPT TO:<victim@example.test>\r\nDATA\r\n"
             b"From: admin@example.test\r\nSubject: smuggled\r\n\r\nevil\r\n"
             b".\r\n")
    code, text = raw.reply()
    # Bare CR/LF: the whole thing is one refused DATA.
    assert code == 550 and "5.5.2" in text, text
    # The next reply answers our NOOP: nothing smuggled was executed.
    assert raw.cmd("NOOP")[0] == 250
    end(proc, raw)
    assert mx.status_json() == []


def test_bare_lf_elsewhere_in_data_refused(mx):
    proc, raw = session(mx)
    raw.cmd("RCPT TO:<victim@example.test>")
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: x\r\n\r\nline with bare lf\nmore\r\n.\r\n")
    code, text = raw.reply()
    assert code == 550 and "bare" in text
    assert raw.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    raw.cmd("RCPT TO:<victim@example.test>")
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: x\r\n\r\nnul \x00 byte\r\n.\r\n")
    code, text = raw.reply()
    assert code == 550 and "NUL" in text
    log = end(proc, raw)
    assert "reject: END-OF-MESSAGE from unknown[local]: 550 5.5.2" in log
    assert mx.status_json() == []


def test_dot_crlf_inside_line_does_not_end(mx):
    """Only <CRLF>.<CRLF> ends DATA: a "." after text on the same line,
    or a ".." line, is content."""
    proc, raw = session(mx)
    raw.cmd("RCPT TO:<r@example.test>")
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: x\r\n\r\ntext.\r\n..\r\n. \r\n.\r\n")
    assert raw.reply()[0] == 250
    end(proc, raw)
    m = mx.status_json()[0]
    data = mx.run("status", "-b", m["id"], check=True).stdout
    # RFC 5321 4.5.2: a leading dot is removed from every other line.
    assert data.endswith(b"\r\n\r\ntext.\r\n.\r\n \r\n")


def test_postmaster_accepted_without_recipients_entry(mx):
    """RFC 5321 4.5.1: postmaster at a domain we serve MUST be accepted,
    even when the recipients file does not list it; other unlisted users
    are still refused."""
    rfile = mx.dir + "/recipients"
    with open(rfile, "w") as f:
        f.write("alice@example.test\n")
    mx.config("recipients %s" % rfile)
    proc, raw = session(mx)
    assert raw.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<PostMaster@Example.Test>")[0] == 250
    assert raw.cmd("RCPT TO:<postmaster@elsewhere.test>")[0] == 550
    assert raw.cmd("RCPT TO:<postmaster2@example.test>")[0] == 550
    end(proc, raw)
