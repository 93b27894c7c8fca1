"""The window between a DSN's commit and its record in the original.

bounce commits a notification first and records it in the original
second (reported flags, the warned flag, or the original's removal).  A
bounce killed between the two steps leaves the notification queued and
the original unchanged; the next bounce run finds the notification by
its derived ID and only records it.  If a flush delivered (and removed)
the notification before that run, the run would make it again: flush
therefore holds such a notification back until the original records it.

Each test makes that state exactly: the original's files are saved,
bounce runs, the original's files are put back as they were (a crash
right after the DSN's commit, the claim recovered), then flush, bounce
and flush run again.  The sender's MX must receive the notification
exactly once."""
import os

from test_bounce import bounce, dsns, message, originals, wait_age
from test_bounce_flush import REJECT, flush, setup_peers

DEFER = "451 4.3.0 try again later"


def snapshot(mx, qid):
    """The original's queue and state files, as bytes (None: absent)."""
    files = {}
    for sub in ("queue", "state"):
        path = os.path.join(mx.spool, sub, qid)
        try:
            with open(path, "rb") as f:
                files[path] = f.read()
        except FileNotFoundError:
            files[path] = None
    return files


def restore(files):
    for path, data in files.items():
        if data is None:
            if os.path.exists(path):
                os.unlink(path)
            continue
        tmp = path + ".restore"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)


def crash_after_commit(mx, qid, *args):
    """Run bounce (with args), then undo its record in the original: the
    state a kill -9 right after the notification's commit leaves.
    Returns the notification's ID."""
    saved = snapshot(mx, qid)
    bounce(mx, *args)
    [d] = dsns(mx)
    restore(saved)
    assert qid in [m["id"] for m in originals(mx)]
    return d["id"]


def notifications(srec):
    return [m for m in srec.messages if m["from"] in ("", "<>")]


def finish_and_check(mx, srec, qid, dsn_id):
    # flush holds the notification back while the original lacks the
    # record; the original itself is deferred again by the primary.
    p = flush(mx, "-f")
    assert notifications(srec) == []
    assert "%s: held back until bounce has recorded it in %s" % (
        dsn_id, qid) in p.stderr.decode()
    assert dsn_id in [m["id"] for m in dsns(mx)]
    # The next bounce finds it and records it: no second notification.
    p = bounce(mx)
    assert "found after an interrupted run" in p.stderr.decode()
    assert [m["id"] for m in dsns(mx)] == [dsn_id]
    flush(mx, "-f")
    bounce(mx)
    flush(mx, "-f")
    [got] = notifications(srec)
    assert got["rcpts"] == ["alice@example.org"]
    assert dsns(mx) == []


def deferred(mx, dns, primary_factory, lifetime, warning, age=0):
    """One message for bob, whom the primary defers, at least age
    seconds old.  Returns (sender MX recorder, queue ID)."""
    prec, srec = setup_peers(mx, dns, primary_factory,
                             "queue-lifetime " + lifetime,
                             "delay-warning " + warning)
    prec.rcpt_replies["bob@example.test"] = DEFER
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    if age:
        wait_age(mx, qid, age)
    return srec, qid


def test_delay_warning_not_sent_twice(mx, dns, primary_factory):
    srec, qid = deferred(mx, dns, primary_factory, "1h", "1s", age=1)
    dsn_id = crash_after_commit(mx, qid)
    finish_and_check(mx, srec, qid, dsn_id)
    [m] = originals(mx)
    assert m["id"] == qid


def test_failure_report_not_sent_twice(mx, dns, primary_factory):
    prec, srec = setup_peers(mx, dns, primary_factory, "queue-lifetime 1h",
                             "delay-warning 0")
    prec.rcpt_replies["bob@example.test"] = REJECT
    prec.rcpt_replies["carol@example.test"] = DEFER
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"], message())
    flush(mx, "-f", "-d", "example.test")
    dsn_id = crash_after_commit(mx, qid)
    finish_and_check(mx, srec, qid, dsn_id)
    [m] = originals(mx)
    states = {r["addr"]: r["state"] for r in m["recipients"]}
    assert states == {"bob@example.test": "failed",
                      "carol@example.test": "deferred"}


def test_expiry_report_not_sent_twice(mx, dns, primary_factory):
    srec, qid = deferred(mx, dns, primary_factory, "2s", "0", age=2)
    dsn_id = crash_after_commit(mx, qid)
    finish_and_check(mx, srec, qid, dsn_id)
    assert originals(mx) == []


def test_admin_return_finished_by_the_next_cron_run(
        mx, dns, primary_factory):
    """`bounce ID` killed after the notification's commit, before the
    original's removal: the original is neither expired nor owed any
    report, so only the held-back notification tells the next plain
    `bounce` (cron) to finish the return."""
    srec, qid = deferred(mx, dns, primary_factory, "1h", "0")
    dsn_id = crash_after_commit(mx, qid, qid)
    finish_and_check(mx, srec, qid, dsn_id)
    assert originals(mx) == []


def test_delay_warning_recorded_after_warnings_are_turned_off(
        mx, dns, primary_factory):
    """The administrator turned delay warnings off before the rerun:
    the original needs nothing more from bounce, and the notification
    made before is still recorded and sent once."""
    srec, qid = deferred(mx, dns, primary_factory, "1h", "1s", age=1)
    dsn_id = crash_after_commit(mx, qid)
    prec, srec = setup_peers(mx, dns, primary_factory, "queue-lifetime 1h",
                             "delay-warning 0")
    prec.rcpt_replies["bob@example.test"] = DEFER
    finish_and_check(mx, srec, qid, dsn_id)


def test_notification_about_a_deleted_original_is_delivered(
        mx, dns, primary_factory):
    """Nothing to wait for once the original is gone: an administrator's
    delete after the crash lets the notification go at once."""
    srec, qid = deferred(mx, dns, primary_factory, "1h", "1s", age=1)
    crash_after_commit(mx, qid)
    assert mx.run("delete", qid).returncode == 0
    flush(mx, "-f")
    assert len(notifications(srec)) == 1
    assert dsns(mx) == []
