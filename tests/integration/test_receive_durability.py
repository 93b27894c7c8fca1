"""`mxfb receive` durability: a 250 after DATA means the message is in the
queue; anything short of that (client gone mid-DATA, disk full, the
session killed with SIGKILL at any moment) leaves no visible message and
loses none that was acknowledged.  Checked through `mxfb status`.
"""
import os
import random
import re
import socket
import subprocess
import threading

import pytest

from conftest import MXFB, receive_stdio, tmpfs_options


def body_of(mx, qid):
    data = mx.run("status", "-b", qid, check=True).stdout
    lines = data.split(b"\r\n")
    n = 1
    while lines[n].startswith(b"\t"):
        n += 1
    return b"\r\n".join(lines[n:])


def send_message(raw, sender, rcpt, body):
    """One transaction; returns the queue ID from the 250, or raises."""
    assert raw.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    assert raw.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    code, text = raw.cmd("DATA")
    if code != 354:
        return code, text
    raw.send(body + b".\r\n")
    return raw.reply()


def tmp_files(mx):
    d = os.path.join(mx.spool, "tmp")
    return os.listdir(d) if os.path.isdir(d) else []


def test_client_disconnects_mid_data(mx):
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    raw.cmd("MAIL FROM:<a@b.test>")
    raw.cmd("RCPT TO:<r@example.test>")
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 5000)
    raw.close()
    proc.wait(10)
    log = proc.stderr.read().decode()
    assert "lost connection after DATA from unknown[local]" in log
    assert mx.status_json() == []
    assert tmp_files(mx) == []


def test_queue_minfree_refuses_at_mail(mx):
    mx.config("queue-minfree 1000000G")
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    code, text = raw.cmd("MAIL FROM:<a@b.test>")
    assert code == 452 and "4.3.1 Insufficient system storage" in text
    raw.cmd("QUIT")
    proc.wait(10)
    assert "reject: MAIL from unknown[local]: 452 4.3.1" in \
        proc.stderr.read().decode()


@pytest.fixture
def small_spool(mx):
    """The spool on a 1 MiB tmpfs (root only)."""
    os.makedirs(mx.spool, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", tmpfs_options("1m"), "tmpfs",
                        mx.spool], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % p.stderr.decode().strip())
    try:
        mx.config("queue-minfree 0")
        yield mx
    finally:
        for q in mx.procs:
            if q.poll() is None:
                q.kill()
                q.wait()
        subprocess.run(["umount", "-l", mx.spool])


def test_disk_full_gives_452_and_keeps_accepted(small_spool):
    mx = small_spool
    proc, raw = receive_stdio(mx)
    raw.cmd("EHLO c.test")
    accepted = {}
    refused = None
    for i in range(40):
        body = (b"Subject: fill %d\r\n\r\n" % i) + \
            (b"%04d " % i + b"f" * 94 + b"\r\n") * 1000
        code, text = send_message(raw, "a@b.test", "r%d@example.test" % i,
                                  body)
        if code == 250:
            accepted[text.split()[-1]] = body
        else:
            refused = (code, text)
            break
    assert refused is not None, "a 1 MiB spool never filled up"
    assert refused[0] == 452 and "4.3.1" in refused[1], refused
    assert accepted, "not even one message fitted"
    # The session is still usable, and says 452 again, not 250.
    code, text = send_message(raw, "a@b.test", "again@example.test",
                              b"Subject: x\r\n\r\n" + b"y" * 900000 + b"\r\n")
    assert code == 452
    raw.cmd("QUIT")
    proc.wait(10)
    msgs = mx.status_json()
    assert sorted(m["id"] for m in msgs) == sorted(accepted)
    for qid, body in accepted.items():
        assert body_of(mx, qid) == body
    assert tmp_files(mx) == []


def test_kill9_at_random_points(mx):
    rng = random.Random(20261128)
    sent = set()
    acked = {}
    for rnd in range(20):
        proc, raw = receive_stdio(mx)
        killer = threading.Timer(rng.uniform(0.0, 0.06), proc.kill)
        killer.start()
        try:
            raw.cmd("EHLO k.test")
            for i in range(6):
                body = (b"Subject: round %d msg %d\r\n\r\n" % (rnd, i)) + \
                    (b"r%d m%d " % (rnd, i) + b"k" * 70 + b"\r\n") * \
                    rng.randint(1, 20000)
                sent.add(body)
                code, text = send_message(raw, "k@b.test",
                                          "k%d.%d@example.test" % (rnd, i),
                                          body)
                if code == 250:
                    acked[text.split()[-1]] = body
        except (EOFError, OSError, AssertionError):
            pass
        killer.join()
        proc.wait(10)
        raw.close()
    msgs = mx.status_json()
    ids = {m["id"] for m in msgs}
    # Every acknowledged message is there, intact.
    assert set(acked) <= ids
    for qid, body in acked.items():
        assert body_of(mx, qid) == body
    # Whatever else is there (committed, 250 lost to the kill) is whole.
    for m in msgs:
        assert body_of(mx, m["id"]) in sent
    assert len(msgs) >= len(acked)
    print("kill9: acked %d, stored %d, sent %d" % (len(acked), len(msgs), len(sent)))


def test_unusable_spool_gives_421_not_a_dropped_connection(mx):
    """A spool receive cannot open (here: its path is a file) is a 421
    the client retries on, never a silent hang-up or our stderr text on
    the SMTP stream."""
    path = os.path.join(mx.dir, "not-a-dir")
    with open(path, "w") as f:
        f.write("x")
    mx.config(*[("spool %s" % path) if l.startswith("spool ") else l
                for l in mx.base_lines()], replace_base=True)
    client, server = socket.socketpair()
    p = subprocess.Popen([MXFB, "receive"], stdin=server, stdout=server,
                         stderr=subprocess.PIPE, env=mx.env())
    server.close()
    client.settimeout(10)
    data = b""
    while True:
        chunk = client.recv(4096)
        if not chunk:
            break
        data += chunk
    assert p.wait(10) == 75
    assert re.match(rb"^421 4\.3\.0 backup\.example\.test .*\r\n$", data), data
    assert "not-a-dir" in p.stderr.read().decode()


def test_listener_follows_a_replaced_spool(mx):
    """receive -l keeps the spool open from one session to the next (a
    child serves many); when the spool's path names another directory
    (the administrator moved it aside and made a new one), the next
    session writes into the new one, never into the old, unlinked one."""
    import smtplib
    _, port = mx.listen()
    for i in range(2):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail("a@example.org", ["u@example.test"],
                       b"Subject: %d\r\n\r\nbody\r\n" % i)
        if i == 0:
            assert len(mx.status_json()) == 1
            os.rename(mx.spool, mx.spool + ".old")
            os.mkdir(mx.spool, 0o700)
            mx.give()
    listed = mx.status_json()
    assert len(listed) == 1
    raw = mx.run("status", "-b", listed[0]["id"], check=True).stdout
    assert b"Subject: 1\r\n" in raw
    assert len(os.listdir(os.path.join(mx.spool + ".old", "queue"))) == 1
