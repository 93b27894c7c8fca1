"""Submission (issue 16): `receive -s` (STARTTLS, port 587) and `receive -s
-T` (implicit TLS, port 465) with AUTH PLAIN/LOGIN against the `users`
file; every refusal of RFC 4954 and of the submission policy (sender must
be the account, submission-rate, auth-fail-limit shared by processes);
the relay tricks of the MX port tried without AUTH; delivery of a
submitted message to another domain's MX by flush; credentials never in
the log.
"""
import base64
import os
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from certs import Certs
from conftest import (MXFB, RawSmtp, free_port, receive_stdio,
                      user_ids, wait_port)
from test_receive_security import RELAY_TRICKS

ADDR = "alice@example.test"
PASSWORD = "correct horse battery"
OTHER = "bob@example.test"
OTHER_PASSWORD = "hunter2 hunter2"


def hash_of(mx, password):
    p = mx.run("passwd", input=password + "\n", check=True)
    return p.stdout.decode().strip()


def write_users(path, lines, mode=0o640):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    uid, gid = user_ids()
    os.chown(path, uid, gid)
    os.chmod(path, mode)


@pytest.fixture
def sub(mx, tmp_path):
    certs = Certs(tmp_path / "certs")
    cert = certs.valid("backup.example.test")
    mx.certs = certs
    mx.users = str(tmp_path / "users")
    write_users(mx.users, [
        "# submission accounts",
        "",
        "%s:%s::::::" % (ADDR, hash_of(mx, PASSWORD)),
        # the bare form, without the scheme
        "%s:%s" % (OTHER, hash_of(mx, OTHER_PASSWORD)[len("{ARGON2ID}"):]),
        "broken line without a colon",
        "carol@example.test:{PLAIN}secret",
    ])
    mx.sub_lines = ["tls-cert %s" % cert.chain, "tls-key %s" % cert.key,
                    "users %s" % mx.users]
    mx.config(*mx.sub_lines)
    return mx


def ctx_of(mx):
    ctx = ssl.create_default_context(cafile=mx.certs.ca)
    ctx.check_hostname = False      # smtplib connects to 127.0.0.1
    return ctx


