"""inject and status: line ends, addresses, the listing, -s, -j (the
interface contract's fields, exactly), status ID, status -b round trips,
exit codes."""
import json
import os
import pwd
import re

import pytest

from conftest import tmpfs_options

JSON_FIELDS = {"id", "size", "arrival", "sender", "held", "next_retry",
               "recipients"}
RCPT_FIELDS = {"addr", "state", "attempts", "last_error"}
MSG_LF = b"Subject: hello\nFrom: a@example.org\n\nline one\nline two\n"
MSG_CRLF = MSG_LF.replace(b"\n", b"\r\n")


def body_of(mx, qid):
    p = mx.run("status", "-b", qid, check=True)
    return p.stdout


def strip_received(raw, qid):
    """Split our own Received header (it may be folded) off the message."""
    m = re.match(rb"Received: by ([^ ]+) \(mxfb inject, uid (\d+)\)\r\n?"
                 rb"[ \t]*id ([0-9A-Z]+); ([^\r\n]+)\r\n", raw)
    assert m, raw[:200]
    assert m.group(1) == b"backup.example.test"
    assert int(m.group(2)) == os.getuid()
    assert m.group(3).decode() == qid
    return raw[m.end():]


def queue_ids(mx):
    return [o["id"] for o in mx.status_json()]


def test_inject_lf_stored_as_crlf(mx):
    qid = mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    raw = body_of(mx, qid)
    assert strip_received(raw, qid) == MSG_CRLF
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_inject_crlf_kept_and_mixed(mx):
    qid = mx.inject("a@example.org", ["u@example.test"], MSG_CRLF)
    assert strip_received(body_of(mx, qid), qid) == MSG_CRLF
    mixed = b"Subject: x\r\n\nbody\r\nmore\n"
    qid2 = mx.inject("a@example.org", ["u@example.test"], mixed)
    assert strip_received(body_of(mx, qid2), qid2) == \
        b"Subject: x\r\n\r\nbody\r\nmore\r\n"


def test_inject_last_line_without_newline(mx):
    qid = mx.inject("a@example.org", ["u@example.test"], b"Subject: x\n\nend")
    assert strip_received(body_of(mx, qid), qid) == b"Subject: x\r\n\r\nend\r\n"


def test_inject_prints_id_and_logs(mx):
    p = mx.run("inject", "-f", "a@example.org", "u@example.test",
               input=MSG_LF, check=True)
    qid = p.stdout.decode().strip()
    assert re.fullmatch(r"[0-9A-Z]{17}", qid)
    err = p.stderr.decode()
    size = len(body_of(mx, qid))
    assert re.search(r"%s: client=local, from=<a@example.org>, size=%d, "
                     r"nrcpt=1, uid=%d$" % (qid, size, os.getuid()), err, re.M), err


@pytest.mark.parametrize("data", [b"Subject: x\r\n\r\nbare\rCR\r\n",
                                  b"Subject: x\n\nNUL\x00byte\n",
                                  b"Subject: x\n\nends in CR\r"])
def test_inject_refuses_bad_data(mx, data):
    mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    p = mx.run("inject", "-f", "a@example.org", "u@example.test", input=data)
    assert p.returncode == 65, p.stderr
    assert p.stdout == b""
    assert len(queue_ids(mx)) == 1
    assert os.listdir(os.path.join(mx.spool, "tmp")) == []


@pytest.mark.parametrize("addr", ["", "user", "a b@example.test",
                                  "<u@example.test", "a@b@example.test",
                                  "@example.test", "u@", "u\x01@example.test",
                                  "x" * 250 + "@example.test"])
def test_inject_refuses_bad_recipient(mx, addr):
    mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    p = mx.run("inject", "-f", "a@example.org", "ok@example.test", addr,
               input=MSG_LF)
    assert p.returncode == 65, p.stderr
    assert "recipient" in p.stderr.decode()
    assert len(queue_ids(mx)) == 1


@pytest.mark.parametrize("sender", ["a b@example.org", "<x@example.org",
                                    "nobody", "a@b@c"])
def test_inject_refuses_bad_sender(mx, sender):
    mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    p = mx.run("inject", "-f", sender, "u@example.test", input=MSG_LF)
    assert p.returncode == 65, p.stderr
    assert len(queue_ids(mx)) == 1


