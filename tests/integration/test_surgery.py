"""Queue surgery: hold, release, delete.  Every ID is checked before
anything is touched; each action is logged; missing messages give exit 1,
claimed ones exit 75; a held message is never flushed."""
import os
import re
import socket

import pytest

MSG = b"Subject: surgery\n\nbody\n"


def snapshot(spool):
    """Every file under the spool with its size and mtime."""
    out = {}
    for root, dirs, files in os.walk(spool):
        for f in files:
            p = os.path.join(root, f)
            st = os.stat(p)
            out[os.path.relpath(p, spool)] = (st.st_size, st.st_mtime_ns)
    return out


def bad_ids(good):
    wrong_alphabet = "I" + good[1:]        # I, L, O, U are not in it
    return ["../x", "a/b", "", good + "0", good.lower(), wrong_alphabet,
            "U" + good[1:], good[:-1], good[:8] + "/" + good[9:],
            good[:-1] + "\n", good[:-1] + " "]


@pytest.fixture
def two(mx):
    return [mx.inject("a@example.org", ["u@example.test"], MSG)
            for _ in range(2)]


def held_map(mx):
    return {o["id"]: o["held"] for o in mx.status_json()}


def test_hold_release_delete(mx, two):
    a, b = two
    p = mx.run("hold", a, check=True)
    assert re.search(r"%s: held by administrator \(uid %d\)" % (a, os.getuid()),
                     p.stderr.decode())
    assert held_map(mx) == {a: True, b: False}
    listing = mx.run("status", check=True).stdout.decode()
    assert re.search(r"^%s!" % a, listing, re.M)
    assert "(held by administrator)" in listing
    assert not re.search(r"^%s!" % b, listing, re.M)
    # Holding again changes nothing and is no error.
    p = mx.run("hold", a)
    assert p.returncode == 0 and "already held" in p.stderr.decode()

    p = mx.run("release", a, check=True)
    assert "%s: released by administrator" % a in p.stderr.decode()
    assert held_map(mx) == {a: False, b: False}
    p = mx.run("release", a)
    assert p.returncode == 0 and "not held" in p.stderr.decode()

    mx.run("hold", b, check=True)
    p = mx.run("delete", a, b, check=True)
    err = p.stderr.decode()
    assert "%s: deleted by administrator" % a in err
    assert "%s: deleted by administrator" % b in err
    assert mx.status_json() == []
    assert mx.run("status", check=True).stdout == b""


@pytest.mark.parametrize("cmd", ["hold", "release", "delete"])
def test_bad_ids_touch_nothing(mx, two, cmd):
    a, b = two
    if cmd == "release":
        mx.run("hold", a, b, check=True)
    before = snapshot(mx.spool)
    for bad in bad_ids(a):
        p = mx.run(cmd, a, bad, b)
        assert p.returncode == 64, (cmd, bad, p.stderr)
        assert "not a queue ID" in p.stderr.decode()
        assert snapshot(mx.spool) == before, bad
    p = mx.run(cmd)
    assert p.returncode == 64 and b"usage" in p.stderr
    assert snapshot(mx.spool) == before


@pytest.mark.parametrize("cmd", ["hold", "release", "delete"])
def test_missing_id_others_processed(mx, two, cmd):
    a, b = two
    if cmd == "release":
        mx.run("hold", a, b, check=True)
    missing = a[:-1] + ("0" if a[-1] != "0" else "1")
    assert missing not in two
    p = mx.run(cmd, a, missing, b)
    assert p.returncode == 1
    assert "%s: no such message" % missing in p.stderr.decode()
    m = held_map(mx)
    if cmd == "delete":
        assert m == {}
    else:
        assert m == {a: cmd == "hold", b: cmd == "hold"}


def _claim(mx, qid):
    """Claim a message the way a running flush does (spool/INTERNALS:
    rename queue/ID to active/ID.HOST.PID), with our own live pid."""
    src = os.path.join(mx.spool, "queue", qid)
    dst = os.path.join(mx.spool, "active", "%s.%s.%d" % (
        qid, socket.gethostname(), os.getpid()))
    os.rename(src, dst)
    return src, dst


@pytest.mark.parametrize("cmd", ["hold", "delete"])
def test_claimed_message_is_busy(mx, two, cmd):
    a, b = two
    src, dst = _claim(mx, a)
    p = mx.run(cmd, a, b)
    assert p.returncode == 75, p.stderr
    assert "%s: busy" % a in p.stderr.decode()
    assert "try again" in p.stderr.decode()
    assert os.path.exists(dst)
    # status still sees it, marked as being worked on, bytes and all.
    listing = mx.run("status", check=True).stdout.decode()
    assert re.search(r"^%s\*" % a, listing, re.M)
    assert "(being delivered or bounced)" in listing
    assert mx.run("status", "-b", a, check=True).stdout.endswith(b"body\r\n")
    os.rename(dst, src)
    m = held_map(mx)
    if cmd == "delete":
        assert m == {a: False}
    else:
        assert m == {a: False, b: True}


