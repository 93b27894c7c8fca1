"""`mxfb verify` and the recipient database (issue 14 points 1, 3, 5):
decisions from the recipients file and the database without network,
-j objects as the interface contract names them, -l/-d listing, -x
forgetting, exit codes (0 valid, 1 invalid, 75 undecided, 64 bad address,
78 database needed but recipient-verify off), flush learning from a real
primary (250 -> valid, 550 5.1.1 -> invalid, 550 without 5.1.x -> nothing),
50 readers while a writer writes, and a truncated or garbage database
rebuilt with the commands going on.  Loopback only.
"""
import glob
import json
import multiprocessing
import os
import re
import subprocess
import time

import pytest

from conftest import MXFB, USER

FAST = ("connect-timeout 2s", "command-timeout 3s", "data-timeout 3s",
        "data-done-timeout 3s")


def message():
    return ("From: s@sender.test\nTo: u@example.test\nSubject: t\n"
            "Message-ID: <t@sender.test>\n\nhello\n")


def setup_primary(mx, dns, port, *extra):
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % port, "recipient-verify callout", *(FAST + extra))


def primary_gone(mx):
    """verify asks the primary about what is not known (as RCPT does):
    aim it at a closed port, so that only the database answers."""
    mx.config(*[("smtp-port 1" if l.startswith("smtp-port") else l)
                for l in mx.extra])


def verify(mx, *args):
    return mx.run("verify", *args)


