"""The outage mailbox (issue 15): `mailbox DIR` gives each recipient that
the recipients list names exactly a Maildir copy of each message received,
made after the spool commit and never failing the SMTP transaction; the
copy leaves (or moves to .Delivered with mailbox-keep) once flush has
delivered the original; flush makes copies still owed; quota, unsafe and
catch-all recipients get none.  A real Dovecot (dovecot-imapd, started
here on loopback) serves the copies over IMAP to a user whose password
hash `mxfb passwd` made.  Loopback only.
"""
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

from conftest import MXFB, free_port, receive_stdio, user_ids, wait_port

COPIED = re.compile(r"(?P<id>[0-9A-Z]{17}): to=<(?P<to>[^>]*)>, "
                    r"mailbox=(?P<path>\S+), status=copied")
REMOVED = re.compile(r"(?P<id>[0-9A-Z]{17}): to=<(?P<to>[^>]*)>, "
                     r"mailbox=(?P<path>\S+), status=removed")


def body(subject="outage", size=0):
    """A message with about size more bytes, in lines of 72."""
    extra = ""
    while len(extra) < size:
        extra += "x" * 70 + "\r\n"
    return ("From: sender@sender.test\r\nTo: user@example.test\r\n"
            "Subject: %s\r\n\r\nhello during the outage\r\n%s"
            % (subject, extra))


def outage(mx, dns, tmp_path, port, users=("user@example.test",),
          extra=(), catch_all=False):
    """A primary at 127.0.0.2:port (down unless started), a recipients
    list, the mailbox directory (the user's)."""
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    rl = tmp_path / "recipients"
    rl.write_text("".join("%s\n" % u for u in users) +
                  ("@example.test\n" if catch_all else ""))
    os.chmod(str(rl), 0o644)
    mbox = tmp_path / "mail"
    mbox.mkdir()
    uid, gid = user_ids()
    os.chown(str(mbox), uid, gid)
    mx.config("smtp-port %d" % port, "recipients %s" % rl,
              "mailbox %s" % mbox, "connect-timeout 2s",
              "command-timeout 3s", "retry-min 1s", "retry-max 1s", *extra)
    return str(mbox)


def send(mx, rcpts, msg):
    """One SMTP transaction through `receive` (inetd mode); returns the
    queue ID and receive's log."""
    proc, raw = receive_stdio(mx)
    assert raw.cmd("EHLO client.test")[0] == 250
    assert raw.cmd("MAIL FROM:<sender@sender.test>")[0] == 250
    for r in rcpts:
        code, text = raw.cmd("RCPT TO:<%s>" % r)
        assert code == 250, text
    assert raw.cmd("DATA")[0] == 354
    raw.send(msg.encode() + b".\r\n")
    code, text = raw.reply()
    assert code == 250, text
    raw.cmd("QUIT")
    raw.close()
    proc.wait(30)
    qid = re.search(r"queued as ([0-9A-Z]{17})", text).group(1)
    return qid, proc.stderr.read().decode(errors="replace")


def copies(mbox, domain="example.test", user="user", sub=("new", "cur")):
    out = []
    for s in sub:
        d = os.path.join(mbox, domain, user, s)
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
    return out


