"""What the backup knows about each primary, and two refusals from it
(issue 14 points 6, 7, 8 in part): probe and flush write the domain's
primary record (up with the EHLO capabilities, down keeping them);
receive with `accept-when-primary-up no` answers 450 4.7.0 naming the
primary while its last observation is "up" and younger than
`primary-up-window` (postmaster and etrn-allow clients excepted); a
declared SIZE above the primary's limit is 552 5.3.4 and SMTPUTF8 mail
for a primary without it 553 5.6.7, from the last EHLO seen; each
refusal's log line names its rule; a garbled record is no record;
`status -s` shows the recipients the verify database knows.  Loopback
only; the record's time is written directly to test the window.
"""
import json
import os
import re
import time

import pytest

from conftest import give_to_user, receive_stdio

FAST = ("connect-timeout 2s", "command-timeout 3s", "data-timeout 3s",
        "data-done-timeout 3s")


def message():
    return ("From: s@sender.test\nTo: u@example.test\nSubject: t\n"
            "Message-ID: <t@sender.test>\n\nhello\n")


def record_path(mx, domain="example.test"):
    return os.path.join(mx.spool, "domains", domain + ".probe")


def read_record(mx, domain="example.test"):
    with open(record_path(mx, domain)) as f:
        lines = f.read().splitlines()
    assert lines[0] == "mxfb-primary 1", lines
    return dict(l.split("=", 1) for l in lines[1:])


def write_record(mx, up=1, age=0, host="mx1.example.test", ehlo=None,
                 raw=None, domain="example.test"):
    """The record as probe would leave it, age seconds old."""
    if not os.path.isdir(os.path.join(mx.spool, "domains")):
        mx.inject("s@sender.test", ["someone@elsewhere.test"], message())
    t = int(time.time()) - age
    if raw is None:
        raw = ("mxfb-primary 1\nup=%d\ntime=%d\nlast_up=%d\nhost=%s\n"
               "source=probe\n" % (up, t, t if up else t - 3600, host))
        if ehlo is not None:
            raw += "ehlo=%s\n" % ehlo
        raw = raw.encode()
    path = record_path(mx, domain)
    with open(path, "wb") as f:
        f.write(raw)
    give_to_user(path)


def session(mx, ip=None):
    env = {"TCPREMOTEIP": ip} if ip else None
    proc, raw = receive_stdio(mx, env=env)
    assert raw.cmd("EHLO client.example.org")[0] == 250
    return proc, raw


def rcpt(mx, rcpt_to="u@example.test", mail_params="", ip=None):
    """One RCPT after MAIL; returns (code, text, receive's log)."""
    proc, raw = session(mx, ip)
    code, text = raw.cmd("MAIL FROM:<s@sender.test>%s" % mail_params)
    assert code == 250, text
    code, text = raw.cmd("RCPT TO:<%s>" % rcpt_to)
    raw.cmd("QUIT")
    assert proc.wait(10) == 0
    return code, text, proc.stderr.read().decode(errors="replace")


def refuse_when_up(mx, *extra):
    mx.config("accept-when-primary-up no", *extra)


def test_up_and_young_is_450_naming_the_primary(mx):
    refuse_when_up(mx)
    write_record(mx, up=1, age=30)
    code, text, log = rcpt(mx)
    assert code == 450
    assert text == ("450 4.7.0 <u@example.test>: primary MX "
                    "mx1.example.test is up, deliver there")
    lines = [l for l in log.splitlines() if "reject: RCPT" in l]
    assert len(lines) == 1
    assert re.search(r"reject: RCPT from unknown\[local\]: 450 4\.7\.0 "
                     r"<u@example\.test>: primary MX mx1\.example\.test "
                     r"is up, deliver there;"
                     r" from=<s@sender\.test> to=<u@example\.test> .*"
                     r"; rule=primary-up$", lines[0]), lines[0]


def test_up_by_default_is_accepted(mx):
    write_record(mx, up=1, age=30)
    code, text, _ = rcpt(mx)
    assert code == 250, text


def test_up_but_older_than_the_window_is_accepted(mx):
    refuse_when_up(mx)
    write_record(mx, up=1, age=601)
    code, text, _ = rcpt(mx)
    assert code == 250, text
    # A longer window makes the same record count.
    refuse_when_up(mx, "primary-up-window 1h")
    code, text, _ = rcpt(mx)
    assert code == 450, text


def test_down_is_accepted(mx):
    refuse_when_up(mx)
    write_record(mx, up=0, age=10)
    code, text, _ = rcpt(mx)
    assert code == 250, text


