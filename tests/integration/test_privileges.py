"""Issue 11 point 3: no root where input is parsed or the spool written.

Started as root, every command becomes the `user` account (conftest's
base configuration names `nobody`) before it reads network input or
opens the spool: `receive -l` binds first, inetd-mode `receive` switches
before it reads a byte, the TLS key is read while still root.  `user
root` and an account that does not exist are configuration errors (exit
78, file:line); a command not started as root switches to nobody.  A
missing spool is made by root and handed to the user, who makes its
subdirectories."""
import os
import pwd
import smtplib
import socket
import subprocess
import time

import pytest

from certs import Certs
from conftest import (MXFB, USER, free_port, reachable, receive_stdio,
                      user_ids)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

HOST = "backup.example.test"
MSG = b"Subject: priv\r\n\r\nx\r\n"
NO_SUCH_USER = "mxfb-no-such-user"


def ids_of(pid):
    """(real, effective, saved, fs) uids, the same gids, and the
    supplementary groups of a process, from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        fields = dict(l.split(":", 1) for l in f.read().splitlines())
    uids = [int(x) for x in fields["Uid"].split()]
    gids = [int(x) for x in fields["Gid"].split()]
    groups = [int(x) for x in fields["Groups"].split()]
    return uids, gids, groups


def assert_runs_as_user(pid):
    uid, gid = user_ids()
    uids, gids, groups = ids_of(pid)
    assert uids == [uid] * 4, uids
    assert gids == [gid] * 4, gids
    assert 0 not in groups, groups
    assert set(groups) <= set(g for g in os.getgrouplist(USER, gid)), groups


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def spool_files(mx):
    return [os.path.join(dp, n) for dp, ds, fs in os.walk(mx.spool)
            for n in ds + fs]


def assert_spool_belongs_to_user(mx):
    uid, _ = user_ids()
    paths = [mx.spool] + spool_files(mx)
    assert len(paths) > 7, paths
    for path in paths:
        assert os.lstat(path).st_uid == uid, path


def test_listener_and_its_sessions_run_as_user(mx):
    """receive -l binds as root, then the listener and every session
    child run as the user (real, effective, saved and file-system ids,
    no supplementary group of root's); what they queue is the user's."""
    proc, port = mx.listen()
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.test")
    # The port is bound before the switch, the greeting sent after it.
    assert_runs_as_user(proc.pid)
    kids = children(proc.pid)
    assert kids, "no session child"
    for kid in kids:
        assert_runs_as_user(kid)
    s.sendmail("a@sender.test", ["u@example.test"], MSG)
    s.quit()
    assert len(mx.status_json()) == 1
    assert_spool_belongs_to_user(mx)


def test_inetd_session_runs_as_user(mx):
    """Under inetd the session is the user's by the time the greeting
    is out (the switch comes before any byte is read)."""
    p, raw = receive_stdio(mx)
    assert_runs_as_user(p.pid)
    assert raw.cmd("EHLO client.test")[0] == 250
    assert raw.cmd("MAIL FROM:<a@sender.test>")[0] == 250
    assert raw.cmd("RCPT TO:<u@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert raw.reply()[0] == 250
    assert raw.cmd("QUIT")[0] == 221
    raw.close()
    p.wait(10)
    assert_spool_belongs_to_user(mx)


@pytest.mark.parametrize("cmd", ["flush", "bounce", "probe"])
def test_cron_commands_run_as_user(mx, dns, cmd):
    """Each command started as root writes into the spool as the user:
    flush a failure (example.test has no MX), bounce its notification,
    probe its note; every file there is the user's."""
    mx.inject("a@sender.test", ["u@example.test"], MSG)
    mx.config("delay-warning 1s", "retry-min 0s")
    time.sleep(1.1)
    p = mx.run(cmd)
    assert p.returncode in ((0, 1, 2, 3) if cmd == "probe" else (0,)), \
        p.stderr
    assert_spool_belongs_to_user(mx)


def test_missing_spool_made_by_root_for_the_user(mx, tmp_path):
    """The spool (and its missing parents) made as root, the spool
    itself handed to the user, its subdirectories made by the user."""
    mx.spool = str(tmp_path / "var" / "spool" / "mxfb")
    mx.config()
    mx.inject("a@sender.test", ["u@example.test"], MSG)
    st = os.stat(mx.spool)
    assert (st.st_uid, st.st_gid) == user_ids()
    assert st.st_mode & 0o7777 == 0o700
    assert os.stat(os.path.dirname(mx.spool)).st_uid == 0
    assert sorted(os.listdir(mx.spool)) == ["active", "corrupt", "domains",
                                            "hold", "queue", "state", "tmp"]
    assert_spool_belongs_to_user(mx)


def test_missing_spool_made_by_inetd_receive(mx):
    assert not os.path.exists(mx.spool)
    p, raw = receive_stdio(mx)
    assert raw.cmd("QUIT")[0] == 221
    p.wait(10)
    assert_spool_belongs_to_user(mx)


def test_missing_spool_never_seen_half_made(mx, tmp_path):
    """A command that finds the spool while another is still making it
    (root's, not yet handed to the user) would fail as the user: the
    spool appears only once it is the user's.  strace holds the first
    command just before it hands the directory over."""
    mx.spool = str(tmp_path / "var" / "mxfb")
    mx.config()
    parent = os.path.dirname(mx.spool)
    slow = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null",
                             "-e", "inject=fchown:delay_enter=1500000",
                             MXFB, "inject", "-f", "a@sender.test",
                             "slow@example.test"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=mx.env({
                                # LeakSanitizer cannot run under ptrace
                                # (make asan).
                                "ASAN_OPTIONS": "detect_leaks=0"}))
    deadline = time.time() + 10
    while not (os.path.isdir(parent) and os.listdir(parent)):
        assert time.time() < deadline and slow.poll() is None
        time.sleep(0.01)
    fast = mx.run("inject", "-f", "a@sender.test", "fast@example.test",
                  input=MSG)
    assert fast.returncode == 0, fast.stderr
    out, err = slow.communicate(MSG, timeout=30)
    assert slow.returncode == 0, err
    assert sorted(o["recipients"][0]["addr"] for o in mx.status_json()) == [
        "fast@example.test", "slow@example.test"]
    assert os.listdir(parent) == ["mxfb"]
    assert_spool_belongs_to_user(mx)


