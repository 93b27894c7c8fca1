"""`mxfb receive`: the SMTP server, driven by real clients (smtplib, swaks,
raw sockets) in inetd mode (a socketpair on fds 0/1), under inetd-style
launchers (tcpserver, socat) and with `-l`.  Every command and error path
of RFC 5321 + the ESMTP extensions we announce; what is stored is checked
through `mxfb status`.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import MXFB, RawSmtp, free_port, receive_stdio, smtplib_on, \
    wait_port

MSG = (b"From: a@sender.test\r\nTo: user@example.test\r\nSubject: hello\r\n"
       b"\r\nline one\r\n.leading dot\r\n\r\nlast line\r\n")


def raw_body(mx, qid):
    p = mx.run("status", "-b", qid, check=True)
    return p.stdout


def split_received(data):
    """Our Received header (first header, folded with TABs) and the rest."""
    assert data.startswith(b"Received: from "), data[:80]
    lines = data.split(b"\r\n")
    n = 1
    while lines[n].startswith(b"\t"):
        n += 1
    return b"\r\n".join(lines[:n]) + b"\r\n", b"\r\n".join(lines[n:])


def one_message(mx):
    msgs = mx.status_json()
    assert len(msgs) == 1, msgs
    return msgs[0]


def finish(proc, timeout=10):
    proc.wait(timeout)
    return proc.stderr.read().decode(errors="replace")


def test_inetd_mode_smtplib_transaction(mx):
    proc, raw = receive_stdio(mx, env={"TCPREMOTEIP": "192.0.2.7"})
    # smtplib on the same socket: the greeting was read by receive_stdio.
    s = smtplib.SMTP()
    s.sock = raw.sock
    code, _ = s.ehlo("client.test")
    assert code == 250
    assert s.has_extn("pipelining") and s.has_extn("8bitmime")
    assert s.has_extn("enhancedstatuscodes") and s.has_extn("smtputf8")
    assert s.has_extn("dsn") and s.has_extn("etrn")
    assert s.esmtp_features["size"] == str(50 * 1024 * 1024)
    s.sendmail("a@sender.test", ["user@example.test"], MSG)
    s.quit()
    log = finish(proc)
    m = one_message(mx)
    assert m["sender"] == "a@sender.test"
    assert [r["addr"] for r in m["recipients"]] == ["user@example.test"]
    assert m["recipients"][0]["state"] == "queued"
    hdr, rest = split_received(raw_body(mx, m["id"]))
    # The body is stored byte for byte (dot-unstuffed, CRLF).
    assert rest == MSG
    assert m["size"] == len(hdr) + len(MSG)
    assert re.match(rb"Received: from client\.test \(unknown \[192\.0\.2\.7\]\)"
                    rb"\r\n\tby backup\.example\.test \(mxfb\) with ESMTP id "
                    + m["id"].encode() + rb"\r\n\tfor <user@example\.test>;"
                    rb"\r\n\t\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}"
                    rb"\r\n$", hdr), hdr
    assert "connect from unknown[192.0.2.7]" in log
    assert ("%s: client=unknown[192.0.2.7], from=<a@sender.test>, size=%d, "
            "nrcpt=1" % (m["id"], m["size"])) in log
    assert re.search(r"disconnect from unknown\[192\.0\.2\.7\] ehlo=1 mail=1 "
                     r"rcpt=1 data=1 quit=1 commands=5", log), log


def test_inetd_mode_without_peer_is_local(mx):
    proc, raw = receive_stdio(mx)
    assert raw.cmd("HELO c.test")[0] == 250
    assert raw.cmd("MAIL FROM:<>")[0] == 250
    assert raw.cmd("RCPT TO:<a@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send("x\r\n.\r\n")
    assert raw.reply()[0] == 250
    assert raw.cmd("QUIT")[0] == 221
    finish(proc)
    m = one_message(mx)
    assert m["sender"] == ""
    hdr, _ = split_received(raw_body(mx, m["id"]))
    # HELO: "with SMTP"; two recipients: no "for".
    assert hdr.startswith(b"Received: from c.test (local)\r\n")
    assert b" with SMTP id " in hdr and b"for <" not in hdr


def test_listen_mode_smtplib_and_swaks(mx):
    proc, port = mx.listen()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test") as s:
        s.sendmail("a@sender.test", ["one@example.test"], MSG)
    if shutil.which("swaks"):
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                            str(port), "--from", "b@sender.test", "--to",
                            "two@example.test", "--helo", "swaks.test",
                            "--body", "via swaks"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        assert p.returncode == 0, p.stdout.decode()
        assert b"250 2.0.0 Ok: queued as" in p.stdout
    msgs = mx.status_json()
    addrs = sorted(r["addr"] for m in msgs for r in m["recipients"])
    expected = ["one@example.test"]
    if shutil.which("swaks"):
        expected.append("two@example.test")
    assert addrs == expected
    for m in msgs:
        hdr, _ = split_received(raw_body(mx, m["id"]))
        assert b"(unknown [127.0.0.1])" in hdr


def test_listen_ipv6(mx):
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = free_port()
    p = subprocess.Popen([MXFB, "receive", "-l", "[::1]:%d" % port],
                         env=mx.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    mx.procs.append(p)
    deadline = time.time() + 10
    while True:
        try:
            c = socket.create_connection(("::1", port), timeout=2)
            break
        except OSError:
            assert time.time() < deadline, "no IPv6 listener"
            time.sleep(0.05)
    raw = RawSmtp(c)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO v6.test")[0] == 250
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert raw.cmd("RCPT TO:<v6@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send("Subject: v6\r\n\r\nx\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    m = one_message(mx)
    hdr, _ = split_received(raw_body(mx, m["id"]))
    assert b"(unknown [IPv6:::1])" in hdr


@pytest.mark.parametrize("launcher", ["tcpserver", "socat"])
def test_inetd_style_launchers(mx, launcher):
    if not shutil.which(launcher):
        pytest.skip("%s not installed" % launcher)
    port = free_port()
    if launcher == "tcpserver":
        cmd = ["tcpserver", "-R", "-H", "127.0.0.1", str(port), MXFB,
               "receive"]
    else:
        cmd = ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % port,
               "EXEC:%s receive" % MXFB]
    p = subprocess.Popen(cmd, env=mx.env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    mx.procs.append(p)
    wait_port("127.0.0.1", port)
    with smtplib.SMTP("127.0.0.1", port, local_hostname="l.test") as s:
        s.sendmail("a@sender.test", ["%s@example.test" % launcher], MSG)
    m = one_message(mx)
    assert m["recipients"][0]["addr"] == "%s@example.test" % launcher
    hdr, rest = split_received(raw_body(mx, m["id"]))
    assert rest == MSG
    # tcpserver: getpeername(0) or $TCPREMOTEIP; socat EXEC gives a
    # socketpair, and $SOCAT_PEERADDR names the client.
    assert b"(unknown [127.0.0.1])" in hdr


def test_every_command(mx):
    proc, raw = receive_stdio(mx)
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 503     # before EHLO
    assert raw.cmd("EHLO")[0] == 501
    code, text = raw.cmd("EHLO client.test")
    assert code == 250 and text.splitlines()[0] == "250-backup.example.test"
    assert raw.cmd("NOOP") == (250, "250 2.0.0 Ok")
    assert raw.cmd("HELP")[0] == 214
    assert raw.cmd("VRFY someone")[0] == 252
    assert raw.cmd("VRFY")[0] == 501
    assert raw.cmd("EXPN list")[0] == 502
    assert raw.cmd("STARTTLS")[0] == 502
    assert raw.cmd("AUTH PLAIN AAAA")[0] == 503
    assert raw.cmd("BDAT 10 LAST")[0] == 502
    assert raw.cmd("XYZZY")[0] == 500
    assert raw.cmd("RCPT TO:<a@example.test>")[0] == 503  # before MAIL
    assert raw.cmd("DATA")[0] == 503
    assert raw.cmd("mail from:<a@b.test>")[0] == 250       # any case
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 503       # nested
    assert raw.cmd("DATA")[0] == 554                       # no recipients
    assert raw.cmd("RSET")[0] == 250
    assert raw.cmd("QUIT")[0] == 221
    finish(proc)
    # A second session: fewer than 10 errors each, so no slow-down.
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO client.test")
    assert raw.cmd("RCPT TO:<a@example.test>")[0] == 503
    assert raw.cmd("MAIL FROM:a@b.test")[0] == 501
    assert raw.cmd("MAIL FROM <a@b.test>")[0] == 501
    assert raw.cmd("MAIL FROM:<a@b.test> SIZE=99999999999")[0] == 552
    assert raw.cmd("MAIL FROM:<a@b.test> BODY=BINARYMIME")[0] == 555
    assert raw.cmd("MAIL FROM:<a@b.test> XFOO=1")[0] == 555
    assert raw.cmd("MAIL FROM:<j\u00f6@b.test>")[0] == 553
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert raw.cmd("QUIT")[0] == 221
    log = finish(proc)
    assert "reject: MAIL from unknown[local]: 552 5.3.4" in log
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO client.test")
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert raw.cmd("RCPT TO:a@example.test")[0] == 501
    assert raw.cmd("RCPT TO:<>")[0] == 501
    assert raw.cmd("RCPT TO:<a@example.test> NOTIFY=NEVER,DELAY")[0] == 501
    assert raw.cmd("RCPT TO:<a@example.test> ORCPT=rfc822")[0] == 501
    assert raw.cmd("DATA extra")[0] == 501
    assert raw.cmd("RSET")[0] == 250
    assert raw.cmd("HELO again.test")[0] == 250
    assert raw.cmd("QUIT") == (221, "221 2.0.0 Bye")
    assert raw.read_to_eof() == b""
    finish(proc)
    assert mx.status_json() == []


def test_pipelined_transactions_in_one_write(mx):
    proc, port = mx.listen()
    raw = RawSmtp(socket.create_connection(("127.0.0.1", port)))
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO pipe.test")[0] == 250
    raw.send("MAIL FROM:<p@sender.test>\r\n"
             "RCPT TO:<one@example.test>\r\n"
             "RCPT TO:<bad@elsewhere.test>\r\n"
             "RCPT TO:<two@example.test>\r\n"
             "DATA\r\n")
    codes = [raw.reply()[0] for _ in range(5)]
    assert codes == [250, 250, 550, 250, 354]
    # The message, the next whole transaction and QUIT in one write.
    raw.send("Subject: first\r\n\r\nbody 1\r\n.\r\n"
             "RSET\r\nMAIL FROM:<q@sender.test>\r\n"
             "RCPT TO:<three@example.test>\r\nDATA\r\n")
    codes = [raw.reply()[0] for _ in range(5)]
    assert codes == [250, 250, 250, 250, 354]
    raw.send("Subject: second\r\n\r\nbody 2\r\n.\r\nQUIT\r\n")
    assert raw.reply()[0] == 250
    assert raw.reply()[0] == 221
    msgs = mx.status_json()
    got = sorted((m["sender"], tuple(r["addr"] for r in m["recipients"]))
                 for m in msgs)
    assert got == [("p@sender.test", ("one@example.test", "two@example.test")),
                   ("q@sender.test", ("three@example.test",))]


def test_smtplib_pipelining_client_many_messages(mx):
    proc, port = mx.listen()
    with smtplib.SMTP("127.0.0.1", port) as s:
        for i in range(20):
            s.sendmail("s%d@sender.test" % i, ["r%d@example.test" % i],
                       b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
    assert len(mx.status_json()) == 20


def test_twenty_megabyte_message(mx):
    proc, port = mx.listen()
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (20 * 1024 * 1024 // len(line))
    assert len(body) >= 20 * 1000 * 1000
    start = time.time()
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.sendmail("big@sender.test", ["big@example.test"], body)
    assert time.time() - start < 60
    m = one_message(mx)
    hdr, rest = split_received(raw_body(mx, m["id"]))
    assert rest == body
    assert m["size"] == len(hdr) + len(body)


def test_size_limit_at_end_of_data(mx):
    mx.config("max-size 10K")
    proc, raw = receive_stdio(mx)
    code, text = raw.cmd("EHLO c.test")
    assert "250-SIZE 10240" in text
    assert raw.cmd("MAIL FROM:<a@b.test> SIZE=10241")[0] == 552
    assert raw.cmd("MAIL FROM:<a@b.test> SIZE=10240")[0] == 250
    assert raw.cmd("RCPT TO:<r@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: big\r\n\r\n" + (b"y" * 100 + b"\r\n") * 200 +
             b".\r\n")
    code, text = raw.reply()
    assert code == 552 and "5.3.4" in text
    # The session goes on: a small message is accepted.
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert raw.cmd("RCPT TO:<r@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send("small\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    finish(proc)
    m = one_message(mx)
    assert split_received(raw_body(mx, m["id"]))[1] == b"small\r\n"


def test_max_recipients(mx):
    # 100 is the least allowed (RFC 5321 4.5.3.1.8).
    mx.config("max-recipients 100")
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    raw.cmd("MAIL FROM:<a@b.test>")
    codes = [raw.cmd("RCPT TO:<r%d@example.test>" % i)[0] for i in range(102)]
    assert codes == [250] * 100 + [452, 452]
    assert raw.cmd("DATA")[0] == 354
    raw.send("x\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    finish(proc)
    assert len(one_message(mx)["recipients"]) == 100


def test_command_line_limits(mx):
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    # 512 octets with CRLF is fine, 513 is not.
    ok = "NOOP " + "a" * (512 - 7)
    assert raw.cmd(ok)[0] == 250
    code, text = raw.cmd(ok + "a")
    assert code == 500 and "too long" in text
    # A very long line is discarded whole, then the session continues.
    code, text = raw.cmd("MAIL FROM:<" + "a" * 5000 + "@b.test>")
    assert code == 500
    raw.send(b"NOOP\n")
    code, text = raw.reply()
    assert code == 500 and "bare <LF>" in text
    raw.send(b"NO\rOP\r\n")
    assert raw.reply()[0] == 500
    raw.send(b"NO\x00OP\r\n")
    assert raw.reply()[0] == 500
    assert raw.cmd("NOOP")[0] == 250
    raw.cmd("QUIT")
    finish(proc)


def test_idle_timeout(mx):
    mx.config("timeout 1s")
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    start = time.time()
    code, text = raw.reply()
    assert code == 421 and "4.4.2" in text
    assert time.time() - start < 10
    assert raw.read_to_eof() == b""
    assert "timeout after EHLO from unknown[local]" in finish(proc)


def test_timeout_in_data_stores_nothing(mx):
    mx.config("timeout 1s")
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    raw.cmd("MAIL FROM:<a@b.test>")
    raw.cmd("RCPT TO:<r@example.test>")
    assert raw.cmd("DATA")[0] == 354
    raw.send("Subject: half\r\n\r\nhalf a message")
    code, text = raw.reply()
    assert code == 421
    finish(proc)
    assert mx.status_json() == []


def test_error_limits(mx):
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    start = time.time()
    codes = [raw.cmd("BOGUS %d" % i)[0] for i in range(19)]
    assert codes == [500] * 19
    # Errors 11..19 were each delayed by a second (Postfix's soft limit).
    assert time.time() - start >= 8
    raw.send("BOGUS 20\r\n")
    assert raw.reply()[0] == 500
    code, text = raw.reply()
    assert code == 421 and "4.7.0" in text
    assert raw.read_to_eof() == b""
    assert "too many errors after UNKNOWN" in finish(proc)


def test_error_limits_configured(mx):
    """soft-error-limit, hard-error-limit and error-sleep replace the
    defaults of 10, 20 and 1s."""
    mx.config("soft-error-limit 1", "hard-error-limit 3", "error-sleep 2s")
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    start = time.time()
    assert raw.cmd("BOGUS 1")[0] == 500
    assert time.time() - start < 1.5
    assert raw.cmd("BOGUS 2")[0] == 500
    # The second and third errors are beyond the soft limit: 2s each.
    assert time.time() - start >= 2
    raw.send("BOGUS 3\r\n")
    assert raw.reply()[0] == 500
    assert time.time() - start >= 4
    code, text = raw.reply()
    assert code == 421 and "4.7.0" in text
    assert raw.read_to_eof() == b""
    assert "too many errors after UNKNOWN" in finish(proc)

    # error-sleep 0: no pacing, whatever soft-error-limit says.
    mx.config("soft-error-limit 0", "error-sleep 0")
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    start = time.time()
    codes = [raw.cmd("BOGUS %d" % i)[0] for i in range(19)]
    assert codes == [500] * 19
    assert time.time() - start < 5
    raw.cmd("QUIT")
    finish(proc)


def test_too_many_received_headers(mx):
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    for hops, expect in ((100, 250), (101, 554)):
        raw.cmd("MAIL FROM:<a@b.test>")
        raw.cmd("RCPT TO:<r@example.test>")
        assert raw.cmd("DATA")[0] == 354
        raw.send(b"Received: from x by y; date\r\n" * hops +
                 b"Subject: loop\r\n\r\nbody\r\n.\r\n")
        code, text = raw.reply()
        assert code == expect, text
        if expect == 554:
            assert "5.4.6" in text
    raw.cmd("QUIT")
    finish(proc)
    assert len(mx.status_json()) == 1


def test_dsn_8bitmime_smtputf8_parameters_stored(mx):
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    assert raw.cmd("MAIL FROM:<s\u00e9nder@b.test> BODY=8BITMIME SMTPUTF8 "
                   "RET=HDRS ENVID=env+2Bid")[0] == 250
    assert raw.cmd("RCPT TO:<r\u00e9@example.test> NOTIFY=SUCCESS,FAILURE "
                   "ORCPT=rfc822;r+40example.test")[0] == 250
    assert raw.cmd("RCPT TO:<n@example.test> NOTIFY=NEVER")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send("Subject: caf\u00e9\r\n\r\n8bit b\u00f6dy\r\n.\r\n".encode())
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    finish(proc)
    m = one_message(mx)
    assert m["sender"] == "s\u00e9nder@b.test"
    assert [r["addr"] for r in m["recipients"]] == ["r\u00e9@example.test",
                                                    "n@example.test"]
    text = mx.run("status", m["id"], check=True).stdout.decode()
    assert "envid: env+2Bid" in text
    assert "ret: hdrs" in text
    assert "8bitmime" in text
    assert "smtputf8" in text
    assert "orcpt: rfc822;r+40example.test" in text
    # (status escapes the UTF-8 of the first address with vis(3).)
    assert re.search(r"@example.test> .*notify=success,failure", text)
    assert re.search(r"<n@example.test> .*notify=never", text)
    hdr, rest = split_received(raw_body(mx, m["id"]))
    assert rest == "Subject: caf\u00e9\r\n\r\n8bit b\u00f6dy\r\n".encode()
    assert b"with UTF8SMTP id" in hdr


def test_body_bytes_untouched(mx):
    proc, port = mx.listen()
    body = (b"Subject: odd\r\n\r\n" + b"z" * 5000 + b"\r\n"
            b"trailing spaces   \r\n\ttab\r\n\xff\xfe raw 8-bit\r\n"
            b"..two dots\r\n.\r\n"[:-3] + b". single dot line\r\n")
    raw = RawSmtp(socket.create_connection(("127.0.0.1", port)))
    raw.reply()
    raw.cmd("EHLO c.test")
    raw.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME")
    raw.cmd("RCPT TO:<r@example.test>")
    assert raw.cmd("DATA")[0] == 354
    stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l
                           for l in body.split(b"\r\n"))
    raw.send(stuffed + b".\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    m = one_message(mx)
    assert split_received(raw_body(mx, m["id"]))[1] == body


def connect_greeted(port, timeout=10):
    """A session that got its 220; retries while 421 says the earlier
    sessions (mx.listen's probe connection too) are not yet reaped."""
    deadline = time.time() + timeout
    while True:
        r = RawSmtp(socket.create_connection(("127.0.0.1", port)))
        code, text = r.reply()
        if code == 220:
            return r
        assert code == 421 and "too many connections" in text, text
        r.close()
        assert time.time() < deadline, "no session slot became free"
        time.sleep(0.05)


def test_listen_session_limit_and_sigterm(mx):
    proc, port = mx.listen(extra_args=("-c", "2"))
    held = [connect_greeted(port), connect_greeted(port)]
    extra = RawSmtp(socket.create_connection(("127.0.0.1", port)))
    code, text = extra.reply()
    assert code == 421 and "too many connections" in text
    assert extra.read_to_eof() == b""
    # A finished session frees its slot (the child is reaped).
    held.pop().cmd("QUIT")
    r = connect_greeted(port)
    r.cmd("QUIT")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    # The session that was running when the listener stopped goes on.
    assert held[0].cmd("NOOP")[0] == 250
    held[0].cmd("QUIT")


def test_listen_bad_address(mx):
    p = mx.run("receive", "-l", "nonsense")
    assert p.returncode == 64 or p.returncode == 69
    assert b"mxfb: receive:" in p.stderr
    p = mx.run("receive", "-c", "0", "-l", "127.0.0.1:1")
    assert p.returncode == 64
    p = mx.run("receive", "-h")
    assert p.returncode == 0 and b"usage:" in p.stdout


def test_no_dns_lookups_and_helo_syntax(mx, dns):
    """Nothing in receive asks the DNS (start-up stays cheap, and a dead
    resolver cannot stall a session), and HELO text that could not go
    into a Received header is refused."""
    dns.silent.add("example.test")
    proc, raw = receive_stdio(mx, env={"TCPREMOTEIP": "192.0.2.44"})
    assert raw.cmd("EHLO bad\u00e9name")[0] == 501
    assert raw.cmd("HELO two words")[0] == 501
    assert raw.cmd("EHLO [192.0.2.44]")[0] == 250
    raw.cmd("MAIL FROM:<a@sender.test>")
    assert raw.cmd("RCPT TO:<r@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send("x\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    finish(proc)
    assert dns.queries == []
    m = one_message(mx)
    hdr, _ = split_received(raw_body(mx, m["id"]))
    assert hdr.startswith(b"Received: from [192.0.2.44] (unknown "
                          b"[192.0.2.44])\r\n")


def test_client_that_never_reads_replies(mx):
    """A client that pipelines without reading cannot pin a session: a
    reply that cannot be written within `timeout` ends it."""
    mx.config("timeout 1s")
    proc, raw = receive_stdio(mx)
    raw.sock.setblocking(False)
    chunk = b"NOOP\r\n" * 10000
    deadline = time.time() + 20
    while proc.poll() is None and time.time() < deadline:
        try:
            raw.sock.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
    assert proc.wait(20) is not None


def test_swaks_pipe_mode_with_pipelining(mx):
    """swaks talks to `mxfb receive` on its stdin/stdout (inetd mode) and
    uses PIPELINING for MAIL/RCPT/DATA."""
    if not shutil.which("swaks"):
        pytest.skip("swaks not installed")
    p = subprocess.run(["swaks", "--pipe", "%s receive" % MXFB, "--pipeline",
                        "--from", "sw@sender.test", "--to",
                        "a@example.test,b@example.test", "--helo",
                        "swaks.test", "--header", "Subject: piped"],
                       env=mx.env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert "250 2.0.0 Ok: queued as" in out
    m = one_message(mx)
    assert m["sender"] == "sw@sender.test"
    assert sorted(r["addr"] for r in m["recipients"]) == ["a@example.test",
                                                          "b@example.test"]
    assert b"Subject: piped\r\n" in raw_body(mx, m["id"])


def listener_children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def greeted_within(port, seconds):
    t0 = time.time()
    r = RawSmtp(socket.create_connection(("127.0.0.1", port), timeout=5))
    r.sock.settimeout(5)
    assert r.reply()[0] == 220
    assert time.time() - t0 < seconds
    return r


def test_listen_children_killed_while_idle(mx):
    """Idle children take the next connections themselves (the listener
    does not accept while one waits, and is woken when the last one
    turns busy); a child killed while idle must not count as waiting:
    clients are still greeted at once."""
    proc, port = mx.listen()
    held = [connect_greeted(port) for _ in range(2)]
    for r in held:
        assert r.cmd("EHLO c.test")[0] == 250
        r.cmd("QUIT")
        r.close()
    deadline = time.time() + 5
    while len(listener_children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    kids = listener_children(proc.pid)
    assert len(kids) >= 2, kids     # (mx.listen's probe may have made one)
    for k in kids[:-1]:
        os.kill(k, signal.SIGKILL)
    time.sleep(0.3)
    # The survivor takes this one; the next needs the listener awake.
    first = greeted_within(port, 2)
    second = greeted_within(port, 2)
    for r in (first, second):
        assert r.cmd("QUIT")[0] == 221
        r.close()
    time.sleep(0.2)
    for k in listener_children(proc.pid):
        os.kill(k, signal.SIGKILL)
    time.sleep(0.3)
    r = greeted_within(port, 2)
    assert r.cmd("QUIT")[0] == 221
    assert proc.poll() is None


def test_bare_postmaster_accepted(mx, tmp_path):
    """RFC 5321 4.5.1: RCPT TO:<Postmaster> (no domain, any case) MUST be
    accepted; it is postmaster@ the first relay domain, listed in the
    recipients file or not, with its parameters kept.  Other bare local
    parts stay refused."""
    rcpts = tmp_path / "rcpts"
    rcpts.write_text("known@example.test\n")
    lines = [l for l in mx.base_lines() if not l.startswith("relay-domain")]
    mx.config(*lines, "relay-domain Example.TEST.", "relay-domain other.test",
              "recipients %s" % rcpts, replace_base=True)
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    assert raw.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert raw.cmd("RCPT TO:<Postmaster>")[0] == 250
    assert raw.cmd("RCPT TO: <POSTMASTER> NOTIFY=NEVER")[0] == 250
    assert raw.cmd("RCPT TO:<webmaster>")[0] == 501
    assert raw.cmd("RCPT TO:<postmaster>x")[0] == 501
    assert raw.cmd("DATA")[0] == 354
    raw.send("Subject: hi\r\n\r\nbody\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.cmd("QUIT")
    finish(proc)
    m = one_message(mx)
    assert [r["addr"].lower() for r in m["recipients"]] == \
        ["postmaster@example.test"]