def test_inject_usage(mx):
    p = mx.run("inject", "-f", "a@example.org", input=MSG_LF)
    assert p.returncode == 64
    assert "usage" in p.stderr.decode()
    p = mx.run("inject", "-Z", "u@example.test", input=MSG_LF)
    assert p.returncode == 64
    p = mx.run("inject", "-h")
    assert p.returncode == 0 and b"usage: mxfb inject" in p.stdout


def test_inject_null_and_default_sender(mx):
    q1 = mx.inject("", ["u@example.test"], MSG_LF)
    p = mx.run("inject", "u@example.test", input=MSG_LF, check=True)
    q2 = p.stdout.decode().strip()
    objs = {o["id"]: o for o in mx.status_json()}
    assert objs[q1]["sender"] == ""
    user = pwd.getpwuid(os.getuid()).pw_name
    assert objs[q2]["sender"] == "%s@backup.example.test" % user


def test_inject_any_domain_and_dedup(mx):
    qid = mx.inject("a@example.org", ["x@elsewhere.invalid", "u@example.test",
                                      "U@Example.Test"], MSG_LF)
    (o,) = mx.status_json()
    assert o["id"] == qid
    assert [r["addr"] for r in o["recipients"]] == ["x@elsewhere.invalid",
                                                   "u@example.test"]


def test_status_json_fields_exact(mx):
    qid = mx.inject("a@example.org", ["u@example.test", "v@example.test"],
                    MSG_LF)
    p = mx.run("status", "-j", check=True)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1
    o = json.loads(lines[0])
    assert JSON_FIELDS <= set(o)
    assert o["id"] == qid
    assert isinstance(o["size"], int) and o["size"] == len(body_of(mx, qid))
    assert isinstance(o["arrival"], int)
    assert abs(o["arrival"] - __import__("time").time()) < 120
    assert o["sender"] == "a@example.org"
    assert o["held"] is False
    assert isinstance(o["next_retry"], int)
    assert o["next_retry"] <= __import__("time").time() + 1
    assert len(o["recipients"]) == 2
    for r, addr in zip(o["recipients"], ["u@example.test", "v@example.test"]):
        assert RCPT_FIELDS <= set(r)
        assert r["addr"] == addr
        assert r["state"] == "queued"
        assert r["attempts"] == 0 and isinstance(r["attempts"], int)
        assert r["last_error"] is None


def test_status_json_escaping(mx):
    sender = 'q"uo\\te@example.org'
    rcpt = "j\u00f6rg@example.test"
    mx.inject(sender, [rcpt], MSG_LF)
    p = mx.run("status", "-j", check=True)
    line = p.stdout.decode("utf-8")
    assert "\u00f6" in line            # valid UTF-8 passes through
    o = json.loads(line)
    assert o["sender"] == sender
    assert o["recipients"][0]["addr"] == rcpt


def test_status_arrival_order_and_listing(mx):
    ids = [mx.inject("s%d@example.org" % i, ["r%d@example.test" % i], MSG_LF)
           for i in range(3)]
    assert queue_ids(mx) == ids
    p = mx.run("status", check=True)
    out = p.stdout.decode()
    pos = [out.index(i) for i in ids]
    assert pos == sorted(pos)
    for i in range(3):
        assert "<s%d@example.org>" % i in out
        assert re.search(r"r%d@example.test\s+queued, 0 attempts" % i, out)
    total = sum(len(body_of(mx, i)) for i in ids)
    m = re.search(r"^-- (\d+) KiB in 3 messages\.$", out, re.M)
    assert m and int(m.group(1)) == (total + 1023) // 1024


def test_status_empty_queue_prints_nothing(mx):
    qid = mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    mx.run("delete", qid, check=True)
    for args in ((), ("-j",), ("-s",), ("-s", "-j")):
        p = mx.run("status", *args, check=True)
        assert p.stdout == b"", args


