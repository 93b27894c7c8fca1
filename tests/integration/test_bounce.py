"""bounce without delivery: expiry, delay warnings, NOTIFY, RET, ENVID/ORCPT,
the null sender, the administrator's bounce ID, bounce-size-limit, the
backscatter policy.  Every DSN is parsed with Python's email package.
The helpers here are shared with test_bounce_*.py."""
import email
import email.policy
import email.utils
import re
import time

HOST = "backup.example.test"


def queue(mx):
    return mx.status_json()


def dsns(mx):
    """Queued messages from the null sender (our DSNs), by ID."""
    return [m for m in queue(mx) if m["sender"] == ""]


def originals(mx):
    return [m for m in queue(mx) if m["sender"] != ""]


def raw(mx, qid):
    p = mx.run("status", "-b", qid, check=True)
    return p.stdout


def bounce(mx, *args, expect=0):
    p = mx.run("bounce", *args)
    assert p.returncode == expect, (p.returncode, p.stdout, p.stderr)
    return p


def summary(p):
    m = re.search(rb"bounced (\d+), delayed (\d+), expired (\d+)", p.stdout)
    assert m, p.stdout
    return tuple(int(x) for x in m.groups())


def wait_age(mx, qid, seconds):
    """Sleep until message qid is at least `seconds` old (whole seconds,
    as bounce counts them)."""
    arrival = [m for m in queue(mx) if m["id"] == qid][0]["arrival"]
    delay = arrival + seconds + 0.05 - time.time()
    if delay > 0:
        time.sleep(delay)


def assert_wire_clean(data):
    """CRLF line ends only, no line over 998 octets."""
    assert data.endswith(b"\r\n")
    stripped = data.replace(b"\r\n", b"")
    assert b"\r" not in stripped and b"\n" not in stripped
    for line in data.split(b"\r\n"):
        assert len(line) <= 998


def fields_of(block):
    """RFC 822-style fields of one report block (UTF-8), unfolded."""
    out = {}
    text = block.decode("utf-8").replace("\r\n ", " ")
    for line in filter(None, text.split("\r\n")):
        k, v = line.split(": ", 1)
        out[k] = v
    return out