def flush(mx):
    p = mx.run("flush", "-f", timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stderr.decode(errors="replace")


def test_copy_at_receipt_and_removal_after_flush(mx, dns, tmp_path,
                                                 primary_factory):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    qid, log = send(mx, ["User+Tag@Example.TEST"], body())
    got = copies(mbox)
    assert len(got) == 1, log
    path = got[0]
    # Maildir rules: new/, a ,S=size Dovecot trusts, 0600 in 0700 dirs,
    # the user's, exactly the bytes the primary will get.
    stored = mx.run("status", "-b", qid, check=True).stdout
    assert open(path, "rb").read() == stored
    assert path.endswith(",S=%d" % len(stored))
    uid, _ = user_ids()
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == uid
    for d in ("", "tmp", "new", "cur"):
        st = os.stat(os.path.join(mbox, "example.test", "user", d))
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == uid
    assert os.listdir(os.path.join(mbox, "example.test", "user", "tmp")) == []
    m = COPIED.search(log)
    assert m and m["id"] == qid and m["to"] == "User+Tag@Example.TEST"
    assert m["path"] == path
    # The primary comes back: it gets exactly one copy, the mailbox none.
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert len(rec.messages) == 1 and rec.messages[0]["data"] == stored
    assert copies(mbox) == []
    m = REMOVED.search(log)
    assert m and m["id"] == qid and m["path"] == path
    assert os.listdir(os.path.join(mx.spool, "mailbox")) == []


def test_status_lists_and_counts_copies(mx, dns, tmp_path):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port,
                  users=("user@example.test", "big@example.test"),
                  extra=("mailbox-max-size 1000",))
    qid, log = send(mx, ["user@example.test", "big@example.test",
                         "postmaster@example.test"], body())
    qid2, _ = send(mx, ["big@example.test"], body("large", 2000))
    out = mx.run("status", qid2, check=True).stdout.decode()
    assert ("mailbox: <big@example.test> no copy (over mailbox-max-size)\n"
            in out)
    path = copies(mbox)[0]
    out = mx.run("status", qid, check=True).stdout.decode()
    assert "mailbox: <user@example.test> %s\n" % path in out
    assert "mailbox: <postmaster@example.test>" not in out
    big = copies(mbox, user="big")[0]
    assert "mailbox: <big@example.test> %s\n" % big in out
    os.rename(path, path.replace("/new/", "/cur/") + ":2,S")
    out = mx.run("status", qid, check=True).stdout.decode()
    assert "mailbox: <user@example.test> %s\n" % (
        path.replace("/new/", "/cur/") + ":2,S") in out
    os.unlink(path.replace("/new/", "/cur/") + ":2,S")
    out = mx.run("status", qid, check=True).stdout.decode()
    assert "(moved or deleted by the user)" in out
    out = mx.run("status", "-s", check=True).stdout.decode()
    assert re.search(r"^example\.test .*, mailbox copies 2$", out, re.M), out
    import json
    out = mx.run("status", "-s", "-j", check=True).stdout.decode()
    assert json.loads(out.splitlines()[0])["mailbox_copies"] == 2
    # Without mailbox, status -s and status ID show nothing of it.
    rl = tmp_path / "recipients"
    mx.config("recipients %s" % rl)
    out = mx.run("status", "-s", check=True).stdout.decode()
    assert "mailbox" not in out
    assert "mailbox" not in mx.run("status", qid, check=True).stdout.decode()


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace (make deps)")
def test_metrics_read_no_mailbox_index(mx, dns, tmp_path):
    """status -m exports no copy count: it looks for no message's
    mailbox index (an open per message with a mailbox recipient) where
    -s, which counts copies, does (issue 17 point 1: -m no dearer than
    -s)."""
    port = free_port("127.0.0.2")
    outage(mx, dns, tmp_path, port)
    qid, _ = send(mx, ["user@example.test"], body())
    opened = {}
    for opt in ("-s", "-m"):
        trace = tmp_path / ("trace" + opt)
        p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat",
                            "-o", str(trace), MXFB, "status", opt],
                           env=mx.env(UNDER_STRACE), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr
        opened[opt] = re.findall(r'openat\([^"]*"([^"]*)"',
                                 trace.read_text())
    assert qid in opened["-s"]
    assert qid not in opened["-m"]


def test_copy_found_in_cur_with_flags(mx, dns, tmp_path, primary_factory):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    send(mx, ["user@example.test"], body())
    path = copies(mbox)[0]
    cur = path.replace("/new/", "/cur/") + ":2,FS"
    os.rename(path, cur)		# what an IMAP client's read does
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert copies(mbox) == []
    assert REMOVED.search(log)["path"] == cur


def test_mailbox_keep_moves_to_delivered(mx, dns, tmp_path, primary_factory):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port, extra=("mailbox-keep 2s",))
    send(mx, ["user@example.test"], body())
    base = os.path.basename(copies(mbox)[0])
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert copies(mbox) == []
    kept = copies(mbox, sub=(".Delivered/new", ".Delivered/cur"))
    assert [os.path.basename(k) for k in kept] == [base], log
    assert "status=delivered" in log
    time.sleep(3)
    log = flush(mx)		# its recovery removes what outlived keep
    assert copies(mbox, sub=(".Delivered/new", ".Delivered/cur")) == []
    assert "status=removed (mailbox-keep)" in log


def test_many_recipients_one_copy_each(mx, dns, tmp_path, primary_factory):
    port = free_port("127.0.0.2")
    users = ["u%02d@example.test" % i for i in range(25)]
    mbox = outage(mx, dns, tmp_path, port, users=users)
    qid, log = send(mx, users, body())
    for u in users:
        assert len(copies(mbox, user=u.split("@")[0])) == 1
    assert len(COPIED.findall(log)) == 25
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert len(rec.messages) == 1 and len(rec.messages[0]["rcpts"]) == 25
    assert all(copies(mbox, user=u.split("@")[0]) == [] for u in users)
    assert len(REMOVED.findall(log)) == 25


def test_no_copy_for_catch_all_or_unlisted(mx, dns, tmp_path):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port, catch_all=True)
    qid, log = send(mx, ["other@example.test", "postmaster@example.test"],
                    body())
    assert os.listdir(mbox) == []
    assert "status=copied" not in log
    assert len(mx.status_json()) == 1


