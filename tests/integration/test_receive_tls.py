"""STARTTLS in `mxfb receive` (RFC 3207): offered with tls-cert/tls-key,
in inetd mode and under -l; the session starts over after the handshake;
plaintext pipelined after STARTTLS is thrown away (CVE-2011-0411); the
Received header says ESMTPS with protocol and cipher; tls-required
refuses MAIL in clear; a bad certificate is a configuration error.
"""
import smtplib
import socket
import ssl

import pytest

from certs import Certs
from conftest import RawSmtp, receive_stdio


@pytest.fixture
def tls_mx(mx, tmp_path):
    certs = Certs(tmp_path / "certs")
    cert = certs.valid("backup.example.test")
    mx.certs = certs
    mx.tls_lines = ["tls-cert %s" % cert.chain, "tls-key %s" % cert.key]
    mx.config(*mx.tls_lines)
    return mx


def client_context(mx):
    ctx = ssl.create_default_context(cafile=mx.certs.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def received_of(mx, qid):
    data = mx.run("status", "-b", qid, check=True).stdout
    return data.split(b"\r\n\r\n", 1)[0]


def test_starttls_listen_smtplib(tls_mx):
    mx = tls_mx
    proc, port = mx.listen()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test") as s:
        s.ehlo()
        assert s.has_extn("starttls")
        ctx = client_context(mx)
        ctx.check_hostname = False      # smtplib would check "127.0.0.1"
        s.starttls(context=ctx)
        s.ehlo()
        assert not s.has_extn("starttls")
        s.sendmail("a@sender.test", ["tls@example.test"],
                   b"Subject: secret\r\n\r\nover TLS\r\n")
    msgs = mx.status_json()
    assert len(msgs) == 1
    hdr = received_of(mx, msgs[0]["id"])
    assert b"with ESMTPS (TLS1." in hdr, hdr


def test_starttls_inetd_mode_and_pipelined_plaintext_discarded(tls_mx):
    mx = tls_mx
    proc, raw = receive_stdio(mx)
    code, text = raw.cmd("EHLO c.test")
    assert "250-STARTTLS" in text
    # The injection: a MAIL sent in clear in the same write as STARTTLS.
    raw.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
    code, text = raw.reply()
    assert code == 220
    tls = client_context(mx).wrap_socket(
        raw.sock, server_hostname="backup.example.test")
    t = RawSmtp(tls)
    # Not in a transaction, not even greeted: EHLO is needed again.
    assert t.cmd("MAIL FROM:<a@sender.test>")[0] == 503
    code, text = t.cmd("EHLO c.test")
    assert code == 250 and "STARTTLS" not in text
    assert t.cmd("STARTTLS")[0] == 554
    assert t.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert t.cmd("RCPT TO:<r@example.test>")[0] == 250
    assert t.cmd("DATA")[0] == 354
    t.send("Subject: t\r\n\r\nx\r\n.\r\n")
    assert t.reply()[0] == 250
    assert t.cmd("QUIT")[0] == 221
    proc.wait(10)
    log = proc.stderr.read().decode()
    assert "pipelined after STARTTLS from unknown[local] discarded" in log
    assert "STARTTLS from unknown[local]: TLS1." in log, log
    msgs = mx.status_json()
    assert [m["sender"] for m in msgs] == ["a@sender.test"]


def test_tls_required(tls_mx):
    mx = tls_mx
    mx.config(*(mx.tls_lines + ["tls-required yes"]))
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    code, text = raw.cmd("MAIL FROM:<a@sender.test>")
    assert code == 530 and "5.7.0" in text
    assert raw.cmd("STARTTLS")[0] == 220
    t = RawSmtp(client_context(mx).wrap_socket(
        raw.sock, server_hostname="backup.example.test"))
    t.cmd("EHLO c.test")
    assert t.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    t.cmd("QUIT")


def test_failed_handshake_ends_session(tls_mx):
    mx = tls_mx
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    assert raw.cmd("STARTTLS")[0] == 220
    raw.send(b"this is not a TLS ClientHello\r\n" * 4)
    assert raw.read_to_eof() is not None
    proc.wait(10)
    assert "STARTTLS from unknown[local]:" in proc.stderr.read().decode()
    assert mx.status_json() == []


def test_without_certificate_no_starttls(mx):
    proc, raw = receive_stdio(mx)
    code, text = raw.cmd("EHLO c.test")
    assert "STARTTLS" not in text
    assert raw.cmd("STARTTLS")[0] == 502
    raw.cmd("QUIT")


def test_unreadable_key_is_a_configuration_error(tls_mx, tmp_path):
    mx = tls_mx
    mx.config("tls-cert %s" % mx.certs.ca, "tls-key %s" %
              (tmp_path / "missing.key"))
    p = mx.run("receive", input=b"QUIT\r\n")
    assert p.returncode == 78, p.stderr
    assert b"220" not in p.stdout