class Dsn:
    """A parsed RFC 3464 report: .msg (top), .text (human part),
    .fields (per-message), .rcpts (list of per-recipient dicts),
    .returned (third part)."""

    def __init__(self, data, dsn_id=None):
        assert_wire_clean(data)
        self.data = data
        self.msg = email.message_from_bytes(data, policy=email.policy.compat32)
        m = self.msg
        assert not m.defects, m.defects
        assert m.get_content_type() == "multipart/report"
        self.utf8 = m.get_param("report-type") == "global-delivery-status"
        assert m.get_param("report-type") in ("delivery-status",
                                              "global-delivery-status")
        boundary = m.get_boundary()
        assert boundary and len(boundary) <= 70
        # The boundary appears only as delimiters (and in Content-Type).
        assert data.count(boundary.encode()) == 5
        parts = m.get_payload()
        assert len(parts) == 3
        human, status, self.returned = parts
        assert human.get_content_type() == "text/plain"
        self.text = human.get_payload(decode=True).decode("utf-8")
        want = ("message/global-delivery-status" if self.utf8
                else "message/delivery-status")
        assert status.get_content_type() == want
        if self.utf8:
            # The email package does not know RFC 6533's type: split the
            # report part into its blank-line separated blocks by hand.
            delim = b"\r\n--" + boundary.encode()
            body = data.split(delim)[2].split(b"\r\n\r\n", 1)[1]
            blocks = [fields_of(b) for b in body.split(b"\r\n\r\n")
                      if b.strip()]
        else:
            blocks = [dict(b.items()) for b in status.get_payload()]
        assert len(blocks) >= 2
        # Unfold (RFC 5322: folding only inserted CRLF before WSP).
        self.fields = {k: re.sub(r"\r?\n", "", v)
                       for k, v in blocks[0].items()}
        self.rcpts = [{k: re.sub(r"\r?\n", "", v) for k, v in b.items()}
                      for b in blocks[1:]]
        # Envelope-level headers every DSN must carry.
        assert m["From"] == "Mail Delivery System <MAILER-DAEMON@%s>" % HOST
        assert m["Auto-Submitted"] == "auto-replied"
        assert m["MIME-Version"] == "1.0"
        assert email.utils.parsedate_to_datetime(m["Date"]) is not None
        mid = m["Message-ID"]
        pat = r"<([0-9A-Z]{17})\.[0-9a-f]+@%s>" % re.escape(HOST)
        mm = re.fullmatch(pat, mid)
        assert mm, mid
        if dsn_id:
            assert mm.group(1) == dsn_id
        assert self.fields["Reporting-MTA"] == "dns; " + HOST
        assert email.utils.parsedate_to_datetime(
            self.fields["Arrival-Date"]) is not None
        for r in self.rcpts:
            assert r["Final-Recipient"].startswith(("rfc822; ", "utf-8; "))
            assert r["Action"] in ("failed", "delayed", "relayed")
            assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", r["Status"])

    @property
    def subject(self):
        return self.msg["Subject"]

    @property
    def orig_id(self):
        return self.fields["X-Mxfb-Queue-ID"]

    def rcpt(self, addr):
        for r in self.rcpts:
            if r["Final-Recipient"].split("; ", 1)[1] == addr:
                return r
        raise KeyError(addr)

    def addrs(self):
        return sorted(r["Final-Recipient"].split("; ", 1)[1]
                      for r in self.rcpts)

    @property
    def returned_type(self):
        return self.returned.get_content_type()

    def returned_bytes(self):
        """The returned original (or its headers) as text."""
        p = self.returned.get_payload()
        if isinstance(p, list):
            return p[0].as_bytes()
        return p.encode("utf-8", "surrogateescape") if isinstance(p, str) else p


def read_dsn(mx, qid):
    return Dsn(raw(mx, qid), qid)


def all_dsns(mx):
    return [read_dsn(mx, m["id"]) for m in dsns(mx)]


def message(sender="alice@example.org", subject="hello", body="Hello Bob.\n",
            extra=""):
    return ("From: Alice <%s>\nTo: bob@example.test\nSubject: %s\n"
            "Message-ID: <%s@example.org>\n%s\n%s" % (
                sender or "mailer-daemon@example.org", subject,
                subject.replace(" ", "-"), extra, body))


def smtp_send(mx, sender, rcpts, data, mail_options=()):
    """Send one message through `receive -l`; rcpts is a list of
    (address, [rcpt options]).  Returns the queue ID from the 250."""
    import smtplib
    _, port = mx.listen()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example.org")
        code, text = s.mail(sender, list(mail_options))
        assert code == 250, (code, text)
        for addr, opts in rcpts:
            code, text = s.rcpt(addr, list(opts))
            assert code == 250, (addr, code, text)
        if isinstance(data, bytes):
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        code, text = s.data(data)
        assert code == 250, (code, text)
    ids = [m["id"] for m in originals(mx)]
    assert ids
    return ids[-1]


# --- expiry ---------------------------------------------------------------

