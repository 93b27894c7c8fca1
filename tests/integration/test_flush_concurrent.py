"""Concurrency and crash safety of `mxfb flush`.

- 4 concurrent `flush -f` over 500 messages deliver each exactly once.
- kill -9 of flush (its whole process group, workers included) at random
  points loses nothing, and re-delivers at most the messages that were in
  flight when it died.
"""
import os
import random
import re
import signal
import subprocess
import time

from conftest import MXFB
from test_flush import FAST, message, setup_domain


def fill(mx, n, rcpt=None):
    """Inject n messages quickly: several inject processes at a time;
    message i goes to rcpt(i) (default u(i % 7)@example.test)."""
    ids = []
    procs = []
    for i in range(n):
        data = message("c%04d" % i).encode()
        to = rcpt(i) if rcpt else "u%d@example.test" % (i % 7)
        p = subprocess.Popen([MXFB, "inject", "-f", "s@sender.test", to],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=mx.env())
        p.stdin.write(data)
        p.stdin.close()
        procs.append(p)
        if len(procs) >= 16:
            q = procs.pop(0)
            ids.append(q.stdout.read().decode().strip())
            assert q.wait() == 0
    for q in procs:
        ids.append(q.stdout.read().decode().strip())
        assert q.wait() == 0
    assert len(set(ids)) == n
    return ids


def group_pids(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getpgid(int(d)) == pgid:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def wait_gone(pids, timeout=20):
    """Killed workers are orphans; this container's init reaps them
    lazily, and a zombie still counts as alive for kill(pid, 0).  Wait
    until they are reaped, as they would be at once on a normal host."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(os.path.exists("/proc/%d" % p) for p in pids):
            return
        time.sleep(0.1)
    raise AssertionError("killed processes still there: %r" % pids)


def subjects(rec):
    out = []
    for m in rec.messages:
        s = re.search(rb"^Subject: (\S+)", m["data"], re.M)
        out.append(s.group(1).decode())
    return out


def test_four_concurrent_flushes_deliver_each_once(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port, "flush-concurrency 4")
    fill(mx, 500)
    procs = [subprocess.Popen([MXFB, "flush", "-f"], env=mx.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    delivered = 0
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        m = re.match(rb"delivered (\d+), deferred (\d+), failed (\d+)", out)
        assert m and m.group(2) == b"0" and m.group(3) == b"0"
        delivered += int(m.group(1))
    got = subjects(rec)
    assert len(got) == 500
    assert sorted(got) == sorted("c%04d" % i for i in range(500))
    assert delivered == 500
    assert mx.status_json() == []


def test_kill_9_loses_nothing(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    orig = rec.handle_DATA

    async def slow(server, session, envelope):
        import asyncio
        await asyncio.sleep(0.01)
        return await orig(server, session, envelope)
    rec.handle_DATA = slow
    conc = 2
    setup_domain(mx, dns, c.port, "flush-concurrency %d" % conc)
    n = 150
    fill(mx, n)
    rnd = random.Random(4)
    kills = 0
    for _ in range(6):
        p = subprocess.Popen([MXFB, "flush", "-f"], env=mx.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        time.sleep(rnd.uniform(0.05, 0.4))
        if p.poll() is None:
            group = group_pids(p.pid)
            os.killpg(p.pid, signal.SIGKILL)
            kills += 1
            p.communicate()
            wait_gone(group)
        else:
            p.communicate()
    # Whatever the kills left (stale claims of dead processes) is
    # recovered and delivered by the next run.
    p = mx.run("flush", "-f", timeout=120)
    assert p.returncode == 0
    assert mx.status_json() == []
    got = subjects(rec)
    want = ["c%04d" % i for i in range(n)]
    assert set(got) == set(want)                 # nothing lost
    dups = len(got) - n
    # At most one message in flight per worker connection per kill.
    assert dups <= kills * conc, (dups, kills)