def test_status_summary(mx):
    mx.inject("a@example.org", ["u@b.example.test"], MSG_LF)
    q2 = mx.inject("a@example.org", ["u@example.test", "v@EXAMPLE.test",
                                     "w@b.example.test"], MSG_LF + b"x" * 3000)
    q3 = mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    objs = {o["id"]: o for o in mx.status_json()}
    p = mx.run("status", "-s", "-j", check=True)
    rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert [r["domain"] for r in rows] == ["b.example.test", "example.test"]
    for r in rows:
        assert set(r) >= {"domain", "messages", "bytes", "oldest"}
    b, e = rows
    first = min(objs.values(), key=lambda o: o["id"])
    assert b["messages"] == 2
    assert b["bytes"] == first["size"] + objs[q2]["size"]
    assert b["oldest"] == first["arrival"]
    assert e["messages"] == 2           # q2 counted once for two recipients
    assert e["bytes"] == objs[q2]["size"] + objs[q3]["size"]
    assert e["oldest"] == objs[q2]["arrival"]
    p = mx.run("status", "-s", check=True)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 3
    assert lines[1].split()[:3] == ["b.example.test", "2", str(b["bytes"])]
    assert lines[2].split()[:3] == ["example.test", "2", str(e["bytes"])]


def test_status_id_shows_envelope_and_headers(mx):
    qid = mx.inject("a@example.org", ["u@example.test"],
                    b"Subject: the subject\nX-Test: 1\n\nBODYTEXT\n")
    p = mx.run("status", qid, check=True)
    out = p.stdout.decode()
    assert "*** ENVELOPE %s ***" % qid in out
    assert "sender: <a@example.org>" in out
    assert "recipient: <u@example.test> queued, 0 attempts" in out
    assert "client: local" in out
    assert re.search(r"checksum: blake2b-256:[0-9a-f]{64}", out)
    assert "Subject: the subject\nX-Test: 1\n" in out
    assert "Received: by backup.example.test" in out
    assert "BODYTEXT" not in out
    assert "\r" not in out
    p = mx.run("status", "-j", qid, check=True)
    assert json.loads(p.stdout)["id"] == qid


def test_status_unknown_and_bad_ids(mx):
    qid = mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    missing = qid[:-1] + ("0" if qid[-1] != "0" else "1")
    p = mx.run("status", missing, qid)
    assert p.returncode == 1
    assert "%s: no such message" % missing in p.stderr.decode()
    assert "*** ENVELOPE %s ***" % qid in p.stdout.decode()
    p = mx.run("status", "-b", missing)
    assert p.returncode == 1 and p.stdout == b""
    for bad in ("../x", qid.lower(), qid + "0", ""):
        p = mx.run("status", bad)
        assert p.returncode == 64, bad
        assert p.stdout == b""
    p = mx.run("status", "-b")
    assert p.returncode == 64
    p = mx.run("status", "-s", qid)
    assert p.returncode == 64


def test_status_b_round_trip(mx):
    data = bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"")
    msg = b"Subject: binary\r\n\r\n" + data + b"\r\n.\r\n..dots\r\n"
    q1 = mx.inject("a@example.org", ["u@example.test"], msg)
    raw1 = body_of(mx, q1)
    assert strip_received(raw1, q1) == msg
    assert len(raw1) == mx.status_json(q1)[0]["size"]
    # Re-queue what status -b saved: the same bytes under a new Received.
    q2 = mx.inject("a@example.org", ["u@example.test"], raw1)
    assert q2 != q1
    raw2 = body_of(mx, q2)
    assert strip_received(raw2, q2) == raw1
    p = mx.run("status", "-b", q1, q2, check=True)
    assert p.stdout == raw1 + raw2


def test_status_bad_option(mx):
    p = mx.run("status", "-x")
    assert p.returncode == 64
    p = mx.run("status", "-h")
    assert p.returncode == 0 and b"usage: mxfb status" in p.stdout


