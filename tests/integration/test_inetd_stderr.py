"""Under inetd the connection is often stdin, stdout *and* stderr:
nothing but SMTP may reach the client then - no log lines, no error
text naming our files - and a broken configuration is a 421."""
import os
import socket
import subprocess

from conftest import MXFB


def session(mx, script, timeout=10):
    """Run `mxfb receive` with one socket as fds 0, 1 and 2 (as inetd
    does), send script, return everything the client received."""
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([MXFB, "receive"], stdin=theirs, stdout=theirs,
                         stderr=theirs, env=mx.env(), close_fds=True)
    theirs.close()
    ours.settimeout(timeout)
    got = b""
    try:
        if script:
            ours.sendall(script)
        while True:
            chunk = ours.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        ours.close()
        p.wait(timeout)
    return p.returncode, got


def test_bad_config_is_421_without_details(mx):
    with open(mx.conf, "a") as f:
        f.write("no-such-key 1\n")
    rc, got = session(mx, b"")
    assert rc == 78
    assert got.startswith(b"421 4.3.5 "), got
    assert mx.conf.encode() not in got
    assert b"no-such-key" not in got


def test_log_stderr_never_reaches_the_client(mx):
    rc, got = session(mx, b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n"
                      b"RCPT TO:<x@elsewhere.test>\r\nQUIT\r\n")
    assert rc == 0
    lines = got.split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert line[:3].isdigit() and line[3:4] in (b" ", b"-"), line
    assert b"connect from" not in got


def test_stderr_apart_still_gets_errors(mx):
    # tcpserver and tests keep stderr apart: there errors are still shown.
    with open(mx.conf, "a") as f:
        f.write("no-such-key 1\n")
    p = mx.run("receive", input=b"")
    assert p.returncode == 78
    assert b"no-such-key" in p.stderr
