"""A spool directory made by the administrator (install -d -o mxfb ...)
that no mail has reached yet is an empty queue for every cron command: no
error, no exit 73 every five minutes, and nothing created by read-only
runs."""
import os


def fresh(mx):
    os.mkdir(mx.spool, 0o700)
    mx.give()
    return mx


def test_bounce_on_fresh_spool(mx):
    fresh(mx)
    p = mx.run("bounce")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "bounced 0, delayed 0, expired 0"
    p = mx.run("bounce", "-q")
    assert p.returncode == 0 and p.stdout == b""


def test_bounce_id_on_fresh_spool_is_missing(mx):
    fresh(mx)
    p = mx.run("bounce", "0000000000000000A")
    assert p.returncode == 1
    assert b"no such message" in p.stderr


def test_flush_on_fresh_spool(mx):
    fresh(mx)
    p = mx.run("flush")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "delivered 0, deferred 0, failed 0"
    assert b"No such file" not in p.stderr


def test_status_on_fresh_spool(mx):
    fresh(mx)
    p = mx.run("status")
    assert p.returncode == 0 and p.stdout == b""


def test_missing_spool_directory_is_an_error(mx):
    # A spool that does not exist at all is a configuration mistake.
    p = mx.run("bounce")
    assert p.returncode == 73
    assert b"spool" in p.stderr


def test_flush_names_missing_ids(mx):
    """flush ID... for a message that is not there says so on stderr (and
    still exits 0: nothing failed to run)."""
    qid = mx.inject("a@sender.test", ["u@example.test"], "Subject: x\n\nx\n")
    mx.run("delete", qid, check=True)
    p = mx.run("flush", qid)
    assert p.returncode == 0
    assert ("%s: no such message" % qid).encode() in p.stderr
