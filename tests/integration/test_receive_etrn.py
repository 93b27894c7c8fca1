"""ETRN (RFC 1985) in `mxfb receive`: only `etrn-allow` clients, only
relay domains, answered at once while `flush -f -d DOMAIN` runs detached
in the background, and the queued mail then reaches the primary.
"""
import os
import smtplib
import socket
import stat
import time

from conftest import RawSmtp, receive_stdio


def etrn_session(mx, ip, env=None):
    e = {"TCPREMOTEIP": ip}
    e.update(env or {})
    proc, raw = receive_stdio(mx, env=e)
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


def test_etrn_starts_flush_without_waiting(mx):
    # Run as the user receive becomes: its output goes where it may write.
    os.mkdir(os.path.join(mx.dir, "etrn"))
    mx.give(os.path.join(mx.dir, "etrn"))
    out = os.path.join(mx.dir, "etrn", "etrn-args")
    script = os.path.join(mx.dir, "fake-flush")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nsleep 3\necho \"$@\" > %s.tmp\n"
                "mv %s.tmp %s\n" % (out, out, out))
    os.chmod(script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP |
             stat.S_IROTH | stat.S_IXOTH)
    mx.config("etrn-allow 192.0.2.0/24")
    proc, raw = etrn_session(mx, "192.0.2.5",
                             env={"MXFB_ETRN_COMMAND": script})
    start = time.time()
    code, text = raw.cmd("ETRN Example.Test.")
    assert code == 250, text
    assert text == "250 2.0.0 Queuing for node example.test started"
    assert time.time() - start < 2, "ETRN waited for the flush"
    assert raw.cmd("NOOP")[0] == 250
    raw.cmd("QUIT")
    proc.wait(10)
    deadline = time.time() + 15
    while not os.path.exists(out):
        assert time.time() < deadline, "flush was never started"
        time.sleep(0.1)
    with open(out) as f:
        assert f.read().split() == ["-C", mx.conf, "flush", "-f", "-d",
                                    "example.test"]


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
