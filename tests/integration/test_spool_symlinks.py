"""Issue 11 point 4: the spool's owner cannot steer root.

Whoever owns the spool (the `user` mxfb runs as, or anyone who became
it) can plant symbolic links there: domains/D.lock, domains/D.probe, the
status cache, the temp names a process will create (tmp/ID.state.HOST.PID
and the like: the pid is easy to guess), or state/ and queue/ themselves.
flush, bounce, probe and status, started as root, must never write
through one: each link points outside the spool, at a directory and a
file of the user's (which the user-run command could write, were the
link followed) or of root's (which a command that kept root could), and
afterwards that directory is exactly as it was.  A command either fails
cleanly, naming what it refused, or does its work without the link."""
import os
import socket
import time

import pytest

from conftest import free_port, user_ids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

MSG = b"Subject: links\r\n\r\nx\r\n"
PRECIOUS = b"precious\n"
PLANTED = 5000		# temp names planted: the next pids


@pytest.fixture(params=["user", "root"])
def outside(request, tmp_path):
    """A directory outside the spool, owned by the user or by root, with
    one file; dangling links point at names that do not exist there."""
    d = tmp_path / "outside"
    d.mkdir()
    os.chmod(d, 0o755)
    f = d / "precious"
    f.write_bytes(PRECIOUS)
    os.chmod(f, 0o644)
    if request.param == "user":
        uid, gid = user_ids()
        os.chown(d, uid, gid)
        os.chown(f, uid, gid)
    return str(d)


def snapshot(d):
    out = {}
    for dp, ds, fs in os.walk(d):
        for n in ds + fs:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            data = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    data = f.read()
            out[os.path.relpath(p, d)] = (st.st_mode, st.st_uid, st.st_size,
                                          st.st_mtime_ns, data)
    return out


def plant(path, target):
    """A symbolic link made as the spool's owner would make it."""
    os.symlink(target, path)
    uid, gid = user_ids()
    os.lchown(path, uid, gid)


def spool_host():
    """The host part of spool names (spool.c host_name)."""
    return "".join(c if c.isalnum() or c in "-." else "_"
                   for c in socket.gethostname()) or "_"


def next_pids(n):
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    with open("/proc/sys/kernel/pid_max") as f:
        top = int(f.read())
    return [(last + i) % top for i in range(1, n + 1)]


def plant_temp_names(mx, outside, fmt):
    """Links tmp/(fmt % pid) -> outside/new.PID for the next pids."""
    tmp = os.path.join(mx.spool, "tmp")
    names = []
    for pid in next_pids(PLANTED):
        name = fmt % pid
        plant(os.path.join(tmp, name), os.path.join(outside, "new.%d" % pid))
        names.append(name)
    return names


def assert_some_taken(mx, names):
    """The command did create one of the planted names (the collision
    really happened: the test is not vacuous), and no link is left in
    its place."""
    tmp = os.path.join(mx.spool, "tmp")
    left = set(os.listdir(tmp))
    assert any(n not in left for n in names), "no planted name was used"
    for n in names:
        p = os.path.join(tmp, n)
        assert not os.path.exists(p) or os.path.islink(p)


def down_domain(mx, dns, *extra, port=None):
    """example.test, whose only primary refuses connections (or listens
    on port)."""
    port = port or free_port("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % port, "connect-timeout 2s", "retry-min 0s",
              *extra)


def queued(mx):
    return mx.inject("a@sender.test", ["u@example.test"], MSG)


def err(p):
    return p.stderr.decode(errors="replace")


@pytest.mark.parametrize("target", ["precious", "new"])
def test_domain_lock_link(mx, dns, outside, target):
    """flush -d D (what ETRN and probe -F start) opens domains/D.lock:
    a link there is refused, nothing is created or opened through it."""
    down_domain(mx, dns)
    queued(mx)
    plant(os.path.join(mx.spool, "domains", "example.test.lock"),
          os.path.join(outside, target))
    before = snapshot(outside)
    p = mx.run("flush", "-f", "-d", "example.test")
    assert p.returncode == 75, err(p)
    assert "lock for example.test" in err(p), err(p)
    assert snapshot(outside) == before
    assert mx.status_json()[0]["recipients"][0]["attempts"] == 0


def test_domain_lock_fifo(mx, dns):
    """A FIFO as domains/D.lock neither hangs flush nor is locked."""
    down_domain(mx, dns)
    queued(mx)
    fifo = os.path.join(mx.spool, "domains", "example.test.lock")
    os.mkfifo(fifo, 0o600)
    mx.give(fifo)
    p = mx.run("flush", "-f", "-d", "example.test", timeout=20)
    assert p.returncode == 75, err(p)
    assert "not a regular file" in err(p), err(p)


def test_domain_probe_note_link(mx, dns, outside, primary_factory):
    """domains/D.probe -> elsewhere: status -s does not read through it,
    probe replaces the link with its note of the primary it found up,
    and its temp file (tmp/D.probe.HOST.PID) is never written through a
    planted link."""
    ctl, _ = primary_factory("127.0.0.2")
    down_domain(mx, dns, port=ctl.port)
    queued(mx)
    note = os.path.join(mx.spool, "domains", "example.test.probe")
    plant(note, os.path.join(outside, "precious"))
    before = snapshot(outside)
    p = mx.run("status", "-s")
    assert p.returncode == 0, err(p)
    assert b"precious" not in p.stdout
    names = plant_temp_names(mx, outside,
                             "example.test.probe.%s.%%d" % spool_host())
    p = mx.run("probe")
    assert p.returncode == 0, err(p)
    assert snapshot(outside) == before
    assert_some_taken(mx, names)
    assert not os.path.islink(note)
    assert os.stat(note).st_uid == user_ids()[0]
    with open(note, "rb") as f:
        assert b"mx1.example.test" in f.read()


