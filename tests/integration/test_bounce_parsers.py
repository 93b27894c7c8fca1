"""Our DSNs read by an independent bounce parser: flufl.bounce (Debian
python3-flufl.bounce, the detectors of GNU Mailman), as a mailing list
or a bulk sender reads the notifications coming back to it.  Hard
failures must come out as permanent failures of exactly the failed
recipients; a delay warning as a temporary one; a success report
(Action relayed) as no failure at all."""
import email

import pytest

from test_bounce import bounce, dsns, message, raw, smtp_send, wait_age
from test_bounce_flush import REJECT, flush, setup_peers

flufl = pytest.importorskip("flufl.bounce")


def failures(mx):
    """(temporary, permanent) address sets of every queued DSN."""
    temp, perm = set(), set()
    for d in dsns(mx):
        msg = email.message_from_bytes(raw(mx, d["id"]))
        t, p = flufl.all_failures(msg)
        temp |= {a.decode() for a in t}
        perm |= {a.decode() for a in p}
    return temp, perm


def test_primary_refusal_is_a_permanent_failure(mx, dns, primary_factory):
    prec, _ = setup_peers(mx, dns, primary_factory, sender_mx=False)
    prec.rcpt_replies["bob@example.test"] = REJECT
    mx.inject("alice@example.org", ["bob@example.test", "carol@example.test"],
              message())
    flush(mx)
    bounce(mx)
    assert failures(mx) == (set(), {"bob@example.test"})


def test_expiry_is_a_permanent_failure(mx):
    mx.config("queue-lifetime 1s", "delay-warning 0")
    qid = mx.inject("alice@example.org",
                    ["bob@example.test", "carol@example.test"], message())
    wait_age(mx, qid, 1)
    bounce(mx)
    assert failures(mx) == (set(), {"bob@example.test", "carol@example.test"})


def test_administrators_return_is_a_permanent_failure(mx):
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    bounce(mx, qid)
    assert failures(mx) == (set(), {"bob@example.test"})


def test_delay_warning_is_temporary(mx):
    mx.config("queue-lifetime 1h", "delay-warning 1s")
    qid = mx.inject("alice@example.org", ["bob@example.test"], message())
    wait_age(mx, qid, 1)
    bounce(mx)
    assert failures(mx) == ({"bob@example.test"}, set())


def test_success_report_is_no_failure(mx, dns, primary_factory):
    setup_peers(mx, dns, primary_factory, sender_mx=False)
    smtp_send(mx, "alice@example.org",
              [("bob@example.test", ["NOTIFY=SUCCESS,FAILURE"])], message())
    flush(mx)
    bounce(mx)
    assert len(dsns(mx)) == 1
    assert failures(mx) == (set(), set())
