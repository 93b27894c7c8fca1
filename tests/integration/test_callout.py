"""Recipient verification at RCPT by a callout to the primary (issue 14
points 2, 4, 8 in part; `verify` deciding as RCPT, point 5): a real
primary (aiosmtpd) whose users the test switches on and off, DNS on
loopback.  Every row: the primary's 2xx (accept, remembered valid), 5xx
(550 5.1.1, remembered invalid), 4xx, down, tarpitting (450 within
verify-timeout + 1 s), busy slots; the database's verdicts while the
primary is down; one connection per session; expiry; a damaged database
while sessions run; 50 sessions verifying while a flush learns; the
primary record written by callouts and heeded.  Loopback only.
"""
import asyncio
import fcntl
import glob
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import MXFB, free_port, receive_stdio, wait_port

FAST = ("connect-timeout 2s", "command-timeout 3s", "data-timeout 3s",
        "data-done-timeout 3s")
OK_USERS = ("ok@example.test", "ok2@example.test", "ok3@example.test")


class Users:
    """A primary's user list: RCPT for a listed user 250, for another
    550 5.1.1; .temp and .tarpit addresses get 450 and no answer.
    .sessions counts the SMTP sessions that asked (connections)."""

    def __init__(self, users=OK_USERS):
        self.users = set(users)
        self.temp = set()
        self.tarpit = set()
        self.sessions = set()
        self.asked = []
        self.rcpt_replies = {}
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.sessions.add(id(session))
        self.asked.append(address)
        if address in self.tarpit:
            await asyncio.sleep(30)
        if address in self.temp:
            return "450 4.2.1 mailbox busy"
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        if address not in self.users:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.rcpt_tos)
        return "250 2.0.0 OK queued"


@pytest.fixture
def primary():
    from aiosmtpd.controller import Controller
    users = Users()
    c = Controller(users, hostname="127.0.0.2", port=free_port("127.0.0.2"),
                   decode_data=False)
    c.start()
    c.users = users
    yield c
    try:
        c.stop()
    except Exception:
        pass


def configure(mx, dns, port, *extra):
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    timeout = () if any(e.startswith("verify-timeout") for e in extra) \
        else ("verify-timeout 3s",)
    mx.config("smtp-port %d" % port, "recipient-verify callout",
              *(FAST + timeout + extra))


def session(mx):
    p, raw = receive_stdio(mx)
    assert raw.cmd("EHLO client.test")[0] == 250
    assert raw.cmd("MAIL FROM:<s@sender.test>")[0] == 250
    return p, raw


def end(p, raw):
    assert raw.cmd("QUIT")[0] == 221
    raw.close()
    p.wait(30)
    return p.stderr.read().decode(errors="replace")


def rcpt(raw, addr):
    return raw.cmd("RCPT TO:<%s>" % addr)


def known(mx):
    p = mx.run("verify", "-l", "-j")
    assert p.returncode == 0, p.stderr
    return {o["addr"]: o for o in map(json.loads, p.stdout.decode().split("\n")[:-1])}


def test_primary_accepts_and_refuses(mx, dns, primary):
    configure(mx, dns, primary.port)
    p, raw = session(mx)
    code, text = rcpt(raw, "ok@example.test")
    assert code == 250, text
    code, text = rcpt(raw, "nobody@example.test")
    assert code == 550, text
    assert text.startswith("550 5.1.1 <nobody@example.test>: Recipient "
                           "address rejected: User unknown (refused by the "
                           "primary)")
    log = end(p, raw)
    assert ("reject: RCPT from unknown[local]: 550 5.1.1 <nobody@example.test>"
            in log), log
    line = [l for l in log.splitlines() if "reject: RCPT" in l]
    assert len(line) == 1 and line[0].endswith("; rule=callout"), line
    assert "callout for <ok@example.test>: mx1.example.test[127.0.0.2]" in log
    k = known(mx)
    assert (k["ok@example.test"]["verdict"], k["ok@example.test"]["source"]) \
        == ("valid", "callout")
    assert k["ok@example.test"]["expires"] - k["ok@example.test"]["since"] \
        == 31 * 86400
    assert (k["nobody@example.test"]["verdict"],
            k["nobody@example.test"]["source"]) == ("invalid", "callout")
    assert k["nobody@example.test"]["expires"] - \
        k["nobody@example.test"]["since"] == 3 * 86400
    # The next session believes the database: the primary is not asked.
    n = len(primary.users.asked)
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    code, text = rcpt(raw, "nobody@example.test")
    assert code == 550 and "refused by the primary" not in text
    log = end(p, raw)
    assert len(primary.users.asked) == n
    assert "; rule=verify-db" in log