def config_error(mx, *args, **kw):
    p = mx.run(*args, **kw)
    return p.returncode, p.stderr.decode(errors="replace")


COMMANDS = [("status",), ("flush",), ("bounce",), ("hold", "1NGMMA9Q2H87TK5W9"),
            ("inject", "u@example.test"), ("receive",)]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_user_root_is_refused(mx, args):
    lines = [l for l in mx.base_lines() if not l.startswith("user ")]
    mx.config(*lines, "user root", replace_base=True)
    rc, err = config_error(mx, *args, input=MSG)
    assert rc == 78, err
    assert "%s:%d: user root" % (mx.conf, len(lines) + 1) in err, err
    assert not os.path.exists(mx.spool)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_missing_user_is_refused(mx, args):
    lines = [l for l in mx.base_lines() if not l.startswith("user ")]
    mx.config(*lines, "user " + NO_SUCH_USER, replace_base=True)
    rc, err = config_error(mx, *args, input=MSG)
    assert rc == 78, err
    assert "%s:%d: user %s: no such account" % (
        mx.conf, len(lines) + 1, NO_SUCH_USER) in err, err
    assert not os.path.exists(mx.spool)


def test_listener_refuses_root_before_serving(mx):
    lines = [l for l in mx.base_lines() if not l.startswith("user ")]
    mx.config(*lines, "user root", replace_base=True)
    p = mx.run("receive", "-l", "127.0.0.1:%d" % free_port(), timeout=20)
    assert p.returncode == 78, p.stderr
    assert b"user root" in p.stderr


def test_probe_with_missing_user_is_unknown(mx):
    """probe is a monitoring plugin: a configuration error is UNKNOWN."""
    lines = [l for l in mx.base_lines() if not l.startswith("user ")]
    mx.config(*lines, "user " + NO_SUCH_USER, replace_base=True)
    rc, err = config_error(mx, "probe")
    assert rc == 3, err
    assert "user %s: no such account" % NO_SUCH_USER in err


def test_default_user_mxfb(mx):
    """Without a `user` line the account is mxfb: where it does not
    exist, the error says it is the default."""
    try:
        pwd.getpwnam("mxfb")
        pytest.skip("this machine has an mxfb account")
    except KeyError:
        pass
    lines = [l for l in mx.base_lines() if not l.startswith("user ")]
    mx.config(*lines, replace_base=True)
    rc, err = config_error(mx, "status")
    assert rc == 78, err
    assert "%s: user mxfb (the default): no such account" % mx.conf in err


def test_bad_user_name_is_a_syntax_error(mx):
    lines = [l for l in mx.base_lines() if not l.startswith("user ")]
    mx.config(*lines, "user ../x", replace_base=True)
    rc, err = config_error(mx, "status")
    assert rc == 78, err
    assert "%s:%d: user: bad user name" % (mx.conf, len(lines) + 1) in err


