"""The Status of a DSN says what flush saw: a connection that failed is
4.4.1 in the delay warning as in the log, not a vague 4.0.0."""
import email
import email.policy
import time

from conftest import free_port


def dsn_of(mx):
    dsns = [o for o in mx.status_json() if o["sender"] == ""]
    assert len(dsns) == 1, dsns
    raw = mx.run("status", "-b", dsns[0]["id"], check=True).stdout
    return email.message_from_bytes(raw, policy=email.policy.default)


def delivery_status(msg):
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return part.as_bytes().decode(errors="replace")
    raise AssertionError("no message/delivery-status part")


def test_delay_warning_status_from_connection_failure(mx):
    port = free_port("127.0.0.2")       # nothing listens there
    mx.config("relay-domain down.test via [127.0.0.2]:%d" % port,
              "delay-warning 1s", "retry-min 1s", "retry-max 2s",
              "connect-timeout 2s")
    mx.inject("alice@sender.test", ["bob@down.test"],
              "Subject: hi\n\nbody\n")
    p = mx.run("flush", "-f", check=True)
    assert "deferred 1" in p.stdout.decode()
    assert "dsn=4.4.1" in p.stderr.decode()
    time.sleep(1.2)
    p = mx.run("bounce", check=True)
    assert "delayed 1" in p.stdout.decode()
    text = delivery_status(dsn_of(mx))
    assert "Action: delayed" in text
    assert "Status: 4.4.1" in text, text