def test_one_connection_serves_a_session(mx, dns, primary):
    configure(mx, dns, primary.port)
    p, raw = session(mx)
    for a in OK_USERS + ("x1@example.test", "x2@example.test"):
        rcpt(raw, a)
    # A client RSET and a new transaction keep the callout connection.
    assert raw.cmd("RSET")[0] == 250
    assert raw.cmd("MAIL FROM:<s@sender.test>")[0] == 250
    assert rcpt(raw, "x3@example.test")[0] == 550
    end(p, raw)
    assert len(primary.users.asked) == 6
    assert len(primary.users.sessions) == 1


def test_postmaster_not_asked(mx, dns, primary):
    configure(mx, dns, primary.port)
    p, raw = session(mx)
    assert rcpt(raw, "PostMaster@example.test")[0] == 250
    end(p, raw)
    assert primary.users.asked == []


@pytest.mark.parametrize("policy", ["defer", "accept"])
def test_tempfail_is_never_5xx(mx, dns, primary, policy):
    primary.users.temp.add("busy@example.test")
    configure(mx, dns, primary.port, "verify-unknown-when-down %s" % policy)
    p, raw = session(mx)
    code, text = rcpt(raw, "busy@example.test")
    if policy == "defer":
        assert code == 450, text
        assert text.startswith("450 4.1.1 <busy@example.test>: Recipient "
                               "address rejected: unverified address")
    else:
        assert code == 250, text
    # The connection goes on after a 4xx.
    assert rcpt(raw, "ok@example.test")[0] == 250
    log = end(p, raw)
    if policy == "defer":
        assert "; rule=unverified" in log
    assert "busy@example.test" not in known(mx)
    assert len(primary.users.sessions) == 1


@pytest.mark.parametrize("reply", ["550 5.7.1 backup MX listed at a "
                                   "blocklist", "550 no such user",
                                   "554 5.2.1 mailbox disabled"])
def test_refusal_not_about_the_user_is_never_5xx(mx, dns, primary, reply):
    """Only 5.1.1-5.1.10 says the recipient does not exist.  A primary
    that refuses the backup itself (a 5.7.1 for our address), a bare 550
    or another 5xx is no verdict on the address: neither refused with a
    5xx (the sender would give up on a user the primary takes from it
    directly) nor remembered as invalid for verify-negative-ttl."""
    primary.users.rcpt_replies["someone@example.test"] = reply
    configure(mx, dns, primary.port)
    p, raw = session(mx)
    code, text = rcpt(raw, "someone@example.test")
    assert code == 450, text
    assert text.startswith("450 4.1.1 <someone@example.test>: Recipient "
                           "address rejected: unverified address"), text
    assert rcpt(raw, "nobody@example.test")[0] == 550
    end(p, raw)
    assert "someone@example.test" not in known(mx)
    assert "nobody@example.test" in known(mx)