def test_postmaster_and_etrn_clients_are_exempt(mx):
    refuse_when_up(mx, "etrn-allow 192.0.2.0/24")
    write_record(mx, up=1, age=10)
    code, text, _ = rcpt(mx, rcpt_to="postmaster@example.test")
    assert code == 250, text
    code, text, _ = rcpt(mx, ip="192.0.2.5")
    assert code == 250, text
    code, text, _ = rcpt(mx, ip="198.51.100.1")
    assert code == 450, text


def test_size_above_the_primary_limit_is_552(mx):
    write_record(mx, up=0, age=10, ehlo="SIZE=1000 8BITMIME SMTPUTF8")
    code, text, log = rcpt(mx, mail_params=" SIZE=1001")
    assert code == 552, text
    assert text.startswith("552 5.3.4 <u@example.test>: message size 1001 "
                           "exceeds the limit of primary MX "
                           "mx1.example.test (1000)")
    assert re.search(r"reject: RCPT from unknown\[local\]: 552 5\.3\.4 .* "
                     r"rule=primary-size$", log, re.M), log
    code, text, _ = rcpt(mx, mail_params=" SIZE=1000")
    assert code == 250, text
    code, text, _ = rcpt(mx)
    assert code == 250, text


def test_smtputf8_to_a_primary_without_it_is_553(mx):
    write_record(mx, up=1, age=10, ehlo="SIZE=100000 8BITMIME")
    code, text, log = rcpt(mx, mail_params=" SMTPUTF8")
    assert code == 553, text
    assert text == ("553 5.6.7 <u@example.test>: primary MX "
                    "mx1.example.test does not accept SMTPUTF8 mail")
    assert re.search(r"reject: RCPT from unknown\[local\]: 553 5\.6\.7 .* "
                     r"rule=primary-smtputf8$", log, re.M), log
    code, text, _ = rcpt(mx)
    assert code == 250, text


def test_no_ehlo_seen_accepts_as_today(mx):
    write_record(mx, up=0, age=10)
    code, text, _ = rcpt(mx, mail_params=" SIZE=9999999 SMTPUTF8")
    assert code == 250, text


@pytest.mark.parametrize("raw", [
    b"\x00\xff garbage \x1b[31m",
    b"mxfb-primary 1\nup=1\ntime=99999999999999999999999\n",
    b"mxfb-primary 1\nup=1\nup=1\ntime=1\nlast_up=1\nsource=probe\n",
    b"mxfb-primary 1\n" + b"x=" + b"A" * 5000 + b"\n",
    b"",
], ids=["binary", "huge-number", "repeated-key", "too-long", "empty"])
def test_garbled_record_is_no_record(mx, raw):
    refuse_when_up(mx)
    write_record(mx, raw=raw)
    code, text, log = rcpt(mx, mail_params=" SIZE=9999999 SMTPUTF8")
    assert code == 250, text
    assert "the primary record of example.test: taken as none" in log
    p = mx.run("status", "-s", "-j")
    assert p.returncode == 0
    row = [json.loads(l) for l in p.stdout.decode().splitlines()
           if json.loads(l)["domain"] == "elsewhere.test"]
    assert row


def setup_primary(mx, dns, port, *extra):
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % port, *(FAST + extra))


def test_probe_records_up_then_down_keeping_the_capabilities(
        mx, dns, primary_factory):
    c, _ = primary_factory("127.0.0.2", data_size_limit=5000,
                           enable_SMTPUTF8=False)
    setup_primary(mx, dns, c.port, "accept-when-primary-up no")
    mx.inject("s@sender.test", ["a@example.test"], message())
    before = int(time.time())
    mx.run("probe", "-q", "example.test")
    r = read_record(mx)
    assert r["up"] == "1" and r["source"] == "probe"
    assert r["host"] == "mx1.example.test"
    assert before <= int(r["time"]) == int(r["last_up"]) <= time.time()
    assert r["ehlo"].split() == ["SIZE=5000", "8BITMIME"]
    code, text, _ = rcpt(mx)
    assert code == 450 and "mx1.example.test" in text
    code, text, _ = rcpt(mx, mail_params=" SMTPUTF8")
    assert code == 553, text
    c.stop()
    time.sleep(1)
    p = mx.run("probe", "-q", "example.test")
    assert p.returncode == 2
    d = read_record(mx)
    assert d["up"] == "0" and d["source"] == "probe"
    assert int(d["time"]) >= int(r["time"])
    assert d["last_up"] == r["last_up"] and d["host"] == r["host"]
    assert d["ehlo"] == r["ehlo"]
    # Down: accepted, but never mail the primary could not take.
    code, text, _ = rcpt(mx)
    assert code == 250, text
    code, text, _ = rcpt(mx, mail_params=" SIZE=6000")
    assert code == 552, text
    # status -s keeps showing when it was last up, and which.
    e = {o["domain"]: o for o in (json.loads(l) for l in mx.run(
        "status", "-s", "-j", check=True).stdout.decode().splitlines())}
    assert e["example.test"]["last_up"] == int(r["last_up"])
    assert e["example.test"]["last_up_host"] == "mx1.example.test"