def test_callout_proves_who_gets_a_copy(mx, dns, tmp_path, primary_factory):
    """With recipient-verify callout and no recipients list, a copy goes
    to an address accepted on a verdict (the primary's 2xx, or the
    database's): not to one accepted only by verify-unknown-when-down
    accept, nor to postmaster."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    lines = [l for l in open(mx.conf).read().splitlines()
             if not l.startswith("recipients ")]
    mx.config(*lines, "recipient-verify callout",
              "verify-unknown-when-down accept", replace_base=True)
    c, rec = primary_factory("127.0.0.2", port)
    rec.rcpt_replies["busy@example.test"] = "450 4.2.1 try later"
    qid, log = send(mx, ["user@example.test", "busy@example.test",
                         "postmaster@example.test"], body())
    c.stop()
    assert len(copies(mbox)) == 1, log
    assert copies(mbox, user="busy") == []
    assert copies(mbox, user="postmaster") == []
    # The primary is down now; the database still proves user@.
    qid, log = send(mx, ["user@example.test", "new@example.test"], body())
    assert len(copies(mbox)) == 2, log
    assert copies(mbox, user="new") == []


def test_quota(mx, dns, tmp_path):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port, extra=("mailbox-max-size 3000",))
    qid1, log = send(mx, ["user@example.test"], body("one", 1000))
    assert len(copies(mbox)) == 1
    qid2, log = send(mx, ["user@example.test"], body("two", 2000))
    assert len(copies(mbox)) == 1
    assert "status=over-quota" in log and qid2 in log
    assert {m["id"] for m in mx.status_json()} == {qid1, qid2}
    # Over quota is noted: flush does not try (and log) it again.
    log = flush(mx)
    assert "over-quota" not in log and len(copies(mbox)) == 1


def test_copy_failure_never_fails_smtp_and_flush_retries(mx, dns, tmp_path,
                                                         primary_factory):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    os.chown(mbox, 0, 0)
    os.chmod(mbox, 0o755)		# the user cannot write it
    qid, log = send(mx, ["user@example.test"], body())
    assert "status=failed" in log and qid in log
    assert os.listdir(mbox) == []
    out = mx.run("status", qid, check=True).stdout.decode()
    assert "(not made yet: flush makes it)" in out, out
    assert os.listdir(os.path.join(mx.spool, "mailbox")) == [qid]
    uid, gid = user_ids()
    os.chown(mbox, uid, gid)
    log = flush(mx)			# the primary is down: deferred
    assert len(copies(mbox)) == 1
    assert COPIED.search(log)["id"] == qid
    c, rec = primary_factory("127.0.0.2", port)
    flush(mx)
    assert copies(mbox) == [] and len(rec.messages) == 1


def test_deleted_message_leaves_the_mailbox(mx, dns, tmp_path):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    qid, log = send(mx, ["user@example.test"], body())
    assert len(copies(mbox)) == 1
    p = mx.run("delete", qid)
    assert p.returncode == 0, p.stderr
    assert copies(mbox) == []
    assert "status=removed" in p.stderr.decode()


def test_bounced_message_leaves_the_mailbox(mx, dns, tmp_path,
                                            primary_factory):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port, users=("user@example.test",
                                                 "gone@example.test"))
    c, rec = primary_factory("127.0.0.2", port)
    rec.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    send(mx, ["gone@example.test"], body())
    assert len(copies(mbox, user="gone")) == 1
    flush(mx)				# failed: owed a bounce
    p = mx.run("bounce", timeout=120)
    assert p.returncode == 0, p.stderr
    assert copies(mbox, user="gone") == []


def old_copy(mx, mbox, qid, sub="new", flags=""):
    """What the previous version left for message qid: its copy under a
    random name, listed in the index mailbox/ID ("copy ADDR D/L/BASE")."""
    path = copies(mbox)[0]
    stored = open(path, "rb").read()
    base = "1764700000.M123456P4242R0a1b2c3d.oldhost,S=%d" % len(stored)
    old = os.path.join(mbox, "example.test", "user", sub, base + flags)
    os.rename(path, old)
    index = os.path.join(mx.spool, "mailbox", qid)
    os.makedirs(os.path.dirname(index), 0o700, exist_ok=True)
    with open(index, "w") as f:
        f.write("M1\ncopy user@example.test example.test/user/%s\n" % base)
    mx.give(mx.spool)
    return old, index


@pytest.mark.parametrize("sub,flags", [("new", ""), ("cur", ":2,S")])
def test_previous_versions_index_still_removes_its_copy(
        mx, dns, tmp_path, primary_factory, sub, flags):
    """A spool made by the previous version: the copy has a random name
    that only the index mailbox/ID knows.  status finds it, and flush
    removes it (and the index) once the primary has the message."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    qid, log = send(mx, ["user@example.test"], body())
    old, index = old_copy(mx, mbox, qid, sub, flags)
    out = mx.run("status", qid, check=True).stdout.decode()
    assert "mailbox: <user@example.test> %s\n" % old in out, out
    log = flush(mx)			# primary down: nothing made again
    assert copies(mbox) == [old], log
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert len(rec.messages) == 1
    assert copies(mbox) == [] and not os.path.exists(index), log
    assert REMOVED.search(log)["path"] == old