def test_held_message_never_flushed(mx, dns, primary_factory):
    ctl, rec = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.a("backup.example.test", "127.0.0.9")
    mx.config("smtp-port %d" % ctl.port)
    held = mx.inject("a@example.org", ["h@example.test"], MSG)
    free = mx.inject("a@example.org", ["f@example.test"], MSG)
    mx.run("hold", held, check=True)
    mx.run("flush", "-f", check=True)
    assert [m["rcpts"] for m in rec.messages] == [["f@example.test"]]
    assert [o["id"] for o in mx.status_json()] == [held]
    assert mx.status_json()[0]["held"] is True
    mx.run("flush", "-f", check=True)
    assert len(rec.messages) == 1
    mx.run("release", held, check=True)
    mx.run("flush", "-f", check=True)
    assert [m["rcpts"] for m in rec.messages] == [["f@example.test"],
                                                  ["h@example.test"]]
    assert mx.status_json() == []
    assert free != held


def test_held_message_never_bounced(mx):
    """Past queue-lifetime a held message stays (bounce skips it); once
    released, bounce returns it and removes it."""
    import time
    mx.config("queue-lifetime 1s", "delay-warning 0")
    held = mx.inject("a@example.org", ["h@example.test"], MSG)
    mx.run("hold", held, check=True)
    time.sleep(2.1)     # older than queue-lifetime, by the clock bounce reads
    mx.run("bounce", check=True)
    objs = mx.status_json()
    assert [(o["id"], o["held"]) for o in objs] == [(held, True)]
    mx.run("release", held, check=True)
    mx.run("bounce", check=True)
    left = mx.status_json()
    assert held not in [o["id"] for o in left]
    # What is left is the DSN to the sender, from the null sender.
    assert [o["sender"] for o in left] == [""]
    assert [r["addr"] for r in left[0]["recipients"]] == ["a@example.org"]


def _start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


@pytest.mark.parametrize("same_process", [True, False])
def test_claim_of_a_reused_pid(mx, dns, primary_factory, same_process):
    """Claims name the claimer's pid and start time (active/ID.HOST.PID-
    START).  A claim whose pid is alive but started at another time
    belongs to a dead claimer whose pid was reused: flush takes it back
    at once instead of after claim-timeout.  The live claimer's own
    claim is left alone."""
    ctl, rec = primary_factory("127.0.0.2")
    lines = [l for l in mx.base_lines() if not l.startswith("relay-domain")]
    mx.config(*lines, "relay-domain example.test via [127.0.0.2]:%d" %
              ctl.port, replace_base=True)
    qid = mx.inject("a@example.org", ["r@example.test"], MSG)
    start = _start_ticks(os.getpid()) + (0 if same_process else 1)
    dst = os.path.join(mx.spool, "active", "%s.%s.%d-%d" % (
        qid, socket.gethostname(), os.getpid(), start))
    os.rename(os.path.join(mx.spool, "queue", qid), dst)
    mx.run("flush", "-f", check=True)
    if same_process:
        assert rec.messages == []
        assert os.path.exists(dst)
    else:
        assert [m["rcpts"] for m in rec.messages] == [["r@example.test"]]
        assert mx.status_json() == []


def test_flush_claims_name_its_start_time(mx):
    """The claims flush makes carry its pid and start time: active/ID.
    HOST.PID-START, START as /proc/PID/stat field 22 gives it (seen
    while the primary says nothing after EHLO: flush claims a message
    once a session is up)."""
    import subprocess
    import threading
    import time
    from conftest import MXFB
    silent = socket.socket()
    silent.bind(("127.0.0.2", 0))
    silent.listen(5)
    held = []

    def greet_then_hang():
        try:
            c, _ = silent.accept()
        except OSError:
            return
        held.append(c)
        c.sendall(b"220 silent.example.test ESMTP\r\n")
        c.recv(1024)
        c.sendall(b"250 silent.example.test\r\n")
    threading.Thread(target=greet_then_hang, daemon=True).start()
    lines = [l for l in mx.base_lines() if not l.startswith("relay-domain")]
    mx.config(*lines, "relay-domain example.test via [127.0.0.2]:%d" %
              silent.getsockname()[1], "command-timeout 5s",
              replace_base=True)
    qid = mx.inject("a@example.org", ["r@example.test"], MSG)
    flush = subprocess.Popen([MXFB, "flush", "-f"], env=mx.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        active = os.path.join(mx.spool, "active")
        deadline = time.time() + 5
        names = []
        while not names and time.time() < deadline:
            names = os.listdir(active)
            time.sleep(0.02)
        assert len(names) == 1, names
        m = re.fullmatch(r"%s\.(.+)\.(\d+)-(\d+)" % qid, names[0])
        assert m, names[0]
        # flush itself or one of its workers: alive, and started then.
        assert int(m.group(3)) == _start_ticks(int(m.group(2)))
    finally:
        flush.kill()
        flush.wait()
        silent.close()
        for c in held:
            c.close()
