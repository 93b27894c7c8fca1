"""`mxfb flush` against primaries that misbehave or lack extensions: a raw
socket SMTP server (threads) on 127.0.0.x that can offer or withhold
PIPELINING, DSN, SMTPUTF8 and SIZE, drop the connection after DATA, or
never say a word.  Mail with DSN and SMTPUTF8 parameters comes in through
`mxfb receive -l` with smtplib, so the parameters are the client's own.
"""
import smtplib
import socket
import threading
import time

import pytest

from test_flush import FAST, RCPT_LINE, by_id, flush, message, setup_domain


class RawPrimary:
    """A minimal SMTP server.  mode: "normal", "drop_after_data" (closes
    without replying to the final dot), "silent" (accepts, sends
    nothing), "tempfail_data" (451 after the dot)."""

    def __init__(self, host="127.0.0.2", port=0,
                 ehlo=("PIPELINING", "DSN", "SMTPUTF8", "8BITMIME",
                       "ENHANCEDSTATUSCODES", "SIZE 10000000"),
                 mode="normal"):
        self.ehlo = None if ehlo is None else list(ehlo)
        self.mode = mode
        self.commands = []
        self.messages = []
        self.sessions = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.running = False
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            with self.lock:
                self.sessions += 1
            if self.mode != "silent":
                threading.Thread(target=self._session, args=(c,),
                                 daemon=True).start()

    def _session(self, c):
        f = c.makefile("rb")

        def say(s):
            c.sendall(s.encode() + b"\r\n")
        try:
            say("220 raw.test ESMTP")
            env = None
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                with self.lock:
                    self.commands.append(cmd)
                verb = cmd[:4].upper()
                if verb == "EHLO" and self.ehlo is None:
                    say("502 5.5.1 EHLO not implemented")
                elif verb == "EHLO":
                    lines = ["raw.test"] + self.ehlo
                    for l in lines[:-1]:
                        say("250-" + l)
                    say("250 " + lines[-1])
                elif verb == "HELO":
                    say("250 raw.test")
                elif verb == "MAIL":
                    env = {"mail": cmd, "rcpts": [], "data": b""}
                    say("250 2.1.0 ok")
                elif verb == "RCPT":
                    env["rcpts"].append(cmd)
                    say("250 2.1.5 ok")
                elif verb == "DATA":
                    say("354 go ahead")
                    data = []
                    while True:
                        l = f.readline()
                        if not l or l == b".\r\n":
                            break
                        data.append(l[1:] if l.startswith(b".") else l)
                    env["data"] = b"".join(data)
                    if self.mode == "drop_after_data":
                        c.shutdown(socket.SHUT_RDWR)
                        c.close()
                        with self.lock:
                            self.messages.append(dict(env, acked=False))
                        return
                    if self.mode == "tempfail_data":
                        say("451 4.3.0 disk full, try later")
                        continue
                    with self.lock:
                        self.messages.append(dict(env, acked=True))
                    say("250 2.0.0 queued")
                elif verb == "RSET":
                    say("250 2.0.0 ok")
                elif verb == "QUIT":
                    say("221 2.0.0 bye")
                    return
                else:
                    say("502 5.5.1 unknown")
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def raw_factory():
    made = []

    def make(*a, **k):
        p = RawPrimary(*a, **k)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def send_via_receive(mx, port, sender, rcpts, data, mail_options=(),
                     rcpt_options=()):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        s.sendmail(sender, rcpts, data, mail_options=list(mail_options),
                   rcpt_options=list(rcpt_options))