def test_orphaned_index_cleaned_by_recovery(mx, dns, tmp_path):
    """The previous version killed between the message's removal and its
    copies': the index outlives the message and recovery removes the
    copies it lists."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    qid, log = send(mx, ["user@example.test"], body())
    old, index = old_copy(mx, mbox, qid)
    saved = open(index).read()
    mx.run("delete", qid, check=True)
    assert copies(mbox) == [] and not os.path.exists(index)
    # Put back what the crash would have left: the index and the copy.
    open(old, "w").write("x")
    open(index, "w").write(saved)
    mx.give(mx.spool)
    flush(mx)
    assert not os.path.exists(old) and not os.path.exists(index)


@pytest.mark.parametrize("lines,msg", [
    (["mailbox /tmp/m"], "mailbox needs recipients"),
    (["recipients /dev/null", "mailbox-max-size 10Q"], "mailbox-max-size"),
    (["recipients /dev/null", "mailbox-max-size 0"], "mailbox-max-size"),
    (["recipients /dev/null", "mailbox-keep forever"], "mailbox-keep"),
    (["recipients /dev/null", "mailbox /a", "mailbox /b"], "duplicate"),
])
def test_bad_configuration(mx, lines, msg):
    mx.config(*lines)
    p = mx.run("status")
    assert p.returncode == 78
    err = p.stderr.decode()
    assert re.search(r"mxfb\.conf:\d+: ", err) and msg in err, err


def test_keys_accepted(mx, tmp_path):
    mx.config("recipients /dev/null", "mailbox %s" % tmp_path,
              "mailbox-max-size 2G", "mailbox-keep 7d")
    p = mx.run("status")
    assert p.returncode != 78 and b"mxfb.conf" not in p.stderr


# ---- mxfb passwd

def passwd(data=None, tty=False):
    """(exit status, stdout, stderr) of `mxfb passwd`; with tty, on a
    pseudo-terminal answering each prompt from data (a list)."""
    from conftest import MXFB
    if not tty:
        p = subprocess.run([MXFB, "passwd"], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.returncode, p.stdout.decode(), p.stderr.decode()
    import pty
    import select
    import signal
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(MXFB, [MXFB, "passwd"])
    out = b""
    answers = list(data)
    given = 0
    deadline = time.time() + 20
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        prompts = out.count(b"Password:") + out.count(b"Again:")
        if answers and prompts > given:
            time.sleep(0.2)
            os.write(fd, answers.pop(0) + b"\n")
            given += 1
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), ""


def dovecot_verifies(hashed, password):
    p = subprocess.run(["doveadm", "pw", "-t", hashed, "-p", password],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode == 0 and b"verified" in p.stdout + p.stderr


needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace (make deps)")
needs_dovecot = pytest.mark.skipif(shutil.which("doveadm") is None,
                                   reason="dovecot-imapd (make deps)")


@needs_dovecot
def test_passwd_from_a_pipe():
    rc, out, err = passwd(b"s3cret pass\n")
    assert rc == 0, err
    hashed = out.strip()
    assert re.match(r"\{ARGON2ID\}\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$"
                    r"[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$", hashed), hashed
    assert dovecot_verifies(hashed, "s3cret pass")
    assert not dovecot_verifies(hashed, "s3cret")
    rc, out2, err = passwd(b"s3cret pass\r\n")	# CRLF is a line end too
    assert rc == 0 and out2 != out and dovecot_verifies(out2.strip(),
                                                        "s3cret pass")


@needs_dovecot
def test_passwd_on_a_terminal_asks_twice_without_echo():
    rc, out, _ = passwd([b"tty pass", b"tty pass"], tty=True)
    assert rc == 0, out
    assert "tty pass" not in out		# never echoed
    hashed = re.search(r"\{ARGON2ID\}\S+", out).group(0)
    assert dovecot_verifies(hashed, "tty pass")
    rc, out, _ = passwd([b"one", b"two"], tty=True)
    assert rc == 65 and "differ" in out and "ARGON2ID" not in out


def test_passwd_refuses_empty_and_arguments():
    assert passwd(b"\n")[0] == 65
    assert passwd(b"")[0] == 65
    from conftest import MXFB
    p = subprocess.run([MXFB, "passwd", "x"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert p.returncode == 64


# ---- a real Dovecot reading the outage mailbox

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{mbox}/%d/%n
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={mbox}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@pytest.fixture
def dovecot(tmp_path):
    """start(mbox, users_file) runs a private Dovecot on loopback;
    returns its IMAP port.  Stopped afterwards."""
    import grp
    import pwd
    from conftest import USER
    started = []

    def start(mbox, users):
        d = tmp_path / "dovecot"
        d.mkdir()
        port = free_port()
        conf = d / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(
            d=d, mbox=mbox, users=users, port=port, user=USER,
            group=grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name))
        with open(str(d / "stdout"), "w") as out:
            p = subprocess.run(["dovecot", "-c", str(conf)], stdout=out,
                               stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 0, open(str(d / "stdout")).read()
        started.append(str(conf))
        wait_port("127.0.0.1", port)
        return port

    yield start
    for conf in started:
        subprocess.run(["doveadm", "-c", conf, "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def users_file(tmp_path, user, password):
    hashed = passwd(password.encode() + b"\n")[1].strip()
    f = tmp_path / "users"
    f.write_text("%s:%s\n" % (user, hashed))
    os.chmod(str(f), 0o644)
    return str(f)


@needs_dovecot
@pytest.mark.parametrize("keep", [False, True])
def test_dovecot_reads_during_outage_then_catches_up(
        mx, dns, tmp_path, primary_factory, dovecot, keep):
    import imaplib
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port,
                 extra=("mailbox-keep 1d",) if keep else ())
    qid, log = send(mx, ["user@example.test"], body("read me"))
    stored = mx.run("status", "-b", qid, check=True).stdout
    imap_port = dovecot(mbox, users_file(tmp_path, "user@example.test",
                                         "imap pass"))
    im = imaplib.IMAP4("127.0.0.1", imap_port)
    im.login("user@example.test", "imap pass")
    typ, data = im.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = im.fetch("1", "(RFC822)")
    assert typ == "OK" and data[0][1] == stored
    im.close()
    im.logout()
    assert copies(mbox, sub=("new",)) == []
    assert len(copies(mbox, sub=("cur",))) == 1	# read: moved to cur/
    # The primary is back: flush delivers once, the copy leaves INBOX.
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert len(rec.messages) == 1 and rec.messages[0]["data"] == stored
    im = imaplib.IMAP4("127.0.0.1", imap_port)
    im.login("user@example.test", "imap pass")
    typ, data = im.select("INBOX")
    assert typ == "OK" and data == [b"0"], log
    typ, data = im.select("Delivered")
    if keep:
        assert typ == "OK" and data == [b"1"]
        typ, data = im.fetch("1", "(FLAGS RFC822)")
        assert data[0][1] == stored and b"\\Seen" in data[0][0]
    else:
        assert typ == "NO"
    im.logout()
    assert flush(mx) is not None and len(rec.messages) == 1


# ---- kill -9 at any step (issue 15 point 6): strace delivers SIGKILL at
# the Nth call of a system call.  Whatever the step, nothing half written
# is ever visible in new/ or cur/, nothing visible is unknown to an index,
# and once the primary is back every copy leaves.

def visible(mbox):
    out = []
    for root, dirs, files in os.walk(mbox):
        if os.path.basename(root) in ("new", "cur"):
            out += [os.path.join(root, f) for f in files]
    return out


COPY_NAME = re.compile(r"\d+\.Q(?P<id>[0-9A-Z]{17})_\d+\.mxfb,S=\d+(:2,.*)?$")


def copy_of(path):
    """The queue ID a copy's name is derived from (None: not one)."""
    m = COPY_NAME.match(os.path.basename(path))
    return m and m["id"]