def as_user(mx, *args, input=None):
    """Run mxfb as USER from the start (not root: no switch).  USER must
    reach the binary: a clean clone under `mktemp -d` (0700) is not."""
    uid, gid = user_ids()
    reachable(os.path.dirname(os.path.abspath(MXFB)))
    return subprocess.run([MXFB] + list(args), input=input,
                          capture_output=True, env=mx.env(), timeout=60,
                          user=uid, group=gid, extra_groups=[])


def test_not_root_no_switch(mx):
    """Not started as root: no switch, and `user` is not looked up (an
    account that does not exist, even root, is no error)."""
    os.mkdir(mx.spool, 0o700)
    mx.give()
    for n, user in enumerate((NO_SUCH_USER, "root"), 1):
        lines = [l for l in mx.base_lines() if not l.startswith("user ")]
        mx.config(*lines, "user " + user, replace_base=True)
        p = as_user(mx, "inject", "-f", "a@sender.test", "u@example.test",
                    input=MSG)
        assert p.returncode == 0, p.stderr
        p = as_user(mx, "status", "-j")
        assert p.returncode == 0, p.stderr
        assert len(p.stdout.splitlines()) == n, p.stdout
    mx.config()
    assert len(mx.status_json()) == 2


def test_tls_key_only_root_can_read(mx, tmp_path):
    """tls-key readable by root alone (0600 root:root, in a 0700 root
    directory) is read before the switch: STARTTLS works in receive -l
    and under inetd, and the sessions run as the user."""
    import ssl
    certs = Certs(tmp_path / "certs")
    os.chmod(certs.dir, 0o700)
    c = certs.valid(HOST)
    assert os.stat(c.key).st_uid == 0
    assert os.stat(c.key).st_mode & 0o077 == 0
    mx.config("tls-cert %s" % c.chain, "tls-key %s" % c.key)
    ctx = ssl.create_default_context(cafile=certs.ca)

    proc, port = mx.listen()
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s._host = HOST
    s.starttls(context=ctx)
    s.ehlo(HOST)
    for kid in children(proc.pid):
        assert_runs_as_user(kid)
    s.sendmail("a@sender.test", ["u@example.test"], MSG)
    s.quit()

    client, server = socket.socketpair()
    p = subprocess.Popen([MXFB, "receive"], stdin=server, stdout=server,
                         stderr=subprocess.PIPE, env=mx.env())
    server.close()
    mx.procs.append(p)
    s = smtplib.SMTP()
    s.sock = client
    s._host = HOST
    assert s.getreply()[0] == 220
    assert_runs_as_user(p.pid)
    s.starttls(context=ctx)
    s.ehlo(HOST)
    s.sendmail("a@sender.test", ["u@example.test"], MSG)
    s.quit()
    p.wait(10)
    received = [mx.run("status", "-b", o["id"], check=True).stdout
                for o in mx.status_json()]
    assert len(received) == 2
    assert all(b"with ESMTPS" in r for r in received), received
    assert_spool_belongs_to_user(mx)


def test_etrn_flush_inherits_the_user(mx, dns):
    """A flush started by ETRN runs as the user too (it is forked from a
    session that already switched, and reads the configuration as the
    user: the file must be readable by it)."""
    mx.config("etrn-allow 127.0.0.0/8")
    mx.inject("a@sender.test", ["u@example.test"], MSG)
    proc, port = mx.listen()
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.test")
    code, _ = s.docmd("ETRN", "example.test")
    assert code == 250
    s.quit()
    # The flush leaves its lock file in domains/, made by the user.
    lock = os.path.join(mx.spool, "domains", "example.test.lock")
    deadline = time.time() + 20
    while not os.path.exists(lock) and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists(lock)
    assert os.stat(lock).st_uid == user_ids()[0]


def test_spool_of_root_is_named(mx):
    """A spool directory root made and kept (install -d without -o) is
    out of the user's reach: the error says whose it must be."""
    os.mkdir(mx.spool, 0o700)
    for args in (("status",), ("inject", "u@example.test")):
        p = mx.run(*args, input=MSG)
        assert p.returncode == 73, p.stderr
        assert ("spool %s (it must belong to user %s): Permission denied"
                % (mx.spool, USER)).encode() in p.stderr, p.stderr


def test_switch_that_keeps_root_is_refused(mx):
    """The switch is verified: started with SECBIT_NO_SETUID_FIXUP (set
    by whoever started us), setuid() keeps every capability and root
    could come back; the command stops (70) instead of running so."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def keep_capabilities():
        # prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP)
        if libc.prctl(28, 1 << 2, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")

    p = subprocess.run([MXFB, "status"], env=mx.env(), capture_output=True,
                       timeout=60, preexec_fn=keep_capabilities)
    assert p.returncode == 70, p.stderr
    assert b"user nobody: root could be regained after the switch" \
        in p.stderr
