"""A flush worker that dies is never silent: killed by a signal while it
talks to a primary, it is logged with its domain, pid and signal, its
claim goes back to the queue, the messages of its share are recorded as
deferred with that reason (one attempt), the summary counts them, and
flush exits 70 (EX_SOFTWARE) so that cron mails the administrator.
Workers of other domains finish their work.
"""
import os
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import MXFB, free_port
from test_flush import message


class SilentPrimary:
    """Greets, then reads and never answers: a worker waits in EHLO."""

    def __init__(self, host):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.connected = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.sendall(b"220 silent.example.test ESMTP\r\n")
            self.conns.append(c)
            self.connected.set()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_killed_worker_is_reported_and_its_mail_deferred(mx, dns,
                                                          primary_factory):
    silent = SilentPrimary("127.0.0.2")
    # The other domain's primary listens on the same port number.
    good, rec = primary_factory("127.0.0.3", port=silent.port)
    try:
        dns.mx("example.test", 10, "mx1.example.test")
        dns.a("mx1.example.test", "127.0.0.2")
        dns.mx("other.test", 10, "mx1.other.test")
        dns.a("mx1.other.test", "127.0.0.3")
        for d in ("example.test", "other.test"):
            dns.mx(d, 20, "backup.example.test")
        dns.a("backup.example.test", "127.0.0.1")
        mx.config("relay-domain other.test", "smtp-port %d" % silent.port,
                  "command-timeout 60s", "connect-timeout 5s",
                  "retry-min 60s", "retry-max 1h")
        stuck = [mx.inject("s@sender.test", ["u%d@example.test" % i],
                           message("stuck %d" % i)) for i in range(2)]
        fine = mx.inject("s@sender.test", ["u@other.test"], message("fine"))

        p = subprocess.Popen([MXFB, "flush"], env=mx.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert silent.connected.wait(20), "no worker reached the primary"
        victim = None
        deadline = time.time() + 10
        while victim is None and time.time() < deadline:
            # The worker of example.test is the child whose socket the
            # silent primary holds: the one still running.
            kids = children(p.pid)
            if kids and len(rec.messages) == 1:
                victim = kids[0] if len(kids) == 1 else None
            time.sleep(0.05)
        assert victim is not None, "no single live worker: %r" % kids
        os.kill(victim, signal.SIGSEGV)
        out, err = p.communicate(timeout=30)
        out, err = out.decode(), err.decode(errors="replace")
    finally:
        silent.close()

    assert p.returncode == 70, (p.returncode, out, err)
    # A sanitizer build catches the SIGSEGV itself, reports it and exits
    # (or aborts): the worker then dies otherwise, and is reported so.
    how = "signal %d" % signal.SIGSEGV
    if "Sanitizer" in err:
        how = r"(signal \d+|exit status \d+)"
    assert re.search(r"worker for example\.test \(pid %d\) died: %s"
                     % (victim, how), err), err
    assert out == "delivered 1, deferred 2, failed 0\n", out
    # Nothing left claimed by the dead worker.
    assert os.listdir(os.path.join(mx.spool, "active")) == []
    got = {m["id"]: m for m in mx.status_json()}
    assert fine not in got
    for qid in stuck:
        r = got[qid]["recipients"][0]
        assert r["state"] == "deferred", got[qid]
        assert r["attempts"] == 1, got[qid]
        assert re.search("died: " + how, r["last_error"]), r
        assert got[qid]["next_retry"] > time.time() + 30
    # The next flush (not due yet) changes nothing and exits 0.
    p2 = mx.run("flush", timeout=60)
    assert p2.returncode == 0
    assert p2.stdout.decode() == "delivered 0, deferred 0, failed 0\n"


def test_single_domain_worker_death_does_not_kill_flush(mx, dns):
    """One slice runs in a worker too: its death is reported by flush."""
    silent = SilentPrimary("127.0.0.2")
    try:
        dns.mx("example.test", 10, "mx1.example.test")
        dns.a("mx1.example.test", "127.0.0.2")
        dns.mx("example.test", 20, "backup.example.test")
        dns.a("backup.example.test", "127.0.0.1")
        mx.config("smtp-port %d" % silent.port, "command-timeout 60s",
                  "retry-min 60s", "retry-max 1h")
        qid = mx.inject("s@sender.test", ["u@example.test"], message())
        p = subprocess.Popen([MXFB, "flush"], env=mx.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert silent.connected.wait(20)
        kids = children(p.pid)
        assert len(kids) == 1, kids
        os.kill(kids[0], signal.SIGKILL)
        out, err = p.communicate(timeout=30)
    finally:
        silent.close()
    assert p.returncode == 70, err
    assert out.decode() == "delivered 0, deferred 1, failed 0\n"
    assert ("worker for example.test (pid %d) died: signal 9" % kids[0]
            in err.decode())
    r = mx.status_json(qid)[0]["recipients"][0]
    assert (r["state"], r["attempts"]) == ("deferred", 1)