def markers(spool):
    d = os.path.join(spool, "mailbox")
    return os.listdir(d) if os.path.isdir(d) else []


# LeakSanitizer cannot run under ptrace (make asan): off for those runs.
UNDER_STRACE = {"ASAN_OPTIONS": "detect_leaks=0"}


def killed_at(mx, argv, call, n, stdin=None):
    p = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e",
                        "inject=%s:signal=KILL:when=%d" % (call, n),
                        MXFB]
                       + argv, env=mx.env(UNDER_STRACE), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return p


def smtp_script(rcpts, msg):
    lines = ["EHLO client.test", "MAIL FROM:<sender@sender.test>"]
    lines += ["RCPT TO:<%s>" % r for r in rcpts]
    lines += ["DATA"]
    return ("\r\n".join(lines) + "\r\n" + msg + ".\r\nQUIT\r\n").encode()


def assert_safe(mx, mbox, stored):
    """Whatever is visible is whole and the copy of a message in the
    spool (its name says which)."""
    ids = {m["id"] for m in mx.status_json()}
    for path in visible(mbox):
        assert open(path, "rb").read() == stored, path
        assert copy_of(path) in ids, path


# receive's steps: the message written in the spool's tmp/, the copy
# written in the user's tmp/ (openat) and fsync'd (fsync 1), the message
# fsync'd (fsync 2), its file locked (flock), the commit (renameat, then
# queue/ fsync'd, fsync 3: the 250 is owed from here), the copy renamed
# into new/ (renameat2), new/ fsync'd (fsync 4), maildirsize appended,
# the process's end (exit_group, after the 250).
@needs_strace
@pytest.mark.parametrize("call,n", [("fsync", 1), ("fsync", 2),
                                    ("flock", 1), ("renameat", 1),
                                    ("fsync", 3), ("renameat2", 1),
                                    ("fsync", 4), ("exit_group", 1)])
