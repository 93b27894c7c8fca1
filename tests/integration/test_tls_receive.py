"""Inbound STARTTLS (issue 7, part 1) against `receive`, with real TLS
clients: Python ssl+smtplib starttls(), `swaks --tls`, `openssl s_client
-starttls smtp`.  Certificates come from a private CA made per test with
the openssl command (certs.py).

Shown here: STARTTLS advertised only when configured and only before
TLS; the session is reset by the handshake (EHLO again, no STARTTLS in
the new EHLO); plaintext pipelined after STARTTLS is discarded, never
executed under TLS (CVE-2011-0411); the Received header says
`with ESMTPS (TLS1.x:CIPHER:BITS)`; tls-required refuses MAIL before TLS
with 530 5.7.0; TLS 1.0/1.1 are refused; certificate and key problems
(missing file, key readable by group or others, key of another
certificate) stop `receive` with exit 78 and no greeting."""
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess

import pytest

from certs import Certs
from conftest import RawSmtp

HOST = "backup.example.test"
MESSAGE = b"From: a@sender.test\r\nSubject: tls\r\n\r\nover TLS\r\n"


def err(p):
    return p.stderr.decode(errors="replace")


@pytest.fixture
def certs(tmp_path):
    return Certs(tmp_path / "certs")


@pytest.fixture
def tlsmx(mx, certs):
    """An mx with tls-cert/tls-key for its own name."""
    c = certs.valid(HOST)
    mx.cert = c
    mx.config("tls-cert %s" % c.chain, "tls-key %s" % c.key)
    return mx


def client_context(certs, **kw):
    ctx = ssl.create_default_context(cafile=certs.ca)
    ctx.check_hostname = True
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def queued_text(mx, qid):
    return mx.run("status", "-b", qid, check=True).stdout


def only_id(mx):
    msgs = mx.status_json()
    assert len(msgs) == 1, msgs
    return msgs[0]["id"]


def test_starttls_smtplib_verified(tlsmx, certs):
    """A verifying client (CA + host name) gets TLS 1.3; the new EHLO no
    longer offers STARTTLS; the Received header records protocol and
    cipher."""
    _, port = tlsmx.listen()
    # smtplib checks the host name against the name it connected to:
    # connect by name through a socket we open ourselves.
    s = smtplib.SMTP(local_hostname="client.test", timeout=20)
    s._host = HOST
    s.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.file = None
    code, _ = s.getreply()
    assert code == 220
    code, text = s.ehlo()
    assert b"STARTTLS" in text
    code, text = s.starttls(context=client_context(certs))
    assert code == 220, text
    assert s.sock.version() == "TLSv1.3"
    cipher = s.sock.cipher()[0]
    assert s.sock.getpeercert()["subject"] == ((("commonName", HOST),),)
    code, text = s.ehlo()
    assert code == 250
    assert b"STARTTLS" not in text
    assert b"PIPELINING" in text
    s.sendmail("a@sender.test", ["u@example.test"], MESSAGE)
    s.quit()
    data = queued_text(tlsmx, only_id(tlsmx))
    m = re.search(rb"with ESMTPS \((TLS1\.3):([A-Z0-9_-]+):(\d+)\)", data)
    assert m, data[:400]
    assert m.group(2).decode() == cipher


def test_no_starttls_without_cert(mx):
    """Not configured: not offered, and the command is refused."""
    p = mx.run("receive", input="EHLO c.test\r\nSTARTTLS\r\nQUIT\r\n")
    out = p.stdout.decode()
    assert "STARTTLS" not in out.split("\r\n221")[0].split("250 SMTPUTF8")[0]
    assert re.search(r"^502 ", out, re.M), out