def test_flush_records_up_and_down(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2", enable_SMTPUTF8=True)
    setup_primary(mx, dns, c.port)
    mx.inject("s@sender.test", ["a@example.test"], message())
    p = mx.run("flush", timeout=120)
    assert p.returncode == 0, p.stderr
    assert len(rec.messages) == 1
    r = read_record(mx)
    assert r["up"] == "1" and r["source"] == "flush"
    assert r["host"] == "mx1.example.test"
    assert "SMTPUTF8" in r["ehlo"].split()
    assert "8BITMIME" in r["ehlo"].split()
    c.stop()
    time.sleep(1)
    mx.inject("s@sender.test", ["b@example.test"], message())
    p = mx.run("flush", "-f", timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == "delivered 0, deferred 1, failed 0\n"
    d = read_record(mx)
    assert d["up"] == "0" and d["source"] == "flush"
    assert d["last_up"] == r["last_up"] and d["ehlo"] == r["ehlo"]


def test_old_probe_note_is_read_and_replaced(mx, dns, primary_factory):
    """An older mxfb's note: status -s shows it, receive goes by it, the
    next probe rewrites it as a record."""
    mx.config("accept-when-primary-up no")
    t = int(time.time()) - 20
    write_record(mx, raw=("time=%d host=mx9.example.test address=mx9."
                          "example.test[127.0.0.9]:25 latency=2ms ehlo="
                          "PIPELINING SIZE=1000 8BITMIME\n" % t).encode())
    mx.inject("s@sender.test", ["a@example.test"], message())
    e = {o["domain"]: o for o in (json.loads(l) for l in mx.run(
        "status", "-s", "-j", check=True).stdout.decode().splitlines())}
    assert e["example.test"]["last_up"] == t
    assert e["example.test"]["last_up_host"] == "mx9.example.test"
    code, text, _ = rcpt(mx)
    assert code == 450 and "mx9.example.test" in text
    code, text, _ = rcpt(mx, mail_params=" SIZE=1001")
    assert code == 552
    c, _ = primary_factory("127.0.0.2")
    setup_primary(mx, dns, c.port)
    mx.run("probe", "-q", "example.test")
    assert read_record(mx)["host"] == "mx1.example.test"


def test_bad_keys(mx):
    for line, msg in (
            ("accept-when-primary-up maybe",
             'accept-when-primary-up: "maybe" is neither yes nor no'),
            ("primary-up-window soon", "primary-up-window: bad duration"),
            ("primary-up-window 0", "primary-up-window")):
        mx.config(line)
        p = mx.run("status")
        assert p.returncode == 78, (line, p.stderr)
        err = p.stderr.decode()
        assert "mxfb.conf:9:" in err and msg in err, err


def test_status_known_recipients(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    rec.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
    setup_primary(mx, dns, c.port, "recipient-verify callout")
    mx.inject("s@sender.test", ["ok@example.test", "nobody@example.test"],
              message())
    p = mx.run("flush", timeout=120)
    assert p.returncode == 0, p.stderr
    mx.inject("s@sender.test", ["later@example.test"], message())
    rows = {o["domain"]: o for o in (json.loads(l) for l in mx.run(
        "status", "-s", "-j", check=True).stdout.decode().splitlines())}
    assert rows["example.test"]["known_recipients"] == 2
    out = mx.run("status", "-s", check=True).stdout.decode().splitlines()
    assert out[0].split()[:5] == ["Domain", "Messages", "Bytes", "Known",
                                  "Oldest"]
    line = [l for l in out if l.startswith("example.test ")][0]
    assert line.split()[3] == "2"
    # Without recipient-verify callout: no column, no field.
    mx.config("smtp-port %d" % c.port)
    rows = [json.loads(l) for l in mx.run(
        "status", "-s", "-j", check=True).stdout.decode().splitlines()]
    assert all("known_recipients" not in r for r in rows)
    out = mx.run("status", "-s", check=True).stdout.decode().splitlines()
    assert "Known" not in out[0]