def test_primary_down(mx, dns, primary):
    """Known verdicts decide while the primary is down; the unknown are
    deferred (or accepted under accept), never refused."""
    configure(mx, dns, primary.port)
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    assert rcpt(raw, "nobody@example.test")[0] == 550
    end(p, raw)
    primary.stop()
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    code, text = rcpt(raw, "nobody@example.test")
    assert code == 550 and text.startswith("550 5.1.1"), text
    code, text = rcpt(raw, "new@example.test")
    assert code == 450, text
    assert "4.1.1" in text and "primary unreachable" in text
    # Asked once in the session: the next unknown is not dialled again.
    t0 = time.time()
    assert rcpt(raw, "new2@example.test")[0] == 450
    assert time.time() - t0 < 0.5
    log = end(p, raw)
    assert "rule=verify-db" in log and "rule=unverified" in log
    assert "Connection refused" in log
    configure(mx, dns, primary.port, "verify-unknown-when-down accept")
    p, raw = session(mx)
    assert rcpt(raw, "new@example.test")[0] == 250
    assert rcpt(raw, "nobody@example.test")[0] == 550
    end(p, raw)


def test_no_primary_in_dns_is_not_5xx(mx, dns):
    """NXDOMAIN for the relay domain, and a domain where we are the best
    MX: the primary cannot be asked, 450."""
    mx.config("recipient-verify callout", "verify-timeout 2s")
    p, raw = session(mx)
    code, text = rcpt(raw, "a@example.test")
    assert code == 450, text
    end(p, raw)
    dns.mx("example.test", 10, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    p, raw = session(mx)
    assert rcpt(raw, "a@example.test")[0] == 450
    end(p, raw)


def test_tarpit_answered_within_timeout(mx, dns, primary):
    primary.users.tarpit.add("slow@example.test")
    configure(mx, dns, primary.port, "verify-timeout 2s")
    p, raw = session(mx)
    t0 = time.time()
    code, text = rcpt(raw, "slow@example.test")
    took = time.time() - t0
    assert code == 450, text
    assert took < 3.0, took
    log = end(p, raw)
    assert "timed out" in log


def test_tarpit_at_greeting(mx, dns):
    """A primary that accepts the connection and never greets."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.listen(5)
    try:
        configure(mx, dns, s.getsockname()[1], "verify-timeout 2s")
        p, raw = session(mx)
        t0 = time.time()
        assert rcpt(raw, "a@example.test")[0] == 450
        assert time.time() - t0 < 3.0
        end(p, raw)
    finally:
        s.close()


def test_primary_record_observed_and_heeded(mx, dns, primary):
    configure(mx, dns, primary.port)
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    end(p, raw)
    rec = open(os.path.join(mx.spool, "domains", "example.test.probe")).read()
    assert "up=1\n" in rec and "source=callout\n" in rec
    assert "host=mx1.example.test\n" in rec
    primary.stop()
    p, raw = session(mx)
    assert rcpt(raw, "new@example.test")[0] == 450
    end(p, raw)
    rec = open(os.path.join(mx.spool, "domains", "example.test.probe")).read()
    assert "up=0\n" in rec and "source=callout\n" in rec
    # Observed down just now: not called out again.
    p = mx.run("verify", "new2@example.test")
    assert p.returncode == 75
    assert b"primary observed down by callout" in p.stdout, p.stdout


def test_slots_full_is_cannot_ask(mx, dns, primary):
    configure(mx, dns, primary.port)
    p, raw = session(mx)                    # makes the spool
    end(p, raw)
    d = os.path.join(mx.spool, "domains")
    held = []
    for i in range(8):
        path = os.path.join(d, "example.test.callout%d" % i)
        f = open(path, "a")
        mx.give(path)
        fcntl.flock(f, fcntl.LOCK_EX)
        held.append(f)
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 450
    end(p, raw)
    assert primary.users.asked == []
    held.pop().close()
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    end(p, raw)
    for f in held:
        f.close()


def test_verdict_expiry(mx, dns, primary):
    configure(mx, dns, primary.port, "verify-positive-ttl 1s",
          "verify-negative-ttl 1s")
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    assert rcpt(raw, "gone@example.test")[0] == 550
    end(p, raw)
    # The primary changes its mind; the verdicts still hold for a second.
    primary.users.users.discard("ok@example.test")
    primary.users.users.add("gone@example.test")
    time.sleep(1.5)
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 550
    assert rcpt(raw, "gone@example.test")[0] == 250
    end(p, raw)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_database_while_sessions_run(mx, dns, primary, damage):
    configure(mx, dns, primary.port)
    p1, raw1 = session(mx)
    assert rcpt(raw1, "ok@example.test")[0] == 250
    db = os.path.join(mx.spool, "verify.lmdb")
    size = os.path.getsize(db)
    with open(db, "r+b") as f:
        if damage == "truncate":
            f.truncate(8192 + 100)
        else:
            f.write(os.urandom(size))
    p2, raw2 = session(mx)
    assert rcpt(raw2, "ok2@example.test")[0] == 250
    assert rcpt(raw2, "nobody@example.test")[0] == 550
    # The session that opened the database before goes on too.
    assert rcpt(raw1, "ok3@example.test")[0] == 250
    assert rcpt(raw1, "nobody2@example.test")[0] == 550
    end(p1, raw1)
    log = end(p2, raw2)
    assert glob.glob(db + ".corrupt-*"), log
    # Down now: nothing unknown is refused.
    primary.stop()
    p, raw = session(mx)
    for a in ("ok@example.test", "x@example.test"):
        code, text = rcpt(raw, a)
        assert code in (250, 450), text
    end(p, raw)


def test_verify_command_asks_the_primary(mx, dns, primary):
    configure(mx, dns, primary.port)
    p = mx.run("verify", "ok@example.test")
    assert p.returncode == 0, p.stderr
    assert b"callout: mx1.example.test[127.0.0.2]" in p.stdout
    assert b"said: 250 2.1.5 OK" in p.stdout
    p = mx.run("verify", "-j", "nobody@example.test")
    assert p.returncode == 1
    o = json.loads(p.stdout)
    assert (o["verdict"], o["source"]) == ("invalid", "callout")
    assert "550 5.1.1 no such user here" in o["reason"]
    # Remembered as RCPT would: the database answers now.
    p = mx.run("verify", "ok@example.test")
    assert b"database: valid by callout" in p.stdout
    primary.users.temp.add("busy@example.test")
    p = mx.run("verify", "busy@example.test")
    assert p.returncode == 75
    assert b"450 4.2.1 mailbox busy" in p.stdout
    configure(mx, dns, primary.port, "verify-unknown-when-down accept")
    p = mx.run("verify", "busy@example.test")
    assert p.returncode == 0
    assert b"accepted unverified" in p.stdout


@pytest.mark.parametrize("line,msg", [
    ("verify-timeout 0", "verify-timeout: must be at least 1s"),
    ("verify-timeout soon", "verify-timeout: bad duration"),
    ("verify-unknown-when-down maybe",
     'verify-unknown-when-down: "maybe" is neither defer nor accept'),
])
def test_bad_keys(mx, line, msg):
    mx.config(line)
    p = mx.run("verify", "a@example.test")
    assert p.returncode == 78
    assert msg.encode() in p.stderr
    assert (":%d:" % (len(mx.base_lines()) + 1)).encode() in p.stderr


def _session_many(port, addrs, out):
    import socket
    from conftest import RawSmtp
    try:
        raw = RawSmtp(socket.create_connection(("127.0.0.1", port), 30), 60)
        assert raw.reply()[0] == 220
        raw.cmd("EHLO c.test")
        raw.cmd("MAIL FROM:<s@sender.test>")
        for a in addrs:
            out.append((a,) + raw.cmd("RCPT TO:<%s>" % a))
        raw.cmd("QUIT")
        raw.close()
    except Exception as e:
        out.append(("error", 0, repr(e)))


def test_concurrent_sessions_while_flush_learns(mx, dns, primary):
    many = ["u%d@example.test" % i for i in range(150)]
    primary.users.users.update(many)
    primary.users.users.update("d%d@example.test" % i for i in range(40))
    configure(mx, dns, primary.port, "max-sessions 60",
          "max-sessions-per-client 60")
    for i in range(0, 40, 10):
        mx.inject("s@sender.test", ["d%d@example.test" % j
                                    for j in range(i, i + 10)],
                  "Subject: t\n\nhi\n")
    lp, port = mx.listen()
    flush = subprocess.Popen([MXFB, "flush"], env=mx.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = []
    threads = [threading.Thread(target=_session_many,
                                args=(port, many[i * 3:i * 3 + 3] +
                                      ["no%d@example.test" % i], out))
               for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    fo, fe = flush.communicate(timeout=120)
    assert flush.returncode == 0, fe
    assert [o for o in out if o[0] == "error"] == []
    assert len(out) == 200
    for a, code, text in out:
        assert code in (250, 450, 550), text
        if a.startswith("no"):
            assert code in (450, 550), text
        else:
            assert code in (250, 450), text
    k = known(mx)
    # No lost verdict: every callout answer and every delivery is known.
    for a, code, text in out:
        if code == 250:
            assert k[a]["verdict"] == "valid", a
        elif code == 550:
            assert k[a]["verdict"] == "invalid", a
    for i in range(40):
        assert k["d%d@example.test" % i]["source"] == "delivery"
    assert sum(1 for o in out if o[1] == 250) >= 100


def test_every_refusal_names_its_rule(mx, dns, tmp_path):
    """Relay refusals and the recipients file's, one line each."""
    rl = tmp_path / "rcpts"
    rl.write_text("alice@example.test\n")
    os.chmod(rl, 0o644)
    mx.config("recipients %s" % rl)
    p, raw = session(mx)
    assert rcpt(raw, "bob@example.test")[0] == 550
    assert rcpt(raw, "x@elsewhere.test")[0] == 550
    assert rcpt(raw, "a%b@example.test")[0] == 550
    assert rcpt(raw, "alice@example.test")[0] == 250
    log = end(p, raw)
    lines = [l for l in log.splitlines() if "reject: RCPT" in l]
    assert len(lines) == 3, log
    assert lines[0].endswith("to=<bob@example.test> proto=ESMTP "
                             "helo=<client.test>; rule=recipients-file")
    assert lines[1].endswith("; rule=relay") and "elsewhere.test" in lines[1]
    assert lines[2].endswith("; rule=relay") and "a%b@" in lines[2]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("level,name,want", [
    ("may", "mx1.example.test", 250),
    ("verify", "mx1.example.test", 250),
    ("verify", "other.test", 450),
])
def test_callout_starttls(mx, dns, tmp_path, level, name, want):
    """STARTTLS to the primary at tls-outbound as flush does: a primary
    that takes no MAIL before STARTTLS answers the callout; a certificate
    that does not verify is a primary that cannot be asked (450)."""
    import ssl
    from aiosmtpd.controller import Controller
    from certs import Certs
    certs = Certs(tmp_path / "certs")
    cert = certs.valid(name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.chain, cert.key)
    users = Users()
    c = Controller(users, hostname="127.0.0.2", port=free_port("127.0.0.2"),
                   decode_data=False, tls_context=ctx, require_starttls=True)
    c.start()
    try:
        configure(mx, dns, c.port, "tls-outbound %s" % level,
                  "tls-ca-file %s" % certs.ca)
        p, raw = session(mx)
        code, text = rcpt(raw, "ok@example.test")
        assert code == want, text
        log = end(p, raw)
        if want == 450:
            assert "rule=unverified" in log
            assert users.asked == []
        else:
            assert users.asked == ["ok@example.test"]
    finally:
        c.stop()


def test_database_missing_is_never_5xx(mx, dns, primary):
    """A database that cannot be made: logged, every lookup a miss; the
    primary still decides, and while it is down nothing is refused."""
    configure(mx, dns, primary.port, "verify-db /nonexistent/dir/v.lmdb")
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 250
    assert rcpt(raw, "nobody@example.test")[0] == 550
    log = end(p, raw)
    assert "verifying without it" in log
    primary.stop()
    p, raw = session(mx)
    assert rcpt(raw, "ok@example.test")[0] == 450
    assert rcpt(raw, "nobody@example.test")[0] == 450
    end(p, raw)
