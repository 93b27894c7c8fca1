"""status.cache: a listing of an unchanged queue comes from the cache, any
change the spool makes is seen at once, a damaged or foreign cache is
never shown, and recent changes are never cached (spool/listcache.c)."""
import json
import os
import time

import pytest

from conftest import free_port, tmpfs_options

MSG = b"Subject: cached\n\nbody\n"


@pytest.fixture(autouse=True)
def cache_small_queues(monkeypatch):
    """Queues under 1,000 messages are not cached by default: these
    tests use a few messages and lower the threshold."""
    monkeypatch.setenv("MXFB_STATUS_CACHE_MIN", "1")


NOCACHE = {"MXFB_NO_STATUS_CACHE": "1"}
VIEWS = [(), ("-j",), ("-s",), ("-s", "-j")]


def cache_path(mx):
    return os.path.join(mx.spool, "status.cache")


def listing(mx, *args, env=None):
    p = mx.run("status", *args, env=env, check=True)
    return p.stdout, p.stderr


def fill(mx):
    ids = [mx.inject("a@example.org", ["u%d@example.test" % i,
                                       "v%d@example.test" % i], MSG)
           for i in range(5)]
    mx.run("hold", ids[1], check=True)
    return ids


def settle():
    """Let the directories' time stamps age past the cache's margin."""
    time.sleep(2.1)


def build_cache(mx):
    settle()
    out, err = listing(mx)
    assert os.path.exists(cache_path(mx)), err
    return out


def assert_same_as_full_scan(mx):
    for view in VIEWS:
        cached, err = listing(mx, *view)
        full, _ = listing(mx, *view, env=NOCACHE)
        assert cached == full, (view, err)
        assert b"damaged" not in err


def test_cache_written_then_used(mx):
    ids = fill(mx)
    build_cache(mx)
    assert_same_as_full_scan(mx)
    # Proof that the cache is what is shown: damage a message file in
    # place (the spool never does that, so the directories do not
    # change).  A full scan skips it; the cached listing still has it.
    with open(os.path.join(mx.spool, "queue", ids[3]), "r+b") as f:
        f.truncate(10)
    cached = [o["id"] for o in mx.status_json()]
    full = [json.loads(line)["id"] for line in
            listing(mx, "-j", env=NOCACHE)[0].decode().splitlines()]
    assert ids[3] in cached
    assert ids[3] not in full


def test_every_spool_change_seen_at_once(mx):
    ids = fill(mx)
    build_cache(mx)
    mx.run("hold", ids[0], check=True)
    assert [o["held"] for o in mx.status_json()][:2] == [True, True]
    assert_same_as_full_scan(mx)
    mx.run("release", ids[1], check=True)
    assert [o["held"] for o in mx.status_json()][:2] == [True, False]
    mx.run("delete", ids[2], check=True)
    assert ids[2] not in [o["id"] for o in mx.status_json()]
    new = mx.inject("a@example.org", ["w@example.test"], MSG)
    assert new in [o["id"] for o in mx.status_json()]
    assert_same_as_full_scan(mx)

    # A delivery attempt (primary down) changes only state/.
    build_cache(mx)
    lines = [l for l in mx.base_lines() if not l.startswith("relay-domain")]
    mx.config(*lines, "relay-domain example.test via [127.0.0.2]:%d" %
              free_port("127.0.0.2"), replace_base=True)
    mx.run("flush", "-f")
    after = mx.status_json()
    assert all(r["attempts"] == 1 and r["state"] == "deferred"
               for o in after if not o["held"] for r in o["recipients"])
    assert_same_as_full_scan(mx)


def test_damaged_cache_is_never_shown(mx):
    fill(mx)
    good = build_cache(mx)
    path = cache_path(mx)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    # One flipped byte in a recipient address, then a truncated file,
    # then one cut after its header: each is ignored and rewritten.
    i = data.index(b"u3@example.test")
    for bad in (data[:i] + b"x" + data[i + 1:], data[:-7], data[:200]):
        with open(path, "wb") as f:
            f.write(bad)
        out, err = listing(mx)
        assert out == good, err
        with open(path, "rb") as f:
            assert f.read() == bytes(data)