def test_receive_killed_during_copy(mx, dns, tmp_path, primary_factory,
                                    call, n):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    # The spool (and its mailbox/) made beforehand: the calls counted are
    # the message's.
    mx.run("receive", input=b"QUIT\r\n")
    os.mkdir(os.path.join(mx.spool, "mailbox"), 0o700)
    mx.give(mx.spool)
    p = killed_at(mx, ["receive"], call, n,
                  smtp_script(["user@example.test"], body()))
    assert p.returncode in (-9, 137), (p.returncode, p.stdout)
    # Killed inside the commit, before the 250 (at its end: after it).
    assert (b"queued as" in p.stdout) == (call == "exit_group"), p.stdout
    msgs = mx.status_json()
    if not msgs:
        assert visible(mbox) == []		# killed before the commit
        return
    stored = mx.run("status", "-b", msgs[0]["id"], check=True).stdout
    assert_safe(mx, mbox, stored)
    # The copy is owed (or made): flush, the primary still down, makes
    # it, once.
    flush(mx)
    assert len(visible(mbox)) == 1
    assert_safe(mx, mbox, stored)
    flush(mx)
    assert len(visible(mbox)) == 1
    c, rec = primary_factory("127.0.0.2", port)
    flush(mx)
    assert len(rec.messages) == 1
    assert visible(mbox) == [] and markers(mx.spool) == []
    assert os.listdir(os.path.join(mbox, "example.test", "user", "tmp")) == []