def test_starttls_twice_and_with_argument(tlsmx, certs):
    _, port = tlsmx.listen()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    raw = RawSmtp(sock)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO c.test")[0] == 250
    assert raw.cmd("STARTTLS now")[0] == 501
    assert raw.cmd("STARTTLS")[0] == 220
    tsock = client_context(certs).wrap_socket(sock, server_hostname=HOST)
    traw = RawSmtp(tsock)
    # The state was reset: MAIL needs a new EHLO.
    assert traw.cmd("MAIL FROM:<a@sender.test>")[0] == 503
    assert traw.cmd("EHLO c.test")[0] == 250
    code, _ = traw.cmd("STARTTLS")
    assert code in (503, 554), code
    assert traw.cmd("QUIT")[0] == 221
    tsock.close()


def test_pipelined_plaintext_after_starttls_discarded(tlsmx, certs):
    """CVE-2011-0411: commands sent in clear in the same packet as
    STARTTLS must not run inside the TLS session."""
    p, port = tlsmx.listen()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    raw = RawSmtp(sock)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO c.test")[0] == 250
    sock.sendall(b"STARTTLS\r\nEHLO evil.test\r\n"
                 b"MAIL FROM:<evil@attacker.test>\r\n"
                 b"RCPT TO:<u@example.test>\r\n")
    code, _ = raw.reply()
    assert code == 220
    tsock = client_context(certs).wrap_socket(sock, server_hostname=HOST)
    traw = RawSmtp(tsock, timeout=5)
    # Had the injected commands run, their replies would come first.
    code, text = traw.cmd("NOOP")
    assert code == 250, (code, text)
    # No transaction was started by the injected MAIL.
    assert traw.cmd("RCPT TO:<u@example.test>")[0] == 503
    assert traw.cmd("QUIT")[0] == 221
    tsock.close()
    p.terminate()
    log = p.communicate(timeout=10)[1].decode(errors="replace")
    assert "pipelined after STARTTLS" in log, log
    assert "evil@attacker.test" not in log, log


def test_tls_required(tlsmx, certs):
    tlsmx.config("tls-cert %s" % tlsmx.cert.chain,
                 "tls-key %s" % tlsmx.cert.key, "tls-required yes")
    _, port = tlsmx.listen()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    raw = RawSmtp(sock)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO c.test")[0] == 250
    code, text = raw.cmd("MAIL FROM:<a@sender.test>")
    assert code == 530 and "5.7.0" in text, (code, text)
    assert raw.cmd("STARTTLS")[0] == 220
    tsock = client_context(certs).wrap_socket(sock, server_hostname=HOST)
    traw = RawSmtp(tsock)
    assert traw.cmd("EHLO c.test")[0] == 250
    assert traw.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert traw.cmd("RCPT TO:<u@example.test>")[0] == 250
    assert traw.cmd("DATA")[0] == 354
    assert (traw.send(MESSAGE + b".\r\n"), traw.reply())[1][0] == 250
    assert traw.cmd("QUIT")[0] == 221
    tsock.close()
    assert len(tlsmx.status_json()) == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version,ok", [("TLSv1", False), ("TLSv1_1", False),
                                        ("TLSv1_2", True)])
def test_old_protocols_refused(tlsmx, certs, version, ok):
    """The client offers exactly one version (at OpenSSL security level
    0, so that it can): TLS 1.2 works, 1.0 and 1.1 are refused by the
    server."""
    p, port = tlsmx.listen()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = getattr(ssl.TLSVersion, version)
        ctx.maximum_version = getattr(ssl.TLSVersion, version)
    except (ValueError, ssl.SSLError):
        pytest.skip("this Python/OpenSSL cannot even offer " + version)
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    raw = RawSmtp(sock)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO c.test")[0] == 250
    assert raw.cmd("STARTTLS")[0] == 220
    if ok:
        tsock = ctx.wrap_socket(sock, server_hostname=HOST)
        assert tsock.version() == "TLSv1.2"
        tsock.close()
        return
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(sock, server_hostname=HOST)
    sock.close()
    p.terminate()
    log = p.communicate(timeout=10)[1].decode(errors="replace")
    assert "unsupported protocol" in log, log


