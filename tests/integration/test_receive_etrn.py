"""ETRN (RFC 1985) in `mxfb receive`: only `etrn-allow` clients, only
relay domains, answered at once while `flush -f -d DOMAIN` runs detached
in the background, and the queued mail then reaches the primary.
"""
import asyncio
import os
import smtplib
import socket
import time

from aiosmtpd.controller import Controller

from conftest import Recorder, RawSmtp, free_port, receive_stdio


def etrn_session(mx, ip, env=None, args=()):
    e = {"TCPREMOTEIP": ip}
    e.update(env or {})
    proc, raw = receive_stdio(mx, env=e, args=args)
    assert raw.cmd("EHLO primary.example.test")[0] == 250
    return proc, raw


def test_etrn_refused_for_other_clients(mx):
    mx.config("etrn-allow 192.0.2.0/24")
    proc, raw = etrn_session(mx, "198.51.100.1")
    code, text = raw.cmd("ETRN example.test")
    assert code == 459 and "4.7.1" in text
    raw.cmd("QUIT")
    proc.wait(10)
    assert "reject: ETRN from unknown[198.51.100.1]: 459" in \
        proc.stderr.read().decode()


def test_etrn_refused_without_any_allow(mx):
    proc, raw = etrn_session(mx, "127.0.0.1")
    assert raw.cmd("ETRN example.test")[0] == 459
    raw.cmd("QUIT")


def test_etrn_unknown_domain_and_syntax(mx):
    mx.config("etrn-allow 192.0.2.0/24")
    proc, raw = etrn_session(mx, "192.0.2.5")
    code, text = raw.cmd("ETRN elsewhere.test")
    assert code == 458
    assert raw.cmd("ETRN #queue")[0] == 458
    assert raw.cmd("ETRN")[0] == 501
    assert raw.cmd("ETRN bad..name")[0] == 501
    raw.cmd("MAIL FROM:<a@b.test>")
    assert raw.cmd("ETRN example.test")[0] == 503
    raw.cmd("QUIT")


class SlowPrimary(Recorder):
    """A primary that takes DELAY seconds to accept a message's data."""
    DELAY = 4

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.DELAY)
        return await super().handle_DATA(server, session, envelope)


def test_etrn_starts_flush_without_waiting(mx, dns):
    """ETRN is answered at once while the flush it starts runs detached:
    the binary itself, with our -C file (MXFB_CONFIG names nothing here),
    forced past the back-off (-f) and only for the domain named (-d,
    lower-cased, trailing dot dropped).  Seen from outside: what reaches
    the primary, and when.  No environment variable can make it run
    another program (MXFB_ETRN_COMMAND was one)."""
    # Where the user the commands become could write, were it run.
    os.mkdir(os.path.join(mx.dir, "etrn"))
    mx.give(os.path.join(mx.dir, "etrn"))
    marker = os.path.join(mx.dir, "etrn", "ran")
    script = os.path.join(mx.dir, "other-program")
    with open(script, "w") as f:
        f.write("#!/bin/sh\ntouch %s\n" % marker)
    os.chmod(script, 0o755)
    port = free_port("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % port, "retry-min 1h", "retry-max 2h",
              "relay-domain other.test via [127.0.0.2]:%d" % port,
              "etrn-allow 192.0.2.0/24", "connect-timeout 2s",
              "data-done-timeout 30s")
    mine = mx.inject("a@sender.test", ["u@example.test"],
                     b"Subject: for example.test\n\nhello\n")
    other = mx.inject("a@sender.test", ["u@other.test"],
                      b"Subject: for other.test\n\nhello\n")
    # The primary is down: both deferred, not due again for an hour.
    p = mx.run("flush", check=True)
    assert p.stdout == b"delivered 0, deferred 2, failed 0\n"
    rec = SlowPrimary()
    ctl = Controller(rec, hostname="127.0.0.2", port=port, decode_data=False)
    ctl.start()
    try:
        etrn_then_delivery(mx, rec, mine, other, {
            "MXFB_CONFIG": os.path.join(mx.dir, "no"),
            "MXFB_ETRN_COMMAND": script})
    finally:
        ctl.stop()
    assert not os.path.exists(marker)


def etrn_then_delivery(mx, rec, mine, other, env):
    proc, raw = etrn_session(mx, "192.0.2.5", args=("-C", mx.conf), env=env)
    start = time.time()
    code, text = raw.cmd("ETRN Example.Test.")
    assert code == 250, text
    assert text == "250 2.0.0 Queuing for node example.test started"
    assert time.time() - start < 2, "ETRN waited for the flush"
    assert raw.cmd("NOOP")[0] == 250
    raw.cmd("QUIT")
    proc.wait(10)
    assert rec.messages == []
    deadline = time.time() + 30
    while not rec.messages:
        assert time.time() < deadline, "ETRN's flush delivered nothing"
        time.sleep(0.1)
    assert rec.messages[0]["rcpts"] == ["u@example.test"]
    while mine in [m["id"] for m in mx.status_json()]:
        assert time.time() < deadline, "the delivered message stayed"
        time.sleep(0.1)
    time.sleep(SlowPrimary.DELAY + 1)
    assert len(rec.messages) == 1
    assert [m["id"] for m in mx.status_json()] == [other]


def test_etrn_delivers_queued_mail_to_primary(mx, dns, primary_factory):
    ctl, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("etrn-allow 127.0.0.0/8", "smtp-port %d" % ctl.port)
    proc, port = mx.listen()
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.sendmail("a@sender.test", ["user@example.test"],
                   b"Subject: queued for the primary\r\n\r\nhello\r\n")
    assert len(mx.status_json()) == 1
    raw = RawSmtp(socket.create_connection(("127.0.0.1", port)))
    raw.reply()
    raw.cmd("EHLO mx1.example.test")
    code, text = raw.cmd("ETRN example.test")
    assert code == 250, text
    raw.cmd("QUIT")
    deadline = time.time() + 30
    while not rec.messages:
        assert time.time() < deadline, "ETRN's flush delivered nothing"
        time.sleep(0.1)
    assert rec.messages[0]["rcpts"] == ["user@example.test"]
    assert b"Subject: queued for the primary" in rec.messages[0]["data"]