def test_status_json_escapes_peer_text(mx):
    """A primary's reply text is stored as it came: control characters and
    invalid UTF-8 must still give valid JSON (\\u00XX, U+FFFD), and the
    listing must not pass them to the terminal.  The state file is written
    by hand in the format spool/INTERNALS documents (S1 ... end)."""
    qid = mx.inject("a@example.org", ["j\u00f6rg@example.test"], MSG_LF)
    state = (b"S1\nnext-retry 1895900000\nwarned 0\n"
             b"rcpt j\xc3\xb6rg@example.test\nstate deferred\nattempts 3\n"
             b"last-attempt 1795837639\n"
             b"last-error 451%204.3.0%20x%01y\xffz\xc3\"q\"\\%0A\n"
             b"remote-mta mx1.example.test\nreported 0\nend\n")
    with open(os.path.join(mx.spool, "state", qid), "wb") as f:
        f.write(state)
    raw = mx.run("status", "-j", check=True).stdout
    assert b"\\u0001" in raw and b"\\ufffd" in raw
    assert all(b >= 0x20 for b in raw.rstrip(b"\n"))
    (o,) = [json.loads(l) for l in raw.decode("utf-8").splitlines()]
    r = o["recipients"][0]
    assert r["addr"] == "j\u00f6rg@example.test"
    assert r["state"] == "deferred" and r["attempts"] == 3
    assert r["last_error"] == '451 4.3.0 x\x01y\ufffdz\ufffd"q"\\\n'
    assert o["next_retry"] == 1895900000
    listing = mx.run("status", check=True).stdout
    assert b"\x01" not in listing and b"\xff" not in listing
    assert "j\u00f6rg@example.test  deferred, 3 attempts".encode() in listing
    assert b"(451 4.3.0 x\\x01y\\xffz\\xc3\"q\"\\\\\\x0a)" in listing


def test_status_summary_ignores_trailing_dot_and_case(mx):
    """example.org. and EXAMPLE.org are example.org, as flush groups them:
    one line, a message with both spellings counted once."""
    q1 = mx.inject("a@example.org", ["u@example.org"], MSG_LF)
    q2 = mx.inject("a@example.org", ["v@example.org."], MSG_LF)
    q3 = mx.inject("a@example.org", ["w@EXAMPLE.Org.", "x@example.org"],
                   MSG_LF + b"x" * 100)
    sizes = {o["id"]: o["size"] for o in mx.status_json()}
    rows = [json.loads(l) for l in
            mx.run("status", "-s", "-j", check=True).stdout.splitlines()]
    assert len(rows) == 1, rows
    assert rows[0]["domain"] == "example.org"
    assert rows[0]["messages"] == 3
    assert rows[0]["bytes"] == sizes[q1] + sizes[q2] + sizes[q3]
    lines = mx.run("status", "-s", check=True).stdout.decode().splitlines()
    assert len(lines) == 2 and lines[1].split()[:2] == ["example.org", "3"]


def test_status_summary_shows_last_probe(mx, dns, primary_factory):
    """probe records a primary it found up; status -s shows when and which."""
    ctl, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.a("backup.example.test", "127.0.0.9")
    mx.config("smtp-port %d" % ctl.port,
              "relay-domain other.test via [127.0.0.3]:%d" % ctl.port)
    mx.inject("a@example.org", ["u@example.test", "v@other.test"], MSG_LF)
    before = {r["domain"]: r for r in
              (json.loads(l) for l in mx.run("status", "-s", "-j", check=True)
               .stdout.decode().splitlines())}
    assert before["example.test"].get("last_up") is None
    mx.run("probe", "example.test")
    rows = {r["domain"]: r for r in
            (json.loads(l) for l in mx.run("status", "-s", "-j", check=True)
             .stdout.decode().splitlines())}
    e = rows["example.test"]
    assert isinstance(e["last_up"], int)
    assert abs(e["last_up"] - __import__("time").time()) < 60
    assert e["last_up_host"] == "mx1.example.test"
    assert rows["other.test"]["last_up"] is None
    out = mx.run("status", "-s", check=True).stdout.decode()
    assert re.search(r"^example\.test .*\(mx1\.example\.test\)$", out, re.M)
    assert re.search(r"^other\.test .* never$", out, re.M)


def test_status_on_a_spool_never_used(mx):
    """An existing but empty spool directory is an empty queue (status must
    not create the tree: as root it would leave directories the mail user
    cannot write); a spool directory that does not exist is an error."""
    os.mkdir(mx.spool)
    for args in ((), ("-j",), ("-s",)):
        p = mx.run("status", *args)
        assert p.returncode == 0 and p.stdout == b"", (args, p.stderr)
    p = mx.run("status", "1NGMMA9Q2H87TK5W9")
    assert p.returncode == 1 and b"no such message" in p.stderr
    p = mx.run("hold", "1NGMMA9Q2H87TK5W9")
    assert p.returncode == 1 and b"no such message" in p.stderr
    assert os.listdir(mx.spool) == []
    os.rmdir(mx.spool)
    p = mx.run("status")
    assert p.returncode == 73 and b"spool" in p.stderr
    assert not os.path.exists(mx.spool)


