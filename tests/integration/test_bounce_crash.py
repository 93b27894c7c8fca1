"""kill -9 during `mxfb bounce`: at random short delays, across several
runs, the queue ends with exactly one DSN per original and report kind:
none lost, none made twice."""
import collections
import os
import random
import signal
import subprocess
import time

from conftest import MXFB
from test_bounce import all_dsns, bounce, message, originals, summary, \
    wait_age

N = 24
DELAYED = "Delayed Mail (still being retried)"
UNDELIVERED = "Undelivered Mail Returned to Sender"


def kill_run(mx, rng, argv, ids):
    """Run bounce once and SIGKILL it: alternately after a random short
    delay, or right after it has committed 1-3 new DSNs (the queue/ of
    the spool grows by names that are not originals), which is the
    window between a DSN's commit and the original's update.  Returns
    True if it was killed before it finished."""
    qdir = os.path.join(mx.spool, "queue")
    known = set(ids)
    before = {n for n in os.listdir(qdir) if n not in known}
    target = rng.randint(1, 3)
    by_commit = rng.random() < 0.6
    delay = rng.uniform(0.005, 0.15)
    p = subprocess.Popen([MXFB] + argv, env=mx.env(),
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + (10 if by_commit else delay)
    while p.poll() is None and time.time() < deadline:
        if by_commit:
            new = {n for n in os.listdir(qdir) if n not in known} - before
            if len(new) >= target:
                break
        else:
            time.sleep(0.002)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.wait(10)
    return killed


def kill_runs(mx, rng, runs, ids, argv=("bounce",)):
    return sum(kill_run(mx, rng, list(argv), ids) for _ in range(runs))


def kinds(mx):
    count = collections.Counter()
    for d in all_dsns(mx):
        count[(d.orig_id, d.subject)] += 1
    return count


def inject_many(mx):
    return [mx.inject("alice@example.org",
                      ["bob@example.test", "carol@example.test"],
                      message(subject="m%d" % i)) for i in range(N)]


def test_kill_during_delay_warnings(mx):
    rng = random.Random(20261128)
    mx.config("queue-lifetime 1h", "delay-warning 1s")
    ids = inject_many(mx)
    wait_age(mx, ids[-1], 1)
    assert kill_runs(mx, rng, 12, ids) > 0
    bounce(mx)
    assert summary(bounce(mx)) == (0, 0, 0)
    warned = kinds(mx)
    assert sorted(warned) == sorted((i, DELAYED) for i in ids)
    assert set(warned.values()) == {1}
    assert sorted(m["id"] for m in originals(mx)) == sorted(ids)


def test_kill_during_expiry(mx):
    # The lifetime must outlast the DSNs made during the test itself, so
    # it grows with the cost of a run on this build (sanitizers are slow).
    rng = random.Random(5)
    mx.config("queue-lifetime 1h", "delay-warning 0")
    ids = inject_many(mx)
    start = time.time()
    bounce(mx)
    lifetime = max(6, int(40 * (time.time() - start)) + 4)
    mx.config("queue-lifetime %ds" % lifetime, "delay-warning 0")
    wait_age(mx, ids[-1], lifetime)
    assert kill_runs(mx, rng, 12, ids) > 0
    bounce(mx)
    assert summary(bounce(mx)) == (0, 0, 0)
    assert originals(mx) == []
    final = kinds(mx)
    assert sorted(final) == sorted((i, UNDELIVERED) for i in ids)
    assert set(final.values()) == {1}
    for d in all_dsns(mx):
        assert d.addrs() == ["bob@example.test", "carol@example.test"]
        assert {r["Status"] for r in d.rcpts} == {"4.4.7"}


def test_kill_during_admin_bounce(mx):
    rng = random.Random(77)
    ids = inject_many(mx)
    killed = kill_runs(mx, rng, 12, ids, ["bounce"] + ids)
    assert killed > 0
    left = [m["id"] for m in originals(mx)]
    if left:
        bounce(mx, *left)
    assert originals(mx) == []
    final = kinds(mx)
    assert sorted(final) == sorted((i, UNDELIVERED) for i in ids)
    assert set(final.values()) == {1}


def test_kill_during_failure_reports(mx, dns, primary_factory):
    """Failed recipients reported while the message stays queued (other
    recipients deferred): the report's ID depends on how many recipients
    were reported before, so a crash between the report and the update
    must be finished, not repeated, and a later failure gets its own."""
    from test_bounce_flush import REJECT, flush, setup_peers
    prec, _ = setup_peers(mx, dns, primary_factory, "queue-lifetime 1h",
                          "delay-warning 0", sender_mx=False)
    prec.rcpt_replies["bob@example.test"] = REJECT
    prec.rcpt_replies["carol@example.test"] = "451 4.3.0 try again later"
    ids = inject_many(mx)
    flush(mx, "-f", "-d", "example.test")
    rng = random.Random(99)
    assert kill_runs(mx, rng, 12, ids) > 0
    bounce(mx)
    assert summary(bounce(mx)) == (0, 0, 0)
    first = kinds(mx)
    assert sorted(first) == sorted((i, UNDELIVERED) for i in ids)
    assert set(first.values()) == {1}
    for d in all_dsns(mx):
        assert d.addrs() == ["bob@example.test"]
    assert len(originals(mx)) == N

    prec.rcpt_replies["carol@example.test"] = "550 5.2.1 mailbox disabled"
    flush(mx, "-f", "-d", "example.test")
    assert kill_runs(mx, rng, 12, ids) > 0
    bounce(mx)
    assert summary(bounce(mx)) == (0, 0, 0)
    assert originals(mx) == []
    per = collections.defaultdict(list)
    for d in all_dsns(mx):
        per[d.orig_id].append(tuple(d.addrs()))
    assert sorted(per) == sorted(ids)
    for reports in per.values():
        assert sorted(reports) == [("bob@example.test",),
                                   ("carol@example.test",)]