@pytest.mark.parametrize("cmd", ["flush", "bounce"])
def test_state_temp_file_link(mx, dns, outside, cmd):
    """A new state file is written as tmp/ID.state.HOST.PID, then renamed
    into state/: planted links under the names the next processes will
    use are removed, never followed, and the state is saved all the
    same (flush: the deferral; bounce: the delay warning it sent)."""
    down_domain(mx, dns, "delay-warning 1s")
    qid = queued(mx)
    time.sleep(1.1)
    names = plant_temp_names(mx, outside, qid + ".state." + spool_host() +
                             ".%d")
    before = snapshot(outside)
    p = mx.run(cmd, "-f") if cmd == "flush" else mx.run(cmd)
    assert p.returncode == 0, err(p)
    assert snapshot(outside) == before
    assert_some_taken(mx, names)
    (orig,) = [o for o in mx.status_json() if o["id"] == qid]
    if cmd == "flush":
        assert orig["recipients"][0]["state"] == "deferred"
        assert orig["recipients"][0]["attempts"] == 1
    else:
        assert b"delayed 1" in p.stdout, p.stdout
    st = os.lstat(os.path.join(mx.spool, "state", qid))
    assert st.st_uid == user_ids()[0] and not os.path.islink(
        os.path.join(mx.spool, "state", qid))


@pytest.mark.parametrize("subdir", ["state", "queue"])
@pytest.mark.parametrize("cmd", ["flush", "bounce", "status", "probe"])
def test_subdirectory_link(mx, dns, outside, subdir, cmd):
    """state/ or queue/ replaced by a link to a directory elsewhere (for
    queue/, holding the queued message, which flush or bounce would
    claim out of it and write state for): the spool is refused, with
    the reason, and nothing there changes.  probe still probes (it only
    records its note in the spool) and writes nothing there either."""
    down_domain(mx, dns, "delay-warning 1s")
    queued(mx)
    time.sleep(1.1)
    real = os.path.join(mx.spool, subdir)
    moved = os.path.join(outside, subdir)
    os.rename(real, moved)
    plant(real, moved)
    before = snapshot(outside)
    p = mx.run(cmd)
    if cmd == "probe":
        assert p.returncode == 2, err(p)
        assert "probes not recorded" in err(p), err(p)
    else:
        assert p.returncode == 74, err(p)
    assert "%s is a symbolic link: refused" % subdir in err(p), err(p)
    assert snapshot(outside) == before


def test_subdirectory_of_another_owner(mx):
    """A subdirectory that is not the spool owner's (made by root, say)
    or that others may write is refused, naming it; so is a spool
    directory that others may write."""
    queued(mx)
    hold = os.path.join(mx.spool, "hold")
    os.chmod(hold, 0o755)
    os.chown(hold, 0, 0)
    p = mx.run("status")
    assert p.returncode == 74, err(p)
    assert "hold: belongs to uid 0, not to the spool's owner" in err(p)
    mx.give(hold)
    os.chmod(hold, 0o777)
    p = mx.run("status")
    assert p.returncode == 74, err(p)
    assert "hold: writable by group or others (mode 0777)" in err(p)
    os.chmod(hold, 0o700)
    assert mx.run("status").returncode == 0
    # The spool itself: whoever may write it may replace any of these.
    os.chmod(mx.spool, 0o770)
    p = mx.run("status")
    assert p.returncode == 74, err(p)
    assert "%s: writable by group or others (mode 0770)" % mx.spool \
        in err(p), err(p)
    os.chmod(mx.spool, 0o700)
    assert mx.run("status").returncode == 0


def test_status_cache_link(mx, outside, monkeypatch):
    """status.cache -> a file elsewhere: status does not read it and,
    writing its cache, replaces the link (temp file, rename); planted
    links under its temp names (tmp/status.cache.HOST.PID) are removed,
    never followed."""
    monkeypatch.setenv("MXFB_STATUS_CACHE_MIN", "1")
    queued(mx)
    cache = os.path.join(mx.spool, "status.cache")
    plant(cache, os.path.join(outside, "precious"))
    time.sleep(2.1)		# the cache is written for settled directories
    names = plant_temp_names(mx, outside,
                             "status.cache.%s.%%d" % spool_host())
    before = snapshot(outside)
    p = mx.run("status")
    assert p.returncode == 0, err(p)
    assert b"precious" not in p.stdout
    assert snapshot(outside) == before
    assert_some_taken(mx, names)
    assert not os.path.islink(cache)
    assert os.stat(cache).st_uid == user_ids()[0]


def test_fifos_do_not_hang(mx, dns, monkeypatch):
    """A FIFO planted as a message (queue/ID), a state file or the status
    cache is never waited on: status, flush and bounce finish, skipping
    what they cannot read."""
    monkeypatch.setenv("MXFB_STATUS_CACHE_MIN", "1")
    down_domain(mx, dns)
    qid = queued(mx)
    other = queued(mx)
    fifo_id = "0000000000000000A"
    for path in (os.path.join(mx.spool, "queue", fifo_id),
                 os.path.join(mx.spool, "state", other),
                 os.path.join(mx.spool, "status.cache")):
        os.mkfifo(path, 0o600)
        mx.give(path)
    for args in (("status",), ("status", "-s"), ("flush", "-f"),
                 ("bounce",)):
        p = mx.run(*args, timeout=30)
        assert p.returncode == 0, (args, err(p))
    listed = [o["id"] for o in mx.status_json()]
    assert qid in listed and fifo_id not in listed