def test_inject_max_recipients(mx):
    mx.config("max-recipients 100")
    p = mx.run("inject", "-f", "a@example.org",
               *["r%d@example.test" % i for i in range(101)], input=MSG_LF)
    assert p.returncode == 65 and b"max-recipients" in p.stderr
    mx.inject("a@example.org", ["r%d@example.test" % i for i in range(100)],
              MSG_LF)
    assert len(mx.status_json()[0]["recipients"]) == 100


def test_inject_max_size(mx):
    mx.config("max-size 2K")
    mx.inject("a@example.org", ["u@example.test"], MSG_LF)
    p = mx.run("inject", "-f", "a@example.org", "u@example.test",
               input=b"Subject: big\n\n" + b"x" * 3000 + b"\n")
    assert p.returncode == 65 and b"max-size" in p.stderr
    assert len(queue_ids(mx)) == 1
    assert os.listdir(os.path.join(mx.spool, "tmp")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_inject_spool_full(mx):
    """A full file system is a temporary failure (75), and leaves nothing
    behind; what was queued before is intact."""
    import subprocess
    os.mkdir(mx.spool)
    subprocess.run(["mount", "-t", "tmpfs", "-o", tmpfs_options("256k"), "tmpfs",
                    mx.spool], check=True)
    try:
        first = mx.inject("a@example.org", ["u@example.test"], MSG_LF)
        raw = body_of(mx, first)
        fd = os.open(os.path.join(mx.spool, "filler"),
                     os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        p = mx.run("inject", "-f", "a@example.org", "u@example.test",
                   input=MSG_LF + b"y" * 20000)
        assert p.returncode == 75, p.stderr
        assert p.stdout == b""
        assert queue_ids(mx) == [first]
        assert body_of(mx, first) == raw
        assert os.listdir(os.path.join(mx.spool, "tmp")) == []
        os.unlink(os.path.join(mx.spool, "filler"))
        second = mx.inject("a@example.org", ["u@example.test"], MSG_LF)
        assert queue_ids(mx) == [first, second]
    finally:
        subprocess.run(["umount", mx.spool], check=True)


def test_status_id_shows_notify_list(mx):
    """`status ID` lists a recipient's NOTIFY keywords comma-separated,
    with no trailing comma."""
    from conftest import receive_stdio
    proc, raw = receive_stdio(mx)
    assert raw.cmd("EHLO c.test")[0] == 250
    assert raw.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert raw.cmd("RCPT TO:<r@example.test> NOTIFY=DELAY,FAILURE")[0] == 250
    assert raw.cmd("RCPT TO:<s@example.test> NOTIFY=NEVER")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: n\r\n\r\nx\r\n.\r\n")
    code, text = raw.reply()
    assert code == 250, text
    raw.cmd("QUIT")
    proc.wait(10)
    (qid,) = [o["id"] for o in mx.status_json()]
    out = mx.run("status", qid, check=True).stdout.decode()
    assert re.search(r"<r@example\.test> queued, 0 attempts, "
                     r"notify=failure,delay\n", out), out
    assert re.search(r"<s@example\.test> queued, 0 attempts, "
                     r"notify=never\n", out), out


def test_inject_takes_addresses_in_angle_brackets(mx):
    """As sendmail: -f '<a@b>' and '<rcpt>' are those addresses; '<>' is
    the null sender."""
    qid = mx.inject("<alice@sender.test>", ["<bob@example.test>"],
                    "Subject: br\n\nx\n")
    (o,) = [m for m in mx.status_json() if m["id"] == qid]
    assert o["sender"] == "alice@sender.test"
    assert [r["addr"] for r in o["recipients"]] == ["bob@example.test"]
    qid = mx.inject("<>", ["bob@example.test"], "Subject: null\n\nx\n")
    (o,) = [m for m in mx.status_json() if m["id"] == qid]
    assert o["sender"] == ""
    p = mx.run("inject", "-f", "<a@b>x", "bob@example.test", input=b"x\n")
    assert p.returncode == 65
