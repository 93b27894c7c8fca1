"""The administrator's terminal is safe: whatever senders, recipients,
header lines and remote servers put into a message, `status` (listing,
-s, status ID) prints no C0 or C1 control, no DEL, no bidi embedding,
override or isolate and no invalid UTF-8; it shows them escaped (\\x1b,
\\u202e) and valid UTF-8 as it is.  -j is valid JSON (RFC 8259) that
decodes to the stored text; -b stays the raw bytes."""
import json
import re

from conftest import receive_stdio
from test_flush import setup_domain

ESC_OSC = b"\x1b]0;pwned\x07"                 # sets the window title
CSI_C1 = "\u009b31m".encode()                 # 8-bit CSI as UTF-8
RLO = "\u202e".encode()                       # right-to-left override
LRI = "\u2066".encode()                       # left-to-right isolate
BIDI = [chr(c).encode() for c in
        list(range(0x202a, 0x202f)) + list(range(0x2066, 0x206a))]
C1 = [chr(c).encode() for c in range(0x80, 0xa0)]


def assert_terminal_safe(out):
    """No byte that drives a terminal, and valid UTF-8 throughout."""
    bad = [b for b in out if (b < 0x20 and b != 0x0a) or b == 0x7f]
    assert not bad, (bad, out)
    text = out.decode("utf-8")          # raises on invalid UTF-8
    for seq in C1 + BIDI:
        assert seq.decode() not in text, (seq, out)


def status(mx, *args):
    return mx.run("status", *args, check=True).stdout


def test_injected_sender_recipient_and_headers(mx):
    sender = b"a" + RLO + b"b" + CSI_C1 + b"@sender.test"
    rcpt = "r\u2067x\u00e9@example.test"
    msg = (b"Subject: hi " + ESC_OSC + b" " + RLO + b"gnp.exe " + CSI_C1 +
           b" \xff\xfe caf\xc3\xa9\ttab back\\slash\x7f\n"
           b"X-Folded: one\n\ttwo " + LRI + b"\n\nbody \x1b[2J\n")
    p = mx.run("inject", "-f", sender, rcpt, input=msg)
    assert p.returncode == 0, p.stderr
    qid = p.stdout.decode().strip()

    listing = status(mx)
    assert_terminal_safe(listing)
    assert b"<a\\u202eb\\u009b31m@sender.test>" in listing
    assert "r\\u2067x\u00e9@example.test  queued".encode() in listing

    one = status(mx, qid)
    assert_terminal_safe(one)
    assert b"sender: <a\\u202eb\\u009b31m@sender.test>" in one
    assert "recipient: <r\\u2067x\u00e9@example.test>".encode() in one
    assert ("Subject: hi \\x1b]0;pwned\\x07 \\u202egnp.exe \\u009b31m "
            "\\xff\\xfe caf\u00e9\\ttab back\\\\slash\\x7f\n").encode() in one
    assert b"X-Folded: one\n\\ttwo \\u2066\n" in one
    assert b"[2J" not in one                    # headers only

    # JSON: the same text back, byte for byte, where it is UTF-8.
    for out in (status(mx, "-j"), status(mx, "-j", qid)):
        assert_terminal_safe(out)
        (o,) = [json.loads(l) for l in out.decode().splitlines()]
        assert o["sender"] == sender.decode()
        assert o["recipients"][0]["addr"] == rcpt
        assert b"\\u202e" in out and b"\\u009b" in out and b"\\u2067" in out

    # -b is the raw message, explicitly.
    raw = status(mx, "-b", qid)
    assert ESC_OSC in raw and RLO in raw and b"\x1b[2J" in raw


def test_summary_domains(mx):
    """inject takes any recipient domain, UTF-8 included."""
    for dom in (b"ex" + RLO + b"ample.org", b"ex" + CSI_C1[:2] + b"ample.org"):
        p = mx.run("inject", "-f", "a@b.test", b"u@" + dom,
                   input=b"Subject: x\n\nx\n")
        assert p.returncode == 0, p.stderr
    text = status(mx, "-s")
    assert_terminal_safe(text)
    rows = text.decode().splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["ex\\u009bample.org",
                                             "ex\\u202eample.org"]
    # The columns still line up: escapes count as what they print.
    assert len({r.index(" 1 ") for r in rows}) == 1
    out = status(mx, "-s", "-j")
    assert_terminal_safe(out)
    assert sorted(json.loads(l)["domain"] for l in out.decode().splitlines()) \
        == ["ex\u009bample.org", "ex\u202eample.org"]


def test_smtp_session_fields(mx):
    """What an SMTP client sends: SMTPUTF8 paths with bidi and C1 code
    points, an ESC-laden HELO name cannot get in (refused), headers."""
    proc, raw = receive_stdio(mx, env={"TCPREMOTEIP": "192.0.2.7"})
    assert raw.cmd("EHLO client.test")[0] == 250
    raw.send("MAIL FROM:<s\u202eX\u0085@sender.test> SMTPUTF8\r\n".encode())
    assert raw.reply()[0] == 250
    raw.send("RCPT TO:<r\u2068@example.test>\r\n".encode())
    assert raw.reply()[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: \x1b[31mred\x1b[0m " + RLO + b"\r\n\r\nx\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    proc.wait(10)
    [m] = mx.status_json()
    assert m["sender"] == "s\u202eX\u0085@sender.test"
    for out in (status(mx), status(mx, m["id"]), status(mx, "-j")):
        assert_terminal_safe(out)
    one = status(mx, m["id"])
    assert b"sender: <s\\u202eX\\u0085@sender.test>" in one
    assert b"recipient: <r\\u2068@example.test>" in one
    assert b"Subject: \\x1b[31mred\\x1b[0m \\u202e\n" in one


def test_remote_error_text(mx, dns, primary_factory):
    """A primary's 4xx text with ESC, BEL, bidi, C1 and invalid UTF-8:
    the SMTP client already stores ASCII controls as spaces; the rest is
    kept as the last error and shown escaped (listing, status ID), and as
    valid JSON with U+FFFD for the byte that is not UTF-8."""
    ctl, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["u@example.test"] = (
        b"451 4.3.0 \x1b[2J\x1b]0;owned\x07 try " + RLO + b"later" +
        CSI_C1 + b" \xff \\ end")
    setup_domain(mx, dns, ctl.port)
    qid = mx.inject("a@sender.test", ["u@example.test"],
                    b"Subject: x\n\nx\n")
    p = mx.run("flush", check=True)
    assert p.stdout == b"delivered 0, deferred 1, failed 0\n"
    listing = status(mx)
    assert_terminal_safe(listing)
    want = b" try \\u202elater\\u009b31m \\xff \\\\ end"
    assert want in listing
    one = status(mx, qid)
    assert_terminal_safe(one)
    assert re.search(rb"  last error: .*" + re.escape(want), one)
    out = status(mx, "-j")
    assert_terminal_safe(out)
    (o,) = [json.loads(l) for l in out.decode().splitlines()]
    assert o["recipients"][0]["last_error"].endswith(
        " try \u202elater\u009b31m \ufffd \\ end")