def test_expiry_returns_everything_and_removes(mx):
    mx.config("queue-lifetime 1h", "delay-warning 0")
    body = "Hello Bob.\nSecond line.\n"
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"],
                    message(body=body))
    p = bounce(mx)
    assert summary(p) == (0, 0, 0)
    assert dsns(mx) == []
    mx.config("queue-lifetime 2s", "delay-warning 0")
    wait_age(mx, qid, 2)
    p = bounce(mx)
    assert summary(p) == (0, 0, 1)
    assert originals(mx) == []
    [d] = dsns(mx)
    assert d["recipients"][0]["addr"] == "alice@example.org"
    assert len(d["recipients"]) == 1
    assert d["arrival"] >= int(time.time()) - 5
    dsn = read_dsn(mx, d["id"])
    assert dsn.subject == "Undelivered Mail Returned to Sender"
    assert dsn.msg["To"] == "<alice@example.org>"
    assert dsn.orig_id == qid
    assert "Original-Envelope-Id" not in dsn.fields
    assert dsn.addrs() == ["bob@example.test", "carol@example.test"]
    for r in dsn.rcpts:
        assert r["Action"] == "failed"
        assert r["Status"] == "4.4.7"
        assert "Original-Recipient" not in r
        assert "Remote-MTA" not in r
        assert "Will-Retry-Until" not in r
    assert "message expired" in dsn.text
    assert "backup.example.test" in dsn.text
    assert dsn.returned_type == "message/rfc822"
    ret = dsn.returned_bytes()
    assert b"Second line." in ret and b"Subject: hello" in ret
    assert dsn.msg["Content-Transfer-Encoding"] == "7bit"
    log = p.stderr.decode()
    assert "%s: sender non-delivery notification: %s" % (qid, d["id"]) in log
    assert "%s: to=<bob@example.test>" % qid in log
    assert "status=expired, returned to sender" in log
    assert "%s: removed" % qid in log
    # Nothing more to do: a second run makes nothing new (under a long
    # lifetime, so that the DSN itself is not dropped meanwhile).
    mx.config("queue-lifetime 1h", "delay-warning 0")
    p = bounce(mx)
    assert summary(p) == (0, 0, 0)
    assert [m["id"] for m in dsns(mx)] == [d["id"]]