def test_cache_of_another_spool_is_ignored(mx, tmp_path):
    fill(mx)
    build_cache(mx)
    with open(cache_path(mx), "rb") as f:
        foreign = f.read()
    mx.run("delete", mx.status_json()[0]["id"], check=True)
    settle()
    with open(cache_path(mx), "wb") as f:
        f.write(foreign)
    assert_same_as_full_scan(mx)
    assert len(mx.status_json()) == 4


def test_recent_changes_are_not_cached(mx):
    fill(mx)
    listing(mx)
    assert not os.path.exists(cache_path(mx))
    settle()
    listing(mx, env=NOCACHE)
    assert not os.path.exists(cache_path(mx))
    listing(mx, "-s")
    assert os.path.exists(cache_path(mx))
    assert os.listdir(os.path.join(mx.spool, "tmp")) == []


def test_new_mail_reuses_the_cache(mx):
    """Messages arrived, moved or went, but no state file changed: the
    listing reads only the new messages and takes the others from the
    cache (shown by a message file damaged in place, which only the
    cache still lists), with held/claimed from where each is now."""
    ids = fill(mx)
    build_cache(mx)
    with open(os.path.join(mx.spool, "queue", ids[3]), "r+b") as f:
        f.truncate(10)
    new = mx.inject("a@example.org", ["n@example.test"], MSG)
    mx.run("release", ids[1], check=True)
    mx.run("hold", ids[4], check=True)
    mx.run("delete", ids[0], check=True)
    listed = {o["id"]: o for o in mx.status_json()}
    assert sorted(listed) == sorted([ids[1], ids[2], ids[3], ids[4], new])
    assert listed[new]["recipients"][0]["addr"] == "n@example.test"
    assert [listed[i]["held"] for i in (ids[1], ids[2], ids[4])] == \
        [False, False, True]
    full = [json.loads(line)["id"] for line in
            listing(mx, "-j", env=NOCACHE)[0].decode().splitlines()]
    assert ids[3] not in full
    # Once a state file changes, everything is read again.
    lines = [l for l in mx.base_lines() if not l.startswith("relay-domain")]
    mx.config(*lines, "relay-domain example.test via [127.0.0.2]:%d" %
              free_port("127.0.0.2"), replace_base=True)
    mx.run("flush", "-f")
    assert ids[3] not in [o["id"] for o in mx.status_json()]
    assert_same_as_full_scan(mx)


def test_small_queues_are_not_cached(mx, monkeypatch):
    monkeypatch.delenv("MXFB_STATUS_CACHE_MIN")
    fill(mx)
    settle()
    listing(mx)
    assert not os.path.exists(cache_path(mx))
    monkeypatch.setenv("MXFB_STATUS_CACHE_MIN", "6")
    listing(mx)
    assert not os.path.exists(cache_path(mx))
    monkeypatch.setenv("MXFB_STATUS_CACHE_MIN", "5")
    listing(mx)
    assert os.path.exists(cache_path(mx))
    assert os.listdir(os.path.join(mx.spool, "tmp")) == []


def test_full_disk_writes_no_cache_and_lists_all(mx):
    """The spool's file system is full: the cache cannot be written, the
    listing is complete all the same, exit 0, and nothing is left in
    tmp/ (a 1 MiB tmpfs, root only)."""
    import subprocess
    os.makedirs(mx.spool, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", tmpfs_options("1m"), "tmpfs",
                        mx.spool], capture_output=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % p.stderr.decode().strip())
    try:
        mx.config("queue-minfree 0")
        ids = fill(mx)
        with open(os.path.join(mx.spool, "filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        settle()
        for view in VIEWS:
            cached, err = listing(mx, *view)
            full, _ = listing(mx, *view, env=NOCACHE)
            assert cached == full, err
        assert sorted(o["id"] for o in mx.status_json()) == sorted(ids)
        assert not os.path.exists(cache_path(mx))
        assert os.listdir(os.path.join(mx.spool, "tmp")) == []
    finally:
        subprocess.run(["umount", "-l", mx.spool])
