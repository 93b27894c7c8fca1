"""flush and bounce when the spool's file system is full (a 1 MiB tmpfs,
root only): nothing is lost, nothing is claimed that did not happen, and
the work is done once there is room again."""
import os
import re

from conftest import free_port
from test_flush import FAST, flush, setup_domain
from test_bounce import bounce, dsns, message, originals, wait_age
from test_receive_durability import small_spool  # noqa: F401 (fixture)


def fill(mx):
    """Fill the spool's file system; returns the filler's path."""
    path = os.path.join(mx.spool, "filler")
    # Unbuffered: no half-written buffer left for close() to fail on.
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return path


def test_flush_and_bounce_on_a_full_disk(small_spool, dns):
    mx = small_spool
    setup_domain(mx, dns, free_port("127.0.0.2"), "queue-minfree 0",
                 "queue-lifetime 2s", "delay-warning 0")
    ids = sorted(mx.inject("alice@example.org", ["bob@example.test"],
                           message(subject="m%d" % i)) for i in range(3))
    filler = fill(mx)

    # The primary is down; the deferrals cannot be saved.  The messages
    # go back to the queue all the same, each named in the log.
    p = mx.run("flush", "-f", timeout=120)
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    assert not re.search(r"^mxfb/flush\[\d+\]: : ", err, re.M), err
    for qid in ids:
        assert "%s: cannot return message to the queue" % qid in err
    assert sorted(m["id"] for m in mx.status_json()) == ids
    assert os.listdir(os.path.join(mx.spool, "active")) == []

    # Expired, but the DSN cannot be written: 75, nothing said to be
    # returned, every original kept.
    wait_age(mx, ids[-1], 2)
    p = bounce(mx, expect=75)
    err = p.stderr.decode()
    assert "returned to sender" not in err
    assert "spool commit: No space left on device" in err
    assert sorted(m["id"] for m in originals(mx)) == ids
    assert dsns(mx) == []
    assert os.listdir(os.path.join(mx.spool, "tmp")) == []

    # Room again: returned once, and gone.
    os.unlink(filler)
    p = bounce(mx)
    assert p.stderr.decode().count("returned to sender") == 3
    assert originals(mx) == []
    assert len(dsns(mx)) == 3


def test_admin_bounce_of_held_message_stays_held(small_spool):
    """bounce ID of a held message whose DSN cannot be queued (the spool's
    file system is full): 75, no DSN, and the message is still held, not
    released for the next flush.  With room again it is returned."""
    mx = small_spool
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    mx.run("hold", qid, check=True)
    filler = fill(mx)
    p = bounce(mx, qid, expect=75)
    err = p.stderr.decode()
    assert "%s: could not be returned" % qid in err, err
    [m] = mx.status_json()
    assert m["id"] == qid and m["held"] is True
    assert os.listdir(os.path.join(mx.spool, "hold")) == [qid]
    assert os.listdir(os.path.join(mx.spool, "queue")) == []
    assert os.listdir(os.path.join(mx.spool, "active")) == []
    os.unlink(filler)
    bounce(mx, qid)
    assert originals(mx) == [] and len(dsns(mx)) == 1