def test_boundaries_and_message_ids_are_fresh(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0")
    a = mx.inject("alice@example.org", ["bob@example.test"], message())
    b = mx.inject("alice@example.org", ["bob@example.test"], message())
    wait_age(mx, b, 1)
    bounce(mx)
    x, y = all_dsns(mx)
    assert {x.orig_id, y.orig_id} == {a, b}
    assert x.msg.get_boundary() != y.msg.get_boundary()
    assert x.msg["Message-ID"] != y.msg["Message-ID"]


# --- delay warnings -------------------------------------------------------

def test_exactly_one_delay_warning(mx):
    mx.config("queue-lifetime 1h", "delay-warning 4h")
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    assert summary(bounce(mx)) == (0, 0, 0)
    mx.config("queue-lifetime 1h", "delay-warning 1s")
    wait_age(mx, qid, 1)
    p = bounce(mx)
    assert summary(p) == (0, 1, 0)
    for _ in range(3):
        assert summary(bounce(mx)) == (0, 0, 0)
    [d] = dsns(mx)
    dsn = read_dsn(mx, d["id"])
    assert dsn.subject == "Delayed Mail (still being retried)"
    assert dsn.orig_id == qid
    r = dsn.rcpt("bob@example.test")
    assert r["Action"] == "delayed"
    assert r["Status"].startswith("4.")
    arrival = [m for m in originals(mx) if m["id"] == qid][0]["arrival"]
    until = email.utils.parsedate_to_datetime(r["Will-Retry-Until"])
    assert int(until.timestamp()) == arrival + 3600
    assert "THIS IS A WARNING ONLY" in dsn.text
    # A warning returns the headers, not the message.
    assert dsn.returned_type == "text/rfc822-headers"
    assert b"Subject: hello" in dsn.returned_bytes()
    assert b"Hello Bob." not in dsn.returned_bytes()
    assert "%s: sender delay notification: %s" % (qid, d["id"]) in \
        p.stderr.decode()
    # The original stays queued, now marked as warned.
    assert [m["id"] for m in originals(mx)] == [qid]


def test_delay_warning_disabled_with_zero(mx):
    mx.config("queue-lifetime 1h", "delay-warning 0")
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    wait_age(mx, qid, 1)
    assert summary(bounce(mx)) == (0, 0, 0)
    assert dsns(mx) == []


# --- null sender, DSN of a DSN -------------------------------------------

def test_null_sender_never_bounced(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0")
    qid = mx.inject("", ["bob@example.test"], message(sender=""))
    wait_age(mx, qid, 1)
    p = bounce(mx)
    assert summary(p) == (0, 0, 1)
    assert queue(mx) == []
    log = p.stderr.decode()
    assert "%s: from=<>, status=expired, dropped" % qid in log
    assert "non-delivery notification" not in log


def test_dsn_of_a_dsn_never_made(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0")
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    wait_age(mx, qid, 1)
    bounce(mx)
    [d] = dsns(mx)
    # The DSN itself now outlives its own lifetime: dropped, not bounced.
    wait_age(mx, d["id"], 1)
    p = bounce(mx)
    assert summary(p) == (0, 0, 1)
    assert queue(mx) == []
    assert "%s: from=<>, status=expired, dropped" % d["id"] in \
        p.stderr.decode()


def test_null_sender_delay_never_warned(mx):
    mx.config("queue-lifetime 1h", "delay-warning 1s")
    qid = mx.inject("", ["bob@example.test"], message(sender=""))
    wait_age(mx, qid, 1)
    assert summary(bounce(mx)) == (0, 0, 0)
    assert [m["id"] for m in queue(mx)] == [qid]


# --- the administrator ----------------------------------------------------

def test_admin_bounce_id(mx):
    mx.config("queue-lifetime 5d")
    keep = mx.inject("alice@example.org", ["bob@example.test"], message())
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"],
                    message(subject="go back"))
    p = bounce(mx, qid)
    assert summary(p) == (1, 0, 0)
    assert [m["id"] for m in originals(mx)] == [keep]
    [d] = dsns(mx)
    dsn = read_dsn(mx, d["id"])
    assert dsn.orig_id == qid
    assert dsn.subject == "Undelivered Mail Returned to Sender"
    assert dsn.addrs() == ["bob@example.test", "carol@example.test"]
    for r in dsn.rcpts:
        assert r["Action"] == "failed"
        assert r["Status"] == "5.0.0"
    assert "returned to sender by the mail" in dsn.text
    assert dsn.returned_type == "message/rfc822"
    assert b"Subject: go back" in dsn.returned_bytes()
    assert "%s: sender non-delivery notification: %s" % (qid, d["id"]) in \
        p.stderr.decode()


def test_admin_bounce_held_message(mx):
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    mx.run("hold", qid, check=True)
    # A pass skips held messages ...
    mx.config("queue-lifetime 1s", "delay-warning 1s")
    wait_age(mx, qid, 1)
    assert summary(bounce(mx)) == (0, 0, 0)
    assert dsns(mx) == []
    # ... the administrator's bounce ID does not.
    assert summary(bounce(mx, qid)) == (1, 0, 0)
    assert originals(mx) == []
    assert read_dsn(mx, dsns(mx)[0]["id"]).orig_id == qid


def test_admin_bounce_bad_and_missing_ids(mx):
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    for bad in ("../x", "a/b", "", "short", qid + "0", qid.lower()):
        p = mx.run("bounce", bad)
        assert p.returncode == 64, bad
        assert b"mxfb: bounce:" in p.stderr
    assert [m["id"] for m in queue(mx)] == [qid]
    missing = "0" * 11 + qid[11:]
    p = mx.run("bounce", missing)
    assert p.returncode == 1
    assert b"no such message" in p.stderr
    assert [m["id"] for m in queue(mx)] == [qid]


def test_admin_bounce_null_sender_dropped(mx):
    qid = mx.inject("", ["bob@example.test"], message(sender=""))
    p = bounce(mx, qid)
    assert queue(mx) == []
    assert "dropped" in p.stderr.decode()


def test_help_and_usage(mx):
    p = mx.run("bounce", "-h")
    assert p.returncode == 0 and b"usage: mxfb bounce" in p.stdout
    p = mx.run("bounce", "-x")
    assert p.returncode == 64
    # -q (for cron): no summary line, the log has the events.
    mx.config("queue-lifetime 1s", "delay-warning 0")
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    wait_age(mx, qid, 1)
    p = bounce(mx, "-q")
    assert p.stdout == b""
    assert b"sender non-delivery notification" in p.stderr
    assert len(dsns(mx)) == 1


# --- bounce-size-limit ----------------------------------------------------

def test_bounce_size_limit_truncates_to_headers(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0", "bounce-size-limit 2K")
    big = mx.inject("alice@example.org", ["bob@example.test"],
                    message(subject="big", body="x" * 70 + "\n") * 1 +
                    ("y" * 70 + "\n") * 100)
    small = mx.inject("alice@example.org", ["bob@example.test"],
                      message(subject="small"))
    wait_age(mx, small, 1)
    bounce(mx)
    by_orig = {d.orig_id: d for d in all_dsns(mx)}
    b, s = by_orig[big], by_orig[small]
    assert b.returned_type == "text/rfc822-headers"
    assert b"Subject: big" in b.returned_bytes()
    assert b"yyyy" not in b.data
    assert "larger than 2048 bytes" in b.text
    assert s.returned_type == "message/rfc822"
    assert b"Hello Bob." in s.returned_bytes()


def test_eightbit_original_marked_8bit(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0")
    data = message(subject="caf\u00e9", body="Gr\u00fc\u00dfe\n").encode()
    qid = mx.inject("alice@example.org", ["bob@example.test"], data)
    wait_age(mx, qid, 1)
    bounce(mx)
    [d] = all_dsns(mx)
    assert d.msg["Content-Transfer-Encoding"] == "8bit"
    assert d.returned["Content-Transfer-Encoding"] == "8bit"
    assert "Grüße".encode() in d.data


# --- DSN parameters from SMTP: NOTIFY, RET, ENVID, ORCPT -------------------

def test_envid_orcpt_ret_hdrs_and_notify_never(mx):
    mx.config("queue-lifetime 2s", "delay-warning 0")
    qid = smtp_send(
        mx, "alice@example.org",
        [("bob@example.test",
          ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;Bob+2BTag@example.test"]),
         ("carol@example.test", ["NOTIFY=NEVER"]),
         ("dave@example.test", [])],
        message(body="secret body\n"),
        mail_options=["RET=HDRS", "ENVID=QQ314159"])
    wait_age(mx, qid, 2)
    p = bounce(mx)
    [d] = all_dsns(mx)
    assert d.fields["Original-Envelope-Id"] == "QQ314159"
    assert d.addrs() == ["bob@example.test", "dave@example.test"]
    assert d.rcpt("bob@example.test")["Original-Recipient"] == \
        "rfc822;Bob+Tag@example.test"
    assert "Original-Recipient" not in d.rcpt("dave@example.test")
    assert d.returned_type == "text/rfc822-headers"
    assert b"Subject: hello" in d.returned_bytes()
    assert b"secret body" not in d.data
    assert "to=<carol@example.test>" in p.stderr.decode()
    assert "not returned (NOTIFY)" in p.stderr.decode()
    assert originals(mx) == []


def test_notify_never_everywhere_no_dsn(mx):
    mx.config("queue-lifetime 1h", "delay-warning 1s")
    qid = smtp_send(mx, "alice@example.org",
                    [("bob@example.test", ["NOTIFY=NEVER"])], message())
    wait_age(mx, qid, 1)
    assert summary(bounce(mx)) == (0, 0, 0)
    mx.config("queue-lifetime 2s", "delay-warning 1s")
    wait_age(mx, qid, 2)
    assert summary(bounce(mx)) == (0, 0, 1)
    assert queue(mx) == []


def test_notify_failure_only_gets_no_delay_warning(mx):
    mx.config("queue-lifetime 1h", "delay-warning 1s")
    qid = smtp_send(mx, "alice@example.org",
                    [("bob@example.test", ["NOTIFY=FAILURE"]),
                     ("carol@example.test", ["NOTIFY=DELAY"])], message())
    wait_age(mx, qid, 1)
    assert summary(bounce(mx)) == (0, 1, 0)
    [d] = all_dsns(mx)
    assert d.addrs() == ["carol@example.test"]
    assert d.rcpts[0]["Action"] == "delayed"


# --- bounce-policy --------------------------------------------------------

def test_policy_none_only_logs(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0", "bounce-policy none")
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    wait_age(mx, qid, 1)
    p = bounce(mx)
    assert summary(p) == (0, 0, 1)
    assert queue(mx) == []
    assert "not returned (bounce-policy none)" in p.stderr.decode()


def test_policy_verified(mx, tmp_path):
    rcpts = tmp_path / "recipients"
    rcpts.write_text("bob@example.test\n")
    # Received without a recipients check: expiry is not reported.
    mx.config("queue-lifetime 2s", "delay-warning 0",
              "bounce-policy verified")
    unverified = smtp_send(mx, "alice@example.org",
                           [("bob@example.test", [])], message())
    for p in mx.procs:
        p.terminate()
        p.wait(5)
    mx.procs.clear()
    mx.config("queue-lifetime 2s", "delay-warning 0",
              "bounce-policy verified", "recipients %s" % rcpts)
    verified = smtp_send(mx, "alice@example.org",
                         [("bob@example.test", [])], message())
    wait_age(mx, verified, 2)
    p = bounce(mx)
    assert summary(p) == (0, 0, 2)
    [d] = all_dsns(mx)
    assert d.orig_id == verified
    assert "not returned (bounce-policy verified)" in p.stderr.decode()
    assert unverified in p.stderr.decode()


# --- SMTPUTF8 originals (RFC 6533) ----------------------------------------

def smtputf8_send(mx, sender, rcpt, data):
    import smtplib
    _, port = mx.listen()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example.org")
        assert s.has_extn("smtputf8")
        s.command_encoding = "utf-8"
        code, text = s.mail(sender, ["SMTPUTF8", "BODY=8BITMIME"])
        assert code == 250, (code, text)
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(data.replace(b"\n", b"\r\n"))
        assert code == 250, (code, text)
    return originals(mx)[-1]["id"]


def test_smtputf8_original_gets_global_dsn(mx):
    mx.config("queue-lifetime 2s", "delay-warning 0")
    sender = "j\u00f6rg@example.org"
    data = ("From: J\u00f6rg <%s>\nTo: bob@example.test\n"
            "Subject: gr\u00fc\u00dfe\n\nK\u00e4se.\n" % sender).encode()
    qid = smtputf8_send(mx, sender, "bob@example.test", data)
    wait_age(mx, qid, 2)
    bounce(mx)
    [m] = dsns(mx)
    assert m["recipients"][0]["addr"] == sender
    d = read_dsn(mx, m["id"])
    assert d.utf8
    assert d.returned_type == "message/global"
    assert ("To: <%s>" % sender).encode() in d.data
    assert "Käse.".encode() in d.returned_bytes()
    assert d.msg["Content-Transfer-Encoding"] == "8bit"
    assert d.rcpt("bob@example.test")["Status"] == "4.4.7"


def test_corrupt_original_quarantined_not_returned(mx):
    """A message whose bytes no longer match their checksum is never put
    into a DSN: it is moved aside for the administrator."""
    import os
    mx.config("queue-lifetime 1s", "delay-warning 0")
    qid = mx.inject("alice@example.org", ["bob@example.test"],
                    message(body="pristine body\n"))
    path = os.path.join(mx.spool, "queue", qid)
    with open(path, "r+b") as f:
        data = f.read()
        at = data.index(b"pristine")
        f.seek(at)
        f.write(b"P")
    wait_age(mx, qid, 1)
    p = mx.run("bounce")
    assert p.returncode == 75
    assert dsns(mx) == []
    assert queue(mx) == []
    assert os.path.exists(os.path.join(mx.spool, "corrupt", qid))
