"""systemd socket activation (sd_listen_fds(3)), done here the way
systemd does it: the sockets at fd 3 and up, LISTEN_FDS, and LISTEN_PID
set to the pid of the process that execs mxfb.

Accept=no: `mxfb receive` (no -l) serves the inherited listening sockets
as `-l` would, and on SIGTERM leaves them listening for their owner.
Accept=yes: fd 3 is the connection; it is served as under inetd, also
when standard input is not the socket."""
import os
import signal
import smtplib
import socket
import subprocess

from conftest import MXFB

MSG = b"Subject: activated\r\n\r\nHello.\r\n"


def activate(mx, fds, stdin=subprocess.DEVNULL, nfds=None, pid="$$"):
    """Start `mxfb receive` with the descriptors fds moved to 3, 4, ...
    (bash, in two steps so that none overwrites another), LISTEN_PID the
    shell's pid ($$), which exec hands on to mxfb."""
    park = " ".join("%d<&%d %d<&-" % (40 + i, fd, fd)
                    for i, fd in enumerate(fds))
    place = " ".join("%d<&%d %d<&-" % (3 + i, 40 + i, 40 + i)
                     for i in range(len(fds)))
    script = ("exec %s; exec %s; LISTEN_PID=%s LISTEN_FDS=%d "
              "exec \"$0\" receive" % (park, place, pid,
                                        len(fds) if nfds is None else nfds))
    return subprocess.Popen(["bash", "-c", script, MXFB], env=mx.env(),
                            pass_fds=list(fds), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def listening():
    """A listening socket on a free loopback port."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def send(port, rcpt="bob@example.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.sendmail("alice@sender.test", [rcpt], MSG)


def test_accept_no_serves_the_inherited_socket(mx):
    ls = listening()
    port = ls.getsockname()[1]
    p = activate(mx, [ls.fileno()])
    try:
        for i in range(3):
            send(port, "u%d@example.test" % i)
        assert sorted(r["addr"] for m in mx.status_json()
                      for r in m["recipients"]) == \
            ["u0@example.test", "u1@example.test", "u2@example.test"]
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert b"listening on 127.0.0.1:%d (fd 3, socket activation)" % port \
        in err
    # The socket is still ours, listening: never shut down by mxfb.
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    ls.settimeout(5)
    conn, _ = ls.accept()
    conn.close()
    c.close()
    ls.close()


def test_accept_no_two_sockets(mx):
    a, b = listening(), listening()
    p = activate(mx, [a.fileno(), b.fileno()])
    try:
        send(a.getsockname()[1], "a@example.test")
        send(b.getsockname()[1], "b@example.test")
        assert len(mx.status_json()) == 2
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    assert b"(fd 4, socket activation)" in err
    a.close()
    b.close()


def test_accept_yes_connection_at_fd3(mx):
    """Accept=yes without StandardInput=socket: the connection only at
    fd 3, standard input /dev/null."""
    ls = listening()
    c = socket.create_connection(ls.getsockname(), timeout=10)
    conn, _ = ls.accept()
    p = activate(mx, [conn.fileno()])
    conn.close()
    f = c.makefile("rb")
    assert f.readline().startswith(b"220 ")
    c.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221 ")
    assert p.wait(10) == 0
    c.close()
    ls.close()


def test_listen_pid_of_another_process_is_ignored(mx):
    """Variables meant for another process: an inetd session on fd 0/1,
    the socket at fd 3 untouched."""
    ls = listening()
    p = activate(mx, [ls.fileno()], stdin=subprocess.PIPE, pid="1")
    out, err = p.communicate(b"QUIT\r\n", timeout=10)
    assert out.startswith(b"220 ") and b"221 " in out, (out, err)
    assert b"socket activation" not in err
    ls.close()


def test_not_a_listening_socket(mx):
    """LISTEN_FDS=2 where fd 4 is no listening socket: refused, exit 69."""
    ls = listening()
    r, w = os.pipe()
    p = activate(mx, [ls.fileno(), r])
    os.close(r)
    os.close(w)
    _, err = p.communicate(timeout=10)
    assert p.returncode == 69, err
    assert b"fd 4 is not a listening socket" in err
    ls.close()
