"""ETRN: the primary announces it is back, the backup delivers at once.

`mxfb receive -l` on 127.0.0.1 with `etrn-allow` naming the primary's
address (127.0.0.2); the primary connects from that address and sends
ETRN; a background `flush -f -d DOMAIN` delivers within seconds.  Also:
ETRN from another address is refused and starts nothing, and a second
`flush -d` for a domain that has one running exits 0 at once.
"""
import smtplib
import subprocess
import time

from conftest import MXFB
from test_flush import message, setup_domain


def etrn(port, source, domain):
    s = smtplib.SMTP("127.0.0.1", port, timeout=20,
                     source_address=(source, 0))
    try:
        s.ehlo("mx1.example.test")
        return s.docmd("ETRN", domain)
    finally:
        s.quit()


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_etrn_from_primary_starts_delivery(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port, "etrn-allow 127.0.0.2/32")
    ids = [mx.inject("s@sender.test", ["a@example.test"], message("e%d" % i))
           for i in range(3)]
    # The primary was down: deferred, not due again for retry-min; the
    # back-off must not stop an ETRN (flush -f).
    c.stop()
    p = mx.run("flush")
    assert p.stdout == b"delivered 0, deferred 3, failed 0\n"
    c, rec = primary_factory("127.0.0.2", port=c.port)
    p = mx.run("flush")
    assert p.stdout == b"delivered 0, deferred 0, failed 0\n"
    _, port = mx.listen()
    t0 = time.time()
    code, text = etrn(port, "127.0.0.2", "example.test")
    assert code == 250, text
    assert wait_for(lambda: len(rec.messages) == 3)
    assert time.time() - t0 < 10
    assert wait_for(lambda: mx.status_json() == [])
    assert ids


def test_etrn_from_elsewhere_refused(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port, "etrn-allow 127.0.0.2/32")
    mx.inject("s@sender.test", ["a@example.test"], message())
    _, port = mx.listen()
    code, _ = etrn(port, "127.0.0.3", "example.test")
    assert code // 100 == 4
    time.sleep(1.5)
    assert rec.messages == []
    assert len(mx.status_json()) == 1


def test_one_flush_per_domain(mx, dns):
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.2", 0))
    srv.listen(5)                     # a primary that never answers
    port = srv.getsockname()[1]
    try:
        setup_domain(mx, dns, port)
        mx.config("smtp-port %d" % port, "connect-timeout 3s",
                  "command-timeout 3s")
        mx.inject("s@sender.test", ["a@example.test"], message())
        first = subprocess.Popen([MXFB, "flush", "-f", "-d", "example.test"],
                                 env=mx.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        # Wait until the first one is connected (holding the lock).
        assert wait_for(lambda: _connected(srv), timeout=10)
        t0 = time.time()
        p = mx.run("flush", "-f", "-d", "example.test")
        assert p.returncode == 0
        assert p.stdout == b""
        assert time.time() - t0 < 2
        out, _ = first.communicate(timeout=30)
        assert out == b"delivered 0, deferred 1, failed 0\n"
    finally:
        srv.close()


def _connected(srv):
    srv.settimeout(0.05)
    try:
        c, _ = srv.accept()
    except OSError:
        return False
    _connected.keep = c
    return True