def test_pipelining_and_dsn_passed_on(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2")
    setup_domain(mx, dns, raw.port)
    _, port = mx.listen()
    send_via_receive(mx, port, "s@sender.test", ["a@example.test"],
                     message("dsn"), mail_options=["RET=HDRS",
                     "ENVID=abc+2Bdef"], rcpt_options=[
                     "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@example.test"])
    counts, lines = flush(mx)
    assert counts == (1, 0, 0)
    m = raw.messages[0]
    assert "RET=HDRS" in m["mail"] and "ENVID=abc+2Bdef" in m["mail"]
    assert "SIZE=" in m["mail"]
    assert m["rcpts"] == ["RCPT TO:<a@example.test> NOTIFY=SUCCESS,FAILURE "
                          "ORCPT=rfc822;a@example.test"]


def test_no_dsn_no_pipelining_params_dropped(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2", ehlo=("8BITMIME",))
    setup_domain(mx, dns, raw.port)
    _, port = mx.listen()
    send_via_receive(mx, port, "s@sender.test", ["a@example.test",
                     "b@example.test"], message("nodsn"),
                     mail_options=["RET=FULL", "ENVID=x1", "BODY=8BITMIME"],
                     rcpt_options=["NOTIFY=NEVER"])
    counts, _ = flush(mx)
    assert counts == (2, 0, 0)
    m = raw.messages[0]
    assert m["mail"] == "MAIL FROM:<s@sender.test> BODY=8BITMIME"
    assert m["rcpts"] == ["RCPT TO:<a@example.test>",
                          "RCPT TO:<b@example.test>"]


def test_helo_only_primary(mx, dns, raw_factory):
    # EHLO refused (502): the client falls back to HELO, no extensions.
    raw = raw_factory("127.0.0.2", ehlo=None)
    setup_domain(mx, dns, raw.port)
    mx.inject("s@sender.test", ["a@example.test"], message())
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)
    assert [c[:4] for c in raw.commands[:3]] == ["EHLO", "HELO", "MAIL"]
    assert raw.commands[2] == "MAIL FROM:<s@sender.test>"


def test_smtputf8_needed_not_offered(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2", ehlo=("PIPELINING", "8BITMIME"))
    setup_domain(mx, dns, raw.port)
    _, port = mx.listen()
    data = ("From: j\u00f6rg@sender.test\r\nSubject: utf8\r\n\r\nhi\r\n"
            ).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        s.sendmail("j\u00f6rg@sender.test", ["a@example.test"], data,
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    counts, lines = flush(mx)
    assert counts == (0, 0, 1)
    assert lines[0]["dsn"] == "5.6.7"
    assert raw.messages == []
    assert not any(c.startswith("MAIL") for c in raw.commands)
    # Offered: passed on with the parameter.  The primary record still
    # holds the EHLO flush saw (no SMTPUTF8: receive would answer 553,
    # issue 14 point 7) until probe sees the new one.
    raw.ehlo = ["PIPELINING", "8BITMIME", "SMTPUTF8"]
    mx.run("probe", "-q", "example.test", check=True)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        s.sendmail("j\u00f6rg@sender.test", ["b@example.test"], data,
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)
    assert "SMTPUTF8" in raw.messages[0]["mail"]


def test_8bit_content_needs_8bitmime(mx, dns, raw_factory):
    """RFC 5321 2.4, RFC 6152: no 8-bit data to a primary that does not
    offer 8BITMIME, and mxfb never converts the body: returned with
    5.6.3.  Declared 8BITMIME but all 7-bit: passed on, without BODY."""
    raw = raw_factory("127.0.0.2", ehlo=("PIPELINING", "ENHANCEDSTATUSCODES"))
    setup_domain(mx, dns, raw.port)
    _, port = mx.listen()
    eight = "Subject: 8bit\r\n\r\nGr\u00fc\u00dfe\r\n".encode()
    seven = b"Subject: 7bit\r\n\r\nHello\r\n"

    def send_and_flush(rcpt, data):
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.ehlo("client.test")
            s.sendmail("s@sender.test", [rcpt], data,
                       mail_options=["BODY=8BITMIME"])
        return flush(mx)

    counts, lines = send_and_flush("a@example.test", eight)
    assert counts == (0, 0, 1)
    assert lines[0]["dsn"] == "5.6.3"
    assert "does not offer 8BITMIME" in lines[0]["why"]
    assert raw.messages == []
    assert not any(c.startswith("MAIL") for c in raw.commands)
    assert send_and_flush("b@example.test", seven)[0] == (1, 0, 0)
    assert "BODY" not in raw.messages[0]["mail"].upper()
    # Offered: the 8-bit message goes, declared.
    raw.ehlo = ["PIPELINING", "8BITMIME"]
    assert send_and_flush("c@example.test", eight)[0] == (1, 0, 0)
    assert "BODY=8BITMIME" in raw.messages[1]["mail"].upper()
    assert "Gr\u00fc\u00dfe".encode() in raw.messages[1]["data"]


def test_size_limit_of_primary(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2", ehlo=("PIPELINING", "SIZE 200"))
    setup_domain(mx, dns, raw.port)
    big = mx.inject("s@sender.test", ["a@example.test"],
                    message("big", "x" * 500 + "\n"))
    counts, lines = flush(mx)
    assert counts == (0, 0, 1)
    assert lines[0]["dsn"] == "5.3.4"
    assert raw.messages == []
    assert by_id(mx)[big]["recipients"][0]["state"] == "failed"


def test_drop_after_data_defers_then_redelivers(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2", mode="drop_after_data")
    setup_domain(mx, dns, raw.port, "flush-concurrency 1")
    ids = [mx.inject("s@sender.test", ["a@example.test"], message("d%d" % i))
           for i in range(3)]
    counts, lines = flush(mx)
    # Every message gets the broken connection; none is lost.
    assert counts == (0, 3, 0)
    assert all(l["status"] == "deferred" for l in lines)
    assert "lost connection with mx1.example.test[127.0.0.2]" in lines[0]["why"]
    assert "while sending end of data" in lines[0]["why"]
    st = by_id(mx)
    assert set(st) == set(ids)
    assert all(m["recipients"][0]["state"] == "deferred" for m in st.values())
    raw.mode = "normal"
    counts, _ = flush(mx, "-f")
    assert counts == (3, 0, 0)
    assert mx.status_json() == []


def test_tempfail_at_end_of_data(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2", mode="tempfail_data")
    setup_domain(mx, dns, raw.port)
    qid = mx.inject("s@sender.test", ["a@example.test", "b@example.test"],
                    message())
    counts, lines = flush(mx)
    assert counts == (0, 2, 0)
    assert "in reply to end of DATA command" in lines[0]["why"]
    r = by_id(mx)[qid]["recipients"]
    assert r[0]["last_error"] == "451 4.3.0 disk full, try later"


def test_silent_primary_deferred_within_timeouts(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2", mode="silent")
    setup_domain(mx, dns, raw.port, "connect-timeout 1s",
                 "command-timeout 1s")
    mx.config("smtp-port %d" % raw.port, "connect-timeout 1s",
              "command-timeout 1s", "data-timeout 1s",
              "data-done-timeout 1s")
    for i in range(5):
        mx.inject("s@sender.test", ["a@example.test"], message("s%d" % i))
    t0 = time.time()
    counts, lines = flush(mx)
    took = time.time() - t0
    assert counts == (0, 5, 0)
    # One greeting timeout for the destination, not one per message.
    assert took < 8, took
    assert "timed out while receiving the initial server greeting" \
        in lines[0]["why"]


def test_second_mx_used_when_first_down(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.3")
    # mx1 on 127.0.0.2 has nothing listening on that port.
    setup_domain(mx, dns, raw.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx2.example.test", "127.0.0.3", 15)))
    mx.inject("s@sender.test", ["a@example.test"], message())
    counts, lines = flush(mx)
    assert counts == (1, 0, 0)
    assert lines[0]["relay"] == "mx2.example.test[127.0.0.3]:%d" % raw.port


def test_pipelined_many_messages_with_rset(mx, dns, raw_factory):
    raw = raw_factory("127.0.0.2")
    setup_domain(mx, dns, raw.port, "flush-concurrency 1")
    for i in range(5):
        mx.inject("s@sender.test", ["a@example.test"], message("p%d" % i))
    counts, _ = flush(mx)
    assert counts == (5, 0, 0)
    assert raw.sessions == 1
    verbs = [c.split(" ")[0].split(":")[0] for c in raw.commands]
    assert verbs.count("RSET") == 4
    assert verbs.count("QUIT") == 1


def test_received_bytes_delivered_unchanged(mx, dns, raw_factory):
    """What a sender handed to `receive` reaches the primary byte for
    byte, with only our Received header in front (dot-stuffing undone by
    the primary, 8-bit bytes and long lines intact)."""
    raw = raw_factory("127.0.0.2")
    setup_domain(mx, dns, raw.port)
    _, port = mx.listen()
    body = (b"From: a@sender.test\r\nTo: b@example.test\r\n"
            b"Subject: bytes\r\n\r\n.leading dot\r\n..two\r\n \r\n"
            b"\xc3\xa9t\xc3\xa9 8bit\r\n" + b"y" * 990 + b"\r\n"
            b"\ttab line \r\nlast\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        # Send the exact bytes: smtplib dot-stuffs, nothing else.
        s.sendmail("a@sender.test", ["b@example.test"], body,
                   mail_options=["BODY=8BITMIME"])
    counts, _ = flush(mx)
    assert counts == (1, 0, 0)
    got = raw.messages[0]["data"]
    assert got.startswith(b"Received: ")
    i = got.index(b"From: a@sender.test")
    assert got[i:] == body
    head = got[:i].decode()
    assert head.count("Received: ") == 1
    assert "by backup.example.test" in head