def listen_sub(mx, implicit=False, extra=()):
    port = free_port()
    args = [MXFB, "receive", "-s", "-l", "127.0.0.1:%d" % port]
    if implicit:
        args.insert(3, "-T")
    p = subprocess.Popen(args + list(extra), env=mx.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mx.procs.append(p)
    wait_port("127.0.0.1", port)
    return p, port


def stop(p):
    p.terminate()
    p.wait(10)
    return p.stderr.read().decode(errors="replace")


def starttls_client(mx, port):
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("client.test")
    s.starttls(context=ctx_of(mx))
    s.ehlo("client.test")
    return s


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


MESSAGE = ("From: %s\r\nTo: someone@elsewhere.test\r\nSubject: hi\r\n\r\n"
           "hello from the backup\r\n" % ADDR)


def tls_raw(mx, port):
    """A RawSmtp after EHLO and STARTTLS (and EHLO again)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw = RawSmtp(sock)
    assert raw.reply()[0] == 220
    assert raw.cmd("EHLO client.test")[0] == 250
    assert raw.cmd("STARTTLS")[0] == 220
    raw.sock = ctx_of(mx).wrap_socket(sock,
                                      server_hostname="backup.example.test")
    raw.sock.settimeout(30)
    code, text = raw.cmd("EHLO client.test")
    assert code == 250
    return raw, text


def test_starttls_and_login_with_both_mechanisms(sub):
    mx = sub
    p, port = listen_sub(mx)
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    code, text = s.ehlo("client.test")
    assert b"STARTTLS" in text and b"AUTH" not in text
    s.starttls(context=ctx_of(mx))
    code, text = s.ehlo("client.test")
    assert b"AUTH PLAIN LOGIN" in text and b"STARTTLS" not in text
    s.login(ADDR, PASSWORD)       # smtplib tries PLAIN first
    s.sendmail(ADDR, ["someone@elsewhere.test"], MESSAGE)
    s.quit()
    s = starttls_client(mx, port)
    s.user, s.password = OTHER, OTHER_PASSWORD
    code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    assert code == 235, text
    s.sendmail(OTHER, ["x@example.test"],
               MESSAGE.replace(ADDR, OTHER))
    s.quit()
    log = stop(p)
    msgs = mx.status_json()
    assert sorted(m["sender"] for m in msgs) == sorted([ADDR, OTHER])
    for m in msgs:
        head = mx.run("status", "-b", m["id"], check=True).stdout
        head = head.split(b"\r\n\r\n", 1)[0].decode()
        assert "with ESMTPSA" in head
        assert "(Authenticated sender: %s)" % m["sender"] in head
    assert "sasl_method=PLAIN, sasl_username=%s" % ADDR in log
    assert "sasl_method=LOGIN, sasl_username=%s" % OTHER in log
    for secret in (PASSWORD, OTHER_PASSWORD, b64(OTHER_PASSWORD),
                   plain(ADDR, PASSWORD)):
        assert secret not in log


def test_implicit_tls_smtp_ssl(sub):
    mx = sub
    p, port = listen_sub(mx, implicit=True)
    s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=30,
                         context=ctx_of(mx))
    code, text = s.ehlo("client.test")
    assert b"AUTH PLAIN LOGIN" in text and b"STARTTLS" not in text
    s.login(ADDR, PASSWORD)
    s.sendmail(ADDR, ["someone@elsewhere.test"], MESSAGE)
    s.quit()
    # A plaintext client on the implicit-TLS port gets no greeting.
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"EHLO client.test\r\n")
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        data = b""
    assert not data.startswith(b"220")
    sock.close()
    stop(p)
    [m] = mx.status_json()
    head = mx.run("status", "-b", m["id"], check=True).stdout.decode()
    assert "with ESMTPSA (TLS" in head


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks(sub, mech):
    mx = sub
    p, port = listen_sub(mx)
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                        "--tls", "--tls-ca-path", mx.certs.ca,
                        "--auth", mech, "--auth-user", ADDR,
                        "--auth-password", PASSWORD,
                        "--from", ADDR, "--to", "x@elsewhere.test",
                        "--helo", "client.test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    stop(p)
    assert [m["sender"] for m in mx.status_json()] == [ADDR]


def test_before_tls(sub):
    mx = sub
    proc, raw = receive_stdio(mx, args=("-s",))
    code, text = raw.cmd("EHLO client.test")
    assert "STARTTLS" in text and "AUTH" not in text
    assert raw.cmd("AUTH PLAIN %s" % plain(ADDR, PASSWORD))[0] == 538
    code, text = raw.cmd("MAIL FROM:<%s>" % ADDR)
    assert code == 530 and "5.7.0" in text
    raw.cmd("QUIT")
    proc.wait(10)
    assert mx.status_json() == []


def test_auth_protocol_refusals(sub):
    mx = sub
    p, port = listen_sub(mx)
    raw, _ = tls_raw(mx, port)
    # No AUTH: nothing, not even for a relay domain.
    code, text = raw.cmd("MAIL FROM:<%s>" % ADDR)
    assert (code, text.split()[1]) == (530, "5.7.0")
    assert raw.cmd("RCPT TO:<x@example.test>")[0] == 503
    assert raw.cmd("AUTH CRAM-MD5")[0] == 504
    assert raw.cmd("AUTH PLAIN !!!notbase64")[:1] == (501,)
    # cancelled after the challenge
    assert raw.cmd("AUTH PLAIN") == (334, "334 ")
    code, text = raw.cmd("*")
    assert (code, text.split()[1]) == (501, "5.0.0")
    # bad base64 in a challenge's answer
    assert raw.cmd("AUTH LOGIN")[0] == 334
    code, text = raw.cmd("a===")
    assert (code, text.split()[1]) == (501, "5.5.2")
    # "=": empty initial response is no account
    assert raw.cmd("AUTH PLAIN =")[0] == 535
    # authzid other than the authcid
    code, text = raw.cmd("AUTH PLAIN %s" % plain(ADDR, PASSWORD, OTHER))
    assert (code, text.split()[1]) == (535, "5.7.8")
    # an overlong response line
    assert raw.cmd("AUTH PLAIN")[0] == 334
    code, text = raw.cmd("A" * 13000)
    assert (code, text.split()[1]) == (500, "5.5.6")
    # a long but allowed initial response (RFC 4954: 12288 octets)
    code, text = raw.cmd("AUTH PLAIN " + b64("x" * 9000))
    assert code == 535, text
    raw.cmd("QUIT")
    log = stop(p)
    assert PASSWORD not in log and plain(ADDR, PASSWORD, OTHER) not in log


def test_auth_states_and_sender(sub):
    mx = sub
    p, port = listen_sub(mx)
    raw, _ = tls_raw(mx, port)
    assert raw.cmd("AUTH PLAIN %s" % plain(ADDR, "wrong"))[0] == 535
    # PLAIN after a challenge; LOGIN with an initial response.
    assert raw.cmd("AUTH PLAIN")[0] == 334
    code, text = raw.cmd(plain(ADDR, PASSWORD))
    assert (code, text.split()[1]) == (235, "2.7.0")
    code, text = raw.cmd("AUTH LOGIN %s" % b64(ADDR))
    assert (code, text.split()[1]) == (503, "5.5.1")
    # The sender must be the account; the null sender too.
    for sender in ("<%s>" % OTHER, "<>", "<ALICE@example.test>"):
        code, text = raw.cmd("MAIL FROM:%s" % sender)
        assert (code, text.split()[1]) == (553, "5.7.1"), sender
    assert raw.cmd("MAIL FROM:<alice@EXAMPLE.test>")[0] == 250
    assert raw.cmd("AUTH PLAIN %s" % plain(ADDR, PASSWORD))[0] == 503
    assert raw.cmd("RCPT TO:<someone@elsewhere.test>")[0] == 250
    assert raw.cmd("RCPT TO:<x%elsewhere.test@example.test>")[0] == 550
    assert raw.cmd("RSET")[0] == 250
    raw.cmd("QUIT")
    raw, _ = tls_raw(mx, port)
    # LOGIN with its initial response (the user name)
    assert raw.cmd("AUTH LOGIN %s" % b64(OTHER)) == (334, "334 UGFzc3dvcmQ6")
    assert raw.cmd(b64(OTHER_PASSWORD))[0] == 235
    raw.cmd("QUIT")
    log = stop(p)
    assert "SASL PLAIN authentication failed" in log
    assert "unknown[127.0.0.1]" in log
    assert "reject: MAIL from unknown[127.0.0.1]: 553 5.7.1" in log


@pytest.mark.parametrize("rcpt", RELAY_TRICKS)
def test_relay_tricks_without_auth_refused(sub, rcpt):
    mx = sub
    proc, raw = receive_stdio(mx, args=("-s",))
    raw.cmd("EHLO client.test")
    assert raw.cmd("MAIL FROM:<a@sender.test>")[0] == 530
    assert raw.cmd("RCPT TO:%s" % rcpt)[0] == 503
    assert raw.cmd("DATA")[0] == 503
    raw.cmd("QUIT")
    proc.wait(10)
    assert mx.status_json() == []


def test_mx_port_unchanged(sub):
    mx = sub
    proc, raw = receive_stdio(mx)
    code, text = raw.cmd("EHLO client.test")
    assert "AUTH" not in text
    assert raw.cmd("AUTH PLAIN %s" % plain(ADDR, PASSWORD))[0] == 503
    raw.cmd("QUIT")
    proc.wait(10)


def test_configuration_refusals(sub, tmp_path):
    mx = sub
    mx.config(*[l for l in mx.sub_lines if not l.startswith("users")])
    p = mx.run("receive", "-s", "-l", "127.0.0.1:%d" % free_port())
    assert p.returncode == 78 and b"needs users" in p.stderr
    mx.config("users %s" % mx.users)
    p = mx.run("receive", "-s", "-l", "127.0.0.1:%d" % free_port())
    assert p.returncode == 78 and b"tls-cert" in p.stderr
    assert mx.run("receive", "-T").returncode == 64
    for mode in (0o644, 0o660, 0o646):
        os.chmod(mx.users, mode)
        mx.config(*mx.sub_lines)
        p = mx.run("status")
        assert p.returncode == 78, mode
        assert b"users" in p.stderr and b":4:" not in p.stderr
    os.chmod(mx.users, 0o640)
    link = str(tmp_path / "users-link")
    os.symlink(mx.users, link)
    mx.config(*mx.sub_lines[:2], "users %s" % link)
    p = mx.run("status")
    assert p.returncode == 78 and b"symbolic link" in p.stderr


def test_file_reread_and_refused_at_auth_time(sub):
    mx = sub
    p, port = listen_sub(mx)
    s = starttls_client(mx, port)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login("dave@example.test", "dave's password")
    s.quit()
    old = open(mx.users).read()
    write_users(mx.users, [old.rstrip("\n"),
                           "dave@Example.TEST:%s" % hash_of(
                               mx, "dave's password")])
    s = starttls_client(mx, port)
    s.login("dave@example.test", "dave's password")     # domain: any case
    s.quit()
    s = starttls_client(mx, port)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login("Dave@example.test", "dave's password")  # local part: exact
    s.quit()
    os.chmod(mx.users, 0o644)
    s = starttls_client(mx, port)
    code, text = s.docmd("AUTH", "PLAIN " + plain(ADDR, PASSWORD))
    assert (code, text.split()[0]) == (454, b"4.7.0")
    s.quit()
    log = stop(p)
    assert "readable by others" in log


def test_unknown_user_costs_as_much_as_a_good_login(sub):
    mx = sub
    mx.config(*mx.sub_lines, "auth-fail-limit 100")
    p, port = listen_sub(mx)
    raw, _ = tls_raw(mx, port)

    def timed(user, password):
        t = time.monotonic()
        code, _ = raw.cmd("AUTH PLAIN %s" % plain(user, password))
        return time.monotonic() - t, code

    good = []
    unknown = []
    for i in range(3):
        t, code = timed("nobody-%d@example.test" % i, "x")
        assert code == 535
        unknown.append(t)
        t, code = timed("carol@example.test", "secret")    # a bad line
        assert code == 535
        unknown.append(t)
    raw.cmd("QUIT")
    for i in range(2):
        raw, _ = tls_raw(mx, port)
        t, code = timed(ADDR, PASSWORD)
        assert code == 235
        good.append(t)
        raw.cmd("QUIT")
    stop(p)
    g = min(good)
    assert g > 0.005            # an Argon2id verification, not a look-up
    assert min(unknown) > g / 3, (unknown, good)
    assert max(unknown) < g * 3 + 0.5, (unknown, good)


def fail_login(mx, port, user=ADDR):
    raw, _ = tls_raw(mx, port)
    code, text = raw.cmd("AUTH PLAIN %s" % plain(user, "wrong password"))
    raw.cmd("QUIT")
    return code, text


def test_lockout_shared_by_two_processes(sub):
    mx = sub
    mx.config(*mx.sub_lines, "auth-fail-limit 3")
    pa, porta = listen_sub(mx)
    pb, portb = listen_sub(mx)
    assert fail_login(mx, porta)[0] == 535
    assert fail_login(mx, portb)[0] == 535
    assert fail_login(mx, porta)[0] == 535
    for port in (portb, porta):
        code, text = fail_login(mx, port)
        assert (code, text.split()[1]) == (454, "4.7.0"), text
        # even with the right password, for the rest of the window
        raw, _ = tls_raw(mx, port)
        assert raw.cmd("AUTH PLAIN %s" % plain(ADDR, PASSWORD))[0] == 454
        raw.cmd("QUIT")
    log = stop(pa) + stop(pb)
    assert "auth-fail-limit reached" in log
    assert "reject: AUTH from unknown[127.0.0.1]: 454 4.7.0" in log
    assert "wrong password" not in log


def send(mx, port, n=1):
    s = starttls_client(mx, port)
    s.login(ADDR, PASSWORD)
    try:
        for i in range(n):
            s.sendmail(ADDR, ["x@elsewhere.test"], MESSAGE)
    finally:
        s.close()


def test_rate_shared_by_two_processes(sub):
    mx = sub
    mx.config(*mx.sub_lines, "submission-rate 3/1h")
    pa, porta = listen_sub(mx)
    pb, portb = listen_sub(mx)
    send(mx, porta, 2)
    send(mx, portb, 1)
    for port in (porta, portb):
        s = starttls_client(mx, port)
        s.login(ADDR, PASSWORD)
        code, text = s.mail(ADDR)
        assert (code, text.split()[0]) == (452, b"4.7.0"), text
        s.quit()
    # another account has its own count
    s = starttls_client(mx, porta)
    s.login(OTHER, OTHER_PASSWORD)
    s.sendmail(OTHER, ["x@elsewhere.test"], MESSAGE)
    s.quit()
    log = stop(pa) + stop(pb)
    assert len(mx.status_json()) == 4
    assert "reject: MAIL from unknown[127.0.0.1]: 452 4.7.0" in log
    assert "submission-rate 3/3600s reached" in log


def test_delivered_to_another_domains_mx(sub, dns, primary_factory):
    """RFC 5321 5.1 for a domain we do not back up: every MX host by
    preference (the best one is down), the implicit MX (no MX record: the
    domain's own address), Null MX refused with a DSN to the sender."""
    mx = sub
    ctl, rec = primary_factory(host="127.0.0.3")
    dns.mx("other.test", 10, "mx1.other.test")
    dns.mx("other.test", 20, "mx2.other.test")
    dns.a("mx1.other.test", "127.0.0.4")       # nobody listens there
    dns.a("mx2.other.test", "127.0.0.3")
    dns.a("implicit.test", "127.0.0.3")
    dns.mx("null.test", 0, ".")
    mx.config(*mx.sub_lines, "smtp-port %d" % ctl.port)
    p, port = listen_sub(mx)
    s = starttls_client(mx, port)
    s.login(ADDR, PASSWORD)
    s.sendmail(ADDR, ["friend@other.test", "x@null.test",
                      "y@implicit.test"], MESSAGE)
    s.quit()
    stop(p)
    r = mx.run("flush", "-f", check=True)
    assert b"delivered 2" in r.stdout and b"failed 1" in r.stdout, r.stdout
    got = sorted(r for m in rec.messages for r in m["rcpts"])
    assert got == ["friend@other.test", "y@implicit.test"]
    for m in rec.messages:
        assert m["from"] == ADDR
        assert b"with ESMTPSA" in m["data"]
        assert PASSWORD.encode() not in m["data"]
    # The Null MX recipient: a DSN back to the sender.
    mx.run("bounce", check=True)
    dsns = [x for x in mx.status_json() if x["sender"] == ""]
    assert [r["addr"] for d in dsns for r in d["recipients"]] == [ADDR]



def test_expiry_reported_under_bounce_policy_verified(sub, dns):
    """A submitted message's sender is authenticated: a DSN to it is never
    backscatter, so bounce-policy verified returns it on expiry as it
    does mail whose recipients the recipients file vouched for."""
    mx = sub
    dns.mx("down.test", 10, "mx.down.test")
    dns.a("mx.down.test", "127.0.0.4")          # nobody listens there
    mx.config(*mx.sub_lines, "bounce-policy verified", "queue-lifetime 1s",
              "smtp-port %d" % free_port("127.0.0.4"))
    p, port = listen_sub(mx)
    s = starttls_client(mx, port)
    s.login(ADDR, PASSWORD)
    s.sendmail(ADDR, ["x@down.test"], MESSAGE)
    s.quit()
    stop(p)
    mx.run("flush", "-f", check=True)
    time.sleep(2)
    mx.run("bounce", check=True)
    dsns = [x for x in mx.status_json() if x["sender"] == ""]
    assert [r["addr"] for d in dsns for r in d["recipients"]] == [ADDR]


def dkim_key(path, algorithm):
    """A private key made by openssl (0600, root's: read before the
    switch to user) and its DNS TXT record, derived with openssl as the
    README shows."""
    args = ["openssl", "genpkey", "-algorithm", algorithm, "-out", path]
    if algorithm == "RSA":
        args += ["-pkeyopt", "rsa_keygen_bits:2048"]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    os.chmod(path, 0o600)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True, timeout=60).stdout
    if algorithm == "RSA":
        return "v=DKIM1; k=rsa; p=" + b64(der)
    return "v=DKIM1; k=ed25519; p=" + b64(der[-32:])


def test_dkim_signed_at_acceptance(sub, dns, primary_factory, tmp_path):
    """Issue 16 point 5: mail submitted from a `dkim` domain carries one
    signature per key (rsa-sha256 and ed25519-sha256), both verified by
    dkimpy after delivery (Received lines added on the way); a From in
    a domain that is not the account's is not signed; a body changed
    after signing fails."""
    dkim = pytest.importorskip("dkim")
    mx = sub
    ctl, rec = primary_factory(host="127.0.0.3")
    dns.mx("other.test", 10, "mx1.other.test")
    dns.a("mx1.other.test", "127.0.0.3")
    records = {
        "rsa1._domainkey.example.test.":
            dkim_key(str(tmp_path / "rsa.key"), "RSA").encode(),
        "ed1._domainkey.example.test.":
            dkim_key(str(tmp_path / "ed.key"), "ED25519").encode(),
    }
    mx.config(*mx.sub_lines, "smtp-port %d" % ctl.port,
              "dkim example.test ed1 %s" % (tmp_path / "ed.key"),
              "dkim example.test rsa1 %s" % (tmp_path / "rsa.key"))
    p, port = listen_sub(mx)
    s = starttls_client(mx, port)
    s.login(ADDR, PASSWORD)
    signed_msg = ("From: Alice <%s>\r\nTo: friend@other.test\r\n"
                  "Subject: signed\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000"
                  "\r\nMessage-ID: <signed@example.test>\r\n\r\n"
                  "hello, signed\r\n" % ADDR)
    foreign = ("From: someone@elsewhere.test\r\nTo: friend@other.test\r\n"
               "Subject: not ours\r\nMessage-ID: <foreign@example.test>"
               "\r\n\r\nnot signed\r\n")
    s.sendmail(ADDR, ["friend@other.test"], signed_msg)
    s.sendmail(ADDR, ["friend@other.test"], foreign)
    s.quit()
    stop(p)
    r = mx.run("flush", "-f", check=True)
    assert b"delivered 2" in r.stdout, r.stdout
    got = {b"<signed@example.test>" in m["data"]: m["data"]
           for m in rec.messages}
    data = got[True]

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name if name.endswith(".") else name + ".")
    d = dkim.DKIM(data)
    assert data.count(b"DKIM-Signature:") == 2
    algos = set()
    for idx in range(2):
        assert d.verify(idx=idx, dnsfunc=lookup), idx
        algos.add(d.signature_fields[b"a"])
    assert algos == {b"rsa-sha256", b"ed25519-sha256"}
    tampered = data.replace(b"hello, signed", b"hello, changed")
    try:
        ok = dkim.DKIM(tampered).verify(idx=0, dnsfunc=lookup)
    except dkim.DKIMException:
        ok = False
    assert not ok
    assert b"DKIM-Signature:" not in got[False]