def test_swaks_tls(tlsmx, certs):
    if shutil.which("swaks") is None:
        pytest.skip("swaks not installed")
    _, port = tlsmx.listen()
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls",
         "--tls-verify", "--tls-ca-path", certs.ca, "--tls-sni", HOST,
         "--ehlo", "client.test", "--from", "a@sender.test", "--to",
         "u@example.test", "--header", "Subject: swaks"],
        capture_output=True, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + err(p)
    assert "TLS started" in out, out
    assert "queued as" in out, out
    data = queued_text(tlsmx, only_id(tlsmx))
    assert re.search(rb"with ESMTPS \(TLS1\.[23]:", data), data[:300]


def test_swaks_tls_inetd(tlsmx, certs):
    """TLS over the inetd fd pair (separate read and write fds)."""
    if shutil.which("swaks") is None:
        pytest.skip("swaks not installed")
    from conftest import MXFB
    p = subprocess.run(
        ["swaks", "--pipe", "%s receive" % MXFB, "--tls",
         "--ehlo", "client.test", "--from", "a@sender.test", "--to",
         "u@example.test"],
        capture_output=True, timeout=60, env=tlsmx.env())
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + err(p)
    assert "TLS started" in out and "queued as" in out, out


def test_openssl_s_client(tlsmx, certs):
    _, port = tlsmx.listen()
    p = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         "127.0.0.1:%d" % port, "-CAfile", certs.ca, "-verify_hostname",
         HOST, "-verify_return_error", "-servername", HOST, "-brief"],
        input=b"QUIT\r\n", capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, out
    assert "Verification: OK" in out, out
    assert re.search(r"Protocol version: TLSv1\.[23]", out), out
    # The chain file's CA came along (chain allowed in tls-cert).
    p = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         "127.0.0.1:%d" % port, "-showcerts"],
        input=b"QUIT\r\n", capture_output=True, timeout=60)
    assert p.stdout.count(b"BEGIN CERTIFICATE") == 2


def test_handshake_garbage_ends_session(tlsmx):
    p, port = tlsmx.listen()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    raw = RawSmtp(sock)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO c.test")[0] == 250
    assert raw.cmd("STARTTLS")[0] == 220
    sock.sendall(b"EHLO this is not a ClientHello\r\n")
    rest = raw.read_to_eof()
    # Never an SMTP reply in clear after the 220 to STARTTLS.
    assert not re.search(rb"^[2-5]\d\d[ -]", rest, re.M), rest
    sock.close()
    p.terminate()
    log = p.communicate(timeout=10)[1].decode(errors="replace")
    assert "TLS" in log and "fail" in log, log


def bad_config(mx, *lines):
    mx.config(*lines)
    p = mx.run("receive", input="EHLO c.test\r\nQUIT\r\n", timeout=30)
    assert p.returncode == 78, (p.returncode, err(p))
    assert not p.stdout.startswith(b"220"), p.stdout
    return err(p)


def test_missing_cert_is_config_error(mx, certs):
    c = certs.valid(HOST)
    e = bad_config(mx, "tls-cert %s/nonexistent.pem" % certs.dir,
                   "tls-key %s" % c.key)
    assert "tls-cert" in e and "nonexistent.pem" in e, e


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_open_key_is_config_error(mx, certs, mode):
    c = certs.valid(HOST)
    os.chmod(c.key, mode)
    e = bad_config(mx, "tls-cert %s" % c.chain, "tls-key %s" % c.key)
    assert "too open" in e and c.key in e, e


def test_mismatched_key_is_config_error(mx, certs):
    a = certs.valid(HOST)
    b = certs.valid("other.example.test")
    e = bad_config(mx, "tls-cert %s" % a.chain, "tls-key %s" % b.key)
    assert "does not match" in e, e


def test_listen_mode_checks_cert_at_start(mx, certs):
    c = certs.valid(HOST)
    mx.config("tls-cert %s" % c.chain, "tls-key %s/missing.key" % certs.dir)
    p = mx.run("receive", "-l", "127.0.0.1:1", timeout=30)
    assert p.returncode == 78, err(p)
    assert "missing.key" in err(p)