def test_copy_the_user_deleted_is_not_made_again(mx, dns, tmp_path,
                                                 primary_factory):
    """Nothing records a copy made: a flush must not take a copy the user
    deleted (or moved) for one still owed."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    qid, log = send(mx, ["user@example.test"], body())
    path = copies(mbox)[0]
    os.unlink(path)
    flush(mx)
    assert copies(mbox) == []
    out = mx.run("status", qid, check=True).stdout.decode()
    assert "(moved or deleted by the user)" in out, out
    qid2, log = send(mx, ["user@example.test"], body("two"))
    path = copies(mbox)[0]
    os.rename(path, path.replace("/new/", "/cur/") + ":2,ST")
    flush(mx)
    assert copies(mbox) == [path.replace("/new/", "/cur/") + ":2,ST"]
    c, rec = primary_factory("127.0.0.2", port)
    log = flush(mx)
    assert copies(mbox) == [] and len(rec.messages) == 2, log


@needs_strace
@pytest.mark.parametrize("call,n", [("unlinkat", 1), ("unlinkat", 2),
                                    ("fsync", 1), ("fsync", 2),
                                    ("renameat", 1)])
def test_flush_killed_during_removal(mx, dns, tmp_path, primary_factory,
                                     call, n):
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port, users=("user@example.test",
                                                  "other@example.test"))
    qid, log = send(mx, ["user@example.test", "other@example.test"], body())
    stored = mx.run("status", "-b", qid, check=True).stdout
    path = copies(mbox)[0]
    os.rename(path, path.replace("/new/", "/cur/") + ":2,S")
    assert len(visible(mbox)) == 2
    c, rec = primary_factory("127.0.0.2", port)
    p = killed_at(mx, ["flush", "-f"], call, n)
    # flush itself, or its worker (flush then exits 70, saying so)
    assert p.returncode in (-9, 137) or (
        p.returncode == 70 and b"died: signal 9" in p.stderr), p.stderr
    assert_safe(mx, mbox, stored)
    flush(mx)				# recovers the claim, delivers again
    assert visible(mbox) == [] and markers(mx.spool) == []
    assert os.listdir(os.path.join(mx.spool, "mailbox")) == []
    assert 1 <= len(rec.messages) <= 2		# (INTERNALS 6: the claim's
						# holder died after the 250)


def test_disk_full_during_copy(mx, dns, tmp_path, primary_factory):
    """The mailbox on a full file system: the SMTP transaction succeeds,
    the copy fails (logged), nothing half written is visible; once there
    is room flush makes it."""
    from conftest import tmpfs_options
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    subprocess.run(["mount", "-t", "tmpfs", "-o", tmpfs_options("64k"),
                    "tmpfs", mbox], check=True)
    try:
        filler = os.path.join(mbox, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=4k"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert os.path.getsize(filler) > 0
        qid, log = send(mx, ["user@example.test"], body("full", 20000))
        assert "status=failed" in log and qid in log, log
        assert visible(mbox) == [], log
        assert [m["id"] for m in mx.status_json()] == [qid]
        os.unlink(filler)
        log = flush(mx)
        assert COPIED.search(log)["id"] == qid
        stored = mx.run("status", "-b", qid, check=True).stdout
        assert_safe(mx, mbox, stored)
        assert len(visible(mbox)) == 1
        c, rec = primary_factory("127.0.0.2", port)
        log = flush(mx)
        assert visible(mbox) == [] and len(rec.messages) == 1, log
    finally:
        subprocess.run(["umount", mbox])


@needs_strace
def test_each_copy_and_new_directory_fsyncd(mx, dns, tmp_path):
    """Maildir rules: each copy is fsync'd before its rename, each user's
    new/ after it (two copies, the message, queue/, two new/
    directories: six fsyncs)."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port,
                  users=("a@example.test", "b@example.test"))
    mx.run("receive", input=b"QUIT\r\n")
    trace = str(tmp_path / "trace")
    p = subprocess.run(["strace", "-f", "-o", trace, "-e", "trace=fsync",
                        MXFB, "receive"],
                       env=mx.env(UNDER_STRACE),
                       input=smtp_script(["a@example.test", "b@example.test"],
                                         body()),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert b"queued as" in p.stdout, p.stderr
    calls = open(trace).read()
    assert calls.count("fsync(") == 6, calls
    qid = mx.status_json()[0]["id"]
    stored = mx.run("status", "-b", qid, check=True).stdout
    assert len(copies(mbox, user="a")) == 1 and len(copies(mbox, user="b")) == 1
    assert_safe(mx, mbox, stored)


@needs_strace
@pytest.mark.parametrize("how", ["flush", "delete"])
def test_removal_during_receives_copy_waits_for_it(mx, dns, tmp_path,
                                                   primary_factory, how):
    """receive has committed the message and is still writing its copy
    (held 3 s at its rename into new/) when flush delivers it or delete
    removes it: the removal waits for the copy (the message file's lock)
    and takes it away, so no copy outlives its message."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    c, rec = primary_factory("127.0.0.2", port)
    # The spool made beforehand; receive is held 3 s as it renames the
    # copy into new/: the message is committed, its file locked.
    mx.run("receive", input=b"QUIT\r\n")
    assert os.path.isdir(os.path.join(mx.spool, "queue"))
    p = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e",
                          "inject=renameat2:delay_enter=3000000:when=1", MXFB,
                          "receive"], env=mx.env(UNDER_STRACE),
                         stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(smtp_script(["user@example.test"], body()))
    p.stdin.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        q = mx.run("status", "-j")
        if q.returncode == 0 and q.stdout.strip():
            break
        time.sleep(0.05)
    assert mx.status_json(), "never committed"
    started = time.time()
    if how == "flush":
        log = flush(mx)
    else:
        qid = mx.status_json()[0]["id"]
        d = mx.run("delete", qid)
        assert d.returncode == 0, d.stderr
        log = d.stderr.decode()
    waited = time.time() - started
    p.wait(30)
    out, err = p.stdout.read(), p.stderr.read()
    assert b"queued as" in out, err
    assert waited > 1, ("no wait for the copy", log, err)
    assert len(rec.messages) == (1 if how == "flush" else 0), (log, err)
    assert visible(mbox) == [] and markers(mx.spool) == [], (log, err)


def quota_total(user):
    lines = open(os.path.join(user, "maildirsize")).read().splitlines()
    return lines[0], sum(int(l.split()[0]) for l in lines[1:] if l)


@needs_strace
def test_quota_kept_in_maildirsize_without_a_scan(mx, dns, tmp_path):
    """The user's total is the Maildir++ maildirsize file: made by a scan
    when missing, then one line appended per copy.  The 100th copy reads
    neither new/ nor cur/ (strace: no open of them, no getdents), and the
    quota holds from the file alone; a file that says over quota and has
    not changed for 15 minutes is recalculated from a scan."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port,
                  extra=("mailbox-max-size 100000",))
    user = os.path.join(mbox, "example.test", "user")
    send(mx, ["user@example.test"], body("one"))
    size = os.path.getsize(copies(mbox)[0])
    assert quota_total(user) == ("100000S", size)
    # 98 read messages more (planted: maildirsize does not know them).
    for i in range(98):
        open(os.path.join(user, "cur", "1764700000.M%dP1.h,S=500:2,S" % i),
             "w").write("x")
    mx.give(mbox)
    trace = str(tmp_path / "trace")
    p = subprocess.run(["strace", "-f", "-o", trace, "-e",
                        "trace=openat,getdents64", MXFB, "receive"],
                       env=mx.env(UNDER_STRACE),
                       input=smtp_script(["user@example.test"], body("two")),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert b"queued as" in p.stdout, p.stderr
    calls = open(trace).read()
    assert "getdents64" not in calls
    assert not re.search(r'openat\(\d+, "cur"', calls), calls
    assert len(copies(mbox)) == 100
    assert quota_total(user) == ("100000S", 2 * size)
    # The file says nearly full: over quota, nothing scanned.
    open(os.path.join(user, "maildirsize"), "w").write(
        "100000S\n%d 2\n%d 1\n" % (2 * size, 99900 - 2 * size))
    mx.give(mbox)
    qid, log = send(mx, ["user@example.test"], body("three"))
    assert "status=over-quota" in log and len(copies(mbox)) == 100
    # Stale (unchanged for 15 minutes) and over: recalculated from a
    # scan (2 copies and 98 planted files), under quota, copied.
    old = time.time() - 16 * 60
    os.utime(os.path.join(user, "maildirsize"), (old, old))
    qid, log = send(mx, ["user@example.test"], body("four"))
    assert COPIED.search(log)["id"] == qid, log
    assert quota_total(user) == ("100000S", 2 * size + 98 * 500 +
                                 os.path.getsize(COPIED.search(log)["path"]))
    assert len(copies(mbox)) == 101


@needs_strace
def test_big_maildirsize_compacted_not_rescanned(mx, dns, tmp_path):
    """A maildirsize grown past 5120 bytes (Maildir++'s limit) is
    rewritten as its own sum, without reading new/ or cur/ (planted
    files there that it does not count stay uncounted), and the copy's
    line lands in the new file."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port,
                  extra=("mailbox-max-size 100000",))
    user = os.path.join(mbox, "example.test", "user")
    send(mx, ["user@example.test"], body("one"))
    size = os.path.getsize(copies(mbox)[0])
    open(os.path.join(user, "cur", "1764700000.M1P1.h,S=500:2,S"),
         "w").write("x")
    with open(os.path.join(user, "maildirsize"), "w") as f:
        f.write("100000S\n%d 1\n" % size + "10 1\n-10 -1\n" * 500)
    assert os.path.getsize(os.path.join(user, "maildirsize")) > 5120
    mx.give(mbox)
    trace = str(tmp_path / "trace")
    p = subprocess.run(["strace", "-f", "-o", trace, "-e",
                        "trace=openat,getdents64", MXFB, "receive"],
                       env=mx.env(UNDER_STRACE),
                       input=smtp_script(["user@example.test"], body("two")),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert b"queued as" in p.stdout, p.stderr
    calls = open(trace).read()
    assert "getdents64" not in calls
    assert not re.search(r'openat\(\d+, "cur"', calls), calls
    assert len(copies(mbox)) == 3          # two copies, the planted one
    assert os.path.getsize(os.path.join(user, "maildirsize")) < 200
    assert quota_total(user) == ("100000S", 2 * size)


@needs_strace
def test_finished_recipients_copy_is_looked_for_once(mx, dns, tmp_path,
                                                     primary_factory):
    """A recipient delivered while another of the message is deferred: its
    copy leaves at that claim's end, and later claims (the other still
    deferred) do not look for it again (no open of its Maildir)."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port,
                  users=("done@example.test", "later@example.test"))
    qid, log = send(mx, ["done@example.test", "later@example.test"], body())
    assert len(copies(mbox, user="done")) == 1
    c, rec = primary_factory("127.0.0.2", port)
    rec.rcpt_replies["later@example.test"] = "451 4.2.1 try later"
    log = flush(mx)
    assert copies(mbox, user="done") == [], log
    assert len(copies(mbox, user="later")) == 1
    time.sleep(1.2)				# retry-min 1s
    trace = str(tmp_path / "trace")
    p = subprocess.run(["strace", "-f", "-o", trace, "-e", "trace=openat",
                        MXFB, "flush", "-f"], env=mx.env(UNDER_STRACE),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    calls = open(trace).read()
    assert '"later"' in calls		# the message was claimed again
    assert '"done"' not in calls, calls
    del rec.rcpt_replies["later@example.test"]
    flush(mx)
    assert copies(mbox, user="later") == [] and markers(mx.spool) == []


def test_recovery_keeps_a_young_owed_line(mx, dns, tmp_path):
    """receive writes "owed" (a copy it could not start) before its
    commit: recovery, seeing no message, must not take it for an orphan
    at once, only once it is an hour old."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    qid, log = send(mx, ["user@example.test"], body())
    mx.run("delete", qid, check=True)
    index = os.path.join(mx.spool, "mailbox", qid)
    open(index, "w").write("M1\nowed user@example.test\n")
    mx.give(mx.spool)
    flush(mx)
    assert os.path.exists(index)
    old = time.time() - 3601
    os.utime(index, (old, old))
    flush(mx)
    assert not os.path.exists(index)


@needs_strace
@pytest.mark.parametrize("call,n", [("renameat2", 1), ("flock", 1)])
def test_flush_killed_while_making_an_owed_copy(mx, dns, tmp_path,
                                                primary_factory, call, n):
    """receive killed after its commit, as it renames the copy into new/:
    the copy is owed.  flush killed while making it (at its rename into new/,
    or at the message's lock): nothing half made is visible, and the next
    flush makes it, once."""
    port = free_port("127.0.0.2")
    mbox = outage(mx, dns, tmp_path, port)
    mx.run("receive", input=b"QUIT\r\n")
    os.mkdir(os.path.join(mx.spool, "mailbox"), 0o700)
    mx.give(mx.spool)
    p = killed_at(mx, ["receive"], "renameat2", 1,
                  smtp_script(["user@example.test"], body()))
    assert p.returncode in (-9, 137) and len(mx.status_json()) == 1
    assert visible(mbox) == []
    qid = mx.status_json()[0]["id"]
    stored = mx.run("status", "-b", qid, check=True).stdout
    p = killed_at(mx, ["flush", "-f"], call, n)
    assert p.returncode in (-9, 137) or (
        p.returncode == 70 and b"died: signal 9" in p.stderr), p.stderr
    assert_safe(mx, mbox, stored)
    assert visible(mbox) == []
    flush(mx)
    assert len(visible(mbox)) == 1
    assert_safe(mx, mbox, stored)
    c, rec = primary_factory("127.0.0.2", port)
    flush(mx)
    assert len(rec.messages) == 1 and visible(mbox) == []