def objects(p):
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def learn(mx, dns, primary_factory):
    """A flush against a primary that knows ok@ and refuses nobody@ and
    policy@ (550 without 5.1.x): returns the primary's recorder."""
    c, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
    rec.rcpt_replies["policy@example.test"] = "550 5.7.1 not from you"
    setup_primary(mx, dns, c.port)
    mx.inject("s@sender.test", ["ok@Example.TEST", "nobody@example.test",
              "policy@example.test"], message())
    p = mx.run("flush", timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stdout.decode() == "delivered 1, deferred 0, failed 2\n"
    return rec


def test_learning_from_flush(mx, dns, primary_factory):
    learn(mx, dns, primary_factory)
    primary_gone(mx)
    now = time.time()
    p = verify(mx, "ok@example.test")
    assert p.returncode == 0, p.stderr
    assert b"valid (database: valid by delivery" in p.stdout
    p = verify(mx, "nobody@example.test")
    assert p.returncode == 1
    assert b"invalid (database: invalid by delivery" in p.stdout
    # A 5.7.1 refusal says nothing about the user: not learned.
    p = verify(mx, "policy@example.test")
    assert p.returncode == 75
    assert b"not known, the primary cannot be asked now" in p.stdout

    p = verify(mx, "-l", "-j")
    assert p.returncode == 0, p.stderr
    got = {o["addr"]: o for o in objects(p)}
    # The key keeps the local part and lower-cases the domain.
    assert set(got) == {"ok@example.test", "nobody@example.test"}
    ok, bad = got["ok@example.test"], got["nobody@example.test"]
    assert set(ok) == {"addr", "verdict", "source", "since", "expires"}
    assert (ok["verdict"], ok["source"]) == ("valid", "delivery")
    assert (bad["verdict"], bad["source"]) == ("invalid", "delivery")
    assert abs(ok["since"] - now) < 60
    assert ok["expires"] - ok["since"] == 31 * 86400
    assert bad["expires"] - bad["since"] == 3 * 86400
    # The file belongs to the user and only the user reads it.
    st = os.stat(os.path.join(mx.spool, "verify.lmdb"))
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == __import__("pwd").getpwnam(USER).pw_uid


def test_learning_off_by_default(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_primary(mx, dns, c.port)
    mx.config("smtp-port %d" % c.port, *FAST)
    mx.inject("s@sender.test", ["ok@example.test"], message())
    assert mx.run("flush").returncode == 0
    assert not os.path.exists(os.path.join(mx.spool, "verify.lmdb"))
    # verify still decides as RCPT would: every relay-domain address.
    p = verify(mx, "-j", "ok@example.test")
    assert p.returncode == 0
    assert objects(p)[0]["source"] == "config"
    p = verify(mx, "-l")
    assert p.returncode == 78
    assert b"recipient-verify is off" in p.stderr


def test_ttls_from_config(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
    setup_primary(mx, dns, c.port, "verify-positive-ttl 2h",
                  "verify-negative-ttl 10m")
    mx.inject("s@sender.test", ["ok@example.test", "nobody@example.test"],
              message())
    assert mx.run("flush").returncode == 0
    got = {o["addr"]: o for o in objects(verify(mx, "-l", "-j"))}
    assert got["ok@example.test"]["expires"] - got["ok@example.test"]["since"] == 7200
    assert got["nobody@example.test"]["expires"] - got["nobody@example.test"]["since"] == 600


def test_list_domain_and_forget(mx, dns, primary_factory):
    learn(mx, dns, primary_factory)
    primary_gone(mx)
    p = verify(mx, "-l", "-d", "EXAMPLE.test")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 2, lines
    assert re.match(r"nobody@example.test invalid delivery since "
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ until ", lines[0])
    assert verify(mx, "-l", "-d", "other.test").stdout == b""
    assert verify(mx, "-x", "nobody@example.test").returncode == 0
    p = verify(mx, "-x", "nobody@example.test", "ok@EXAMPLE.test")
    assert p.returncode == 1
    assert b"<nobody@example.test>: not known" in p.stderr
    assert verify(mx, "-l").stdout == b""
    assert verify(mx, "nobody@example.test").returncode == 75


def test_several_addresses_worst_wins(mx, dns, primary_factory):
    learn(mx, dns, primary_factory)
    primary_gone(mx)
    assert verify(mx, "ok@example.test", "ok@example.test").returncode == 0
    assert verify(mx, "ok@example.test", "who@example.test").returncode == 75
    p = verify(mx, "-j", "ok@example.test", "who@example.test",
               "nobody@example.test")
    assert p.returncode == 1
    o = objects(p)
    assert [x["verdict"] for x in o] == ["valid", "unknown", "invalid"]
    assert o[1]["source"] is None and o[1]["since"] is None


def test_recipients_file_decides(mx, tmp_path):
    rl = tmp_path / "rcpts"
    rl.write_text("alice@example.test\n")
    os.chmod(rl, 0o644)
    mx.config("recipients %s" % rl, "recipient-verify callout")
    p = verify(mx, "-j", "alice@example.test")
    assert p.returncode == 0
    o = objects(p)[0]
    assert (o["verdict"], o["source"]) == ("valid", "file")
    assert o["since"] == int(os.stat(rl).st_mtime)
    p = verify(mx, "bob@example.test")
    assert p.returncode == 1
    assert b"not listed in" in p.stdout
    assert verify(mx, "postmaster@example.test").returncode == 0
    p = verify(mx, "x@elsewhere.test")
    assert p.returncode == 1
    assert b"not a relay domain" in p.stdout
    p = verify(mx, "a%b@example.test")
    assert p.returncode == 1
    assert b"relay access denied" in p.stdout


@pytest.mark.parametrize("arg", ["noat", "@example.test", "a@", "a b@x.test",
                                 "a@b@c", "x\x1b[31m@example.test",
                                 "a" * 300 + "@example.test"])
def test_bad_addresses(mx, arg):
    mx.config("recipient-verify callout")
    for args in (("verify", arg), ("verify", "-x", arg)):
        p = mx.run(*args)
        assert p.returncode == 64, (arg, p.stderr)
        assert b"not an address" in p.stderr
        assert b"\x1b" not in p.stderr
    assert not os.path.exists(os.path.join(mx.spool, "verify.lmdb"))


def test_usage(mx):
    for args in (("verify",), ("verify", "-l", "a@example.test"),
                 ("verify", "-d", "x.test", "a@example.test"),
                 ("verify", "-x", "-j", "a@example.test"), ("verify", "-l", "-x")):
        assert mx.run(*args).returncode == 64, args
    p = mx.run("verify", "-h")
    assert p.returncode == 0 and b"-l [-j] [-d domain]" in p.stdout


def test_hostile_bytes_escaped(mx, dns, primary_factory):
    """A UTF-8 address with a bidi override, learned from a delivery, is
    listed escaped in text and valid JSON."""
    c, rec = primary_factory("127.0.0.2", enable_SMTPUTF8=True)
    setup_primary(mx, dns, c.port)
    addr = "j\u00f6rg\u202e@example.test"
    mx.run("inject", "-f", "s@sender.test", addr, input=message(), check=True)
    assert mx.run("flush").returncode == 0
    p = verify(mx, "-l")
    assert "j\u00f6rg\\u202e@example.test".encode() in p.stdout
    assert "\u202e".encode() not in p.stdout
    o = objects(verify(mx, "-l", "-j"))
    assert o[0]["addr"] == addr
    assert b"\\u202e" in verify(mx, "-l", "-j").stdout


def _verify_many(args):
    conf, n = args
    env = dict(os.environ, MXFB_CONFIG=conf)
    bad = []
    for _ in range(n):
        p = subprocess.run([MXFB, "verify", "ok@example.test"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode not in (0, 75) or p.stderr:
            bad.append((p.returncode, p.stderr))
    return bad


def test_concurrent_readers_and_writer(mx, dns, primary_factory):
    learn(mx, dns, primary_factory)
    # A writer forgets and re-learns while 50 readers verify.
    stop = time.time() + 8
    with multiprocessing.Pool(50) as pool:
        res = pool.map_async(_verify_many, [(mx.conf, 10)] * 50)
        writes = 0
        while not res.ready() and time.time() < stop + 30:
            p = verify(mx, "-x", "nobody@example.test")
            assert p.returncode in (0, 1), p.stderr
            mx.inject("s@sender.test", ["nobody@example.test"], message())
            p = mx.run("flush", timeout=60)
            assert p.returncode == 0, p.stderr
            writes += 1
        bad = [b for r in res.get(120) for b in r]
    assert bad == []
    assert writes >= 1
    assert verify(mx, "ok@example.test").returncode == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty-meta"])
def test_damaged_database_rebuilt(mx, dns, primary_factory, damage):
    learn(mx, dns, primary_factory)
    primary_gone(mx)
    db = os.path.join(mx.spool, "verify.lmdb")
    size = os.path.getsize(db)
    with open(db, "r+b") as f:
        if damage == "truncate":
            # The two meta pages stay; the pages they name go.
            assert size > 8192 + 100
            f.truncate(8192 + 100)
        elif damage == "garbage":
            f.write(os.urandom(size))
        else:
            f.write(b"\0" * 8192)
    p = verify(mx, "ok@example.test")
    assert p.returncode == 75, p.stderr
    assert b"renamed to" in p.stderr
    assert glob.glob(db + ".corrupt-*")
    # A fresh database: flush learns again, verify goes on.
    c, rec = primary_factory("127.0.0.3")
    mx.inject("s@sender.test", ["ok@example.test"], message())
    dns.clear("mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.3")
    mx.config("smtp-port %d" % c.port, "recipient-verify callout", *FAST)
    assert mx.run("flush").returncode == 0
    p = verify(mx, "ok@example.test")
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""


def test_link_at_database_path_not_followed(mx, tmp_path):
    mx.config("recipient-verify callout")
    mx.run("inject", "-f", "s@sender.test", "a@example.test",
           input=message(), check=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.symlink(str(victim), os.path.join(mx.spool, "verify.lmdb"))
    p = verify(mx, "a@example.test")
    assert p.returncode == 75
    assert victim.read_bytes() == b"precious"
    assert not os.path.islink(os.path.join(mx.spool, "verify.lmdb"))


@pytest.mark.parametrize("line,msg", [
    ("recipient-verify maybe", 'recipient-verify: "maybe" is neither off nor callout'),
    ("verify-positive-ttl 0", "verify-positive-ttl: must be at least 1s"),
    ("verify-negative-ttl 3x", "verify-negative-ttl: bad duration"),
    ("verify-db", 'missing value for "verify-db"'),
])
def test_bad_keys(mx, line, msg):
    mx.config(line)
    p = mx.run("verify", "a@example.test")
    assert p.returncode == 78
    assert msg.encode() in p.stderr
    assert (":%d:" % (len(mx.base_lines()) + 1)).encode() in p.stderr


def test_verify_db_relative_to_spool(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_primary(mx, dns, c.port, "verify-db known.db")
    mx.inject("s@sender.test", ["ok@example.test"], message())
    assert mx.run("flush").returncode == 0
    assert os.path.exists(os.path.join(mx.spool, "known.db"))
    assert os.path.exists(os.path.join(mx.spool, "known.db-lock"))
    assert verify(mx, "ok@example.test").returncode == 0


def test_database_failure_changes_no_delivery(mx, dns, primary_factory):
    """The database cannot be made (its directory does not exist): flush
    logs it once per worker and delivers and bounces as always."""
    c, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
    setup_primary(mx, dns, c.port, "verify-db /nonexistent/dir/v.lmdb")
    mx.inject("s@sender.test", ["ok@example.test", "nobody@example.test"],
              message())
    p = mx.run("flush")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == "delivered 1, deferred 0, failed 1\n"
    assert b"not learning from deliveries" in p.stderr
    assert len(rec.messages) == 1
    # verify goes on: nothing known, undecided.
    primary_gone(mx)
    assert verify(mx, "ok@example.test").returncode == 75
