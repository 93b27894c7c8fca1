"""`status -m [-o FILE]` and the primary's state over time (issue 17
points 1, 2): the Prometheus text exposition, read with the reference
parser (python3-prometheus-client), agrees with `status -j` and
`status -s -j`; -o replaces the file atomically; a probe against a dead
primary leaves "down since" in `status -s` and the record.  Loopback
only.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

from prometheus_client.parser import text_string_to_metric_families

from conftest import MXFB, USER, give_to_user

NAMES = {
    "mxfb_queue_messages": {"domain"},
    "mxfb_queue_bytes": {"domain"},
    "mxfb_queue_oldest_age_seconds": {"domain"},
    "mxfb_queue_recipients": {"domain", "state"},
    "mxfb_queue_held_messages": set(),
    "mxfb_queue_corrupt_messages": set(),
    "mxfb_primary_up": {"domain"},
    "mxfb_primary_last_up_timestamp_seconds": {"domain"},
    "mxfb_primary_last_check_timestamp_seconds": {"domain"},
}
HOSTILE = 'ex"am\\ple.test'
FAST = ("connect-timeout 2s", "command-timeout 3s", "data-timeout 3s",
        "data-done-timeout 3s")


def message():
    return ("From: s@sender.test\nTo: u@example.test\nSubject: t\n"
            "Message-ID: <t@sender.test>\n\nhello\n")


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def series(fams, name):
    """{labels tuple: value} of one family."""
    return {tuple(sorted(s.labels.items())): s.value
            for s in fams[name].samples}


def by_domain(fams, name):
    return {dict(k)["domain"]: v for k, v in series(fams, name).items()}


def write_record(mx, domain, up, checked, last_up):
    path = os.path.join(mx.spool, "domains", domain + ".probe")
    with open(path, "w") as f:
        f.write("mxfb-primary 1\nup=%d\ntime=%d\nlast_up=%d\n"
                "host=mx1.%s\nsource=probe\n" % (up, checked, last_up, domain))
    give_to_user(path)


def fill_queue(mx):
    """Several domains, one held message, one corrupt one, a recipient
    delivered and one failed (state written as INTERNALS says)."""
    a = mx.inject("s@sender.test", ["a@example.test", "b@example.test",
                                    "c@other.test"], message())
    mx.inject("s@sender.test", ["d@other.test"], message())
    h = mx.inject("s@sender.test", ["e@example.test"], message())
    mx.run("hold", h, check=True)
    mx.inject("s@sender.test", ["x@" + HOSTILE], message())
    bad = mx.inject("s@sender.test", ["z@example.test"], message())
    os.rename(os.path.join(mx.spool, "queue", bad),
              os.path.join(mx.spool, "corrupt", bad))
    state = ("S1\nnext-retry 1\nwarned 0\n"
             "rcpt a@example.test\nstate delivered\nattempts 1\n"
             "last-attempt 1\nreported 0\n"
             "rcpt b@example.test\nstate failed\nattempts 1\n"
             "last-attempt 1\nlast-error 550%205.1.1%20no\nreported 0\n"
             "rcpt c@other.test\nstate deferred\nattempts 2\n"
             "last-attempt 1\nlast-error 451%20later\nreported 0\nend\n")
    path = os.path.join(mx.spool, "state", a)
    with open(path, "w") as f:
        f.write(state)
    give_to_user(path)
    now = int(time.time())
    write_record(mx, "known-only.test", 0, now - 30, now - 900)
    write_record(mx, "example.test", 1, now - 10, now - 10)
    mx.config("relay-domain relay-only.test")
    return now


def test_metrics_agree_with_status_json(mx):
    fill_queue(mx)
    p = mx.run("status", "-m", check=True)
    text = p.stdout.decode("utf-8")
    fams = families(text)
    for name, labels in NAMES.items():
        assert name in fams, name
        assert "# HELP %s " % name in text and \
            "# TYPE %s gauge" % name in text, name
        for s in fams[name].samples:
            assert set(s.labels) == labels, s
    # Every domain once per family (no duplicate series).
    for name in NAMES:
        keys = [tuple(sorted(s.labels.items())) for s in fams[name].samples]
        assert len(keys) == len(set(keys)), name

    listing = mx.status_json()
    summary = {o["domain"]: o for o in (json.loads(l) for l in mx.run(
        "status", "-s", "-j", check=True).stdout.decode().splitlines())}
    msgs = by_domain(fams, "mxfb_queue_messages")
    size = by_domain(fams, "mxfb_queue_bytes")
    age = by_domain(fams, "mxfb_queue_oldest_age_seconds")
    assert HOSTILE in summary and HOSTILE in msgs
    for d, o in summary.items():
        assert msgs[d] == o["messages"] and size[d] == o["bytes"], d
        assert abs(age[d] - (time.time() - o["oldest"])) <= 2, d
    # Domains with nothing queued: the relay domains, the record's.
    for d in ("relay-only.test", "known-only.test"):
        assert d not in summary and msgs[d] == 0 and size[d] == 0
    assert set(msgs) == set(summary) | {"relay-only.test", "known-only.test"}

    want = {}
    for o in listing:
        for r in o["recipients"]:
            k = (r["addr"].rsplit("@", 1)[1].lower(), r["state"])
            want[k] = want.get(k, 0) + 1
    got = {(dict(k)["domain"], dict(k)["state"]): v for k, v in
           series(fams, "mxfb_queue_recipients").items() if v}
    assert got == want
    assert ("example.test", "delivered") in got and \
        ("example.test", "failed") in got and ("other.test", "deferred") in got
    held = sum(1 for o in listing if o["held"])
    assert held == 1
    assert fams["mxfb_queue_held_messages"].samples[0].value == held
    assert fams["mxfb_queue_corrupt_messages"].samples[0].value == 1

    up = by_domain(fams, "mxfb_primary_up")
    last_up = by_domain(fams, "mxfb_primary_last_up_timestamp_seconds")
    check = by_domain(fams, "mxfb_primary_last_check_timestamp_seconds")
    assert up == {"example.test": 1, "known-only.test": 0}
    assert last_up["known-only.test"] == check["known-only.test"] - 870
    assert last_up["example.test"] == check["example.test"]


def traced_opens(mx, tmp_path, *args):
    """The names status ARGS opens (strace; LeakSanitizer cannot run
    under ptrace)."""
    trace = tmp_path / "trace"
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o",
                        str(trace), MXFB, "status"] + list(args),
                       env=mx.env({"ASAN_OPTIONS": "detect_leaks=0"}),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return re.findall(r'openat\([^"]*"([^"]*)"', trace.read_text())


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace (make deps)")
def test_each_primary_record_read_once(mx, tmp_path):
    """Issue 17 point 1, -m no dearer than -s: each domain's primary
    record is read once, as -s reads it (not once in the walk that finds
    the domains and again for the figures)."""
    fill_queue(mx)
    probes = [n for n in traced_opens(mx, tmp_path, "-m")
              if n.endswith(".probe")]
    assert sorted(probes) == ["example.test.probe", "known-only.test.probe"]
    probes = [n for n in traced_opens(mx, tmp_path, "-s")
              if n.endswith(".probe")]
    assert "example.test.probe" in probes and len(probes) == len(set(probes))


def test_label_values_escaped(mx):
    mx.inject("s@sender.test", ["x@" + HOSTILE], message())
    raw = mx.run("status", "-m", check=True).stdout
    assert b'domain="ex\\"am\\\\ple.test"' in raw
    assert all(b >= 0x20 for l in raw.splitlines() for b in l)


def test_no_spool_yet(mx):
    """A spool directory nothing has used yet: an empty queue."""
    os.mkdir(mx.spool)
    mx.give()
    p = mx.run("status", "-m")
    assert p.returncode == 0, p.stderr
    fams = families(p.stdout.decode())
    assert by_domain(fams, "mxfb_queue_messages") == {"example.test": 0}


def test_usage(mx):
    for args in (("-o", "x"), ("-m", "-s"), ("-m", "-j"),
                 ("-m", "1NH2Z0RRSNDK6497Y")):
        assert mx.run("status", *args).returncode == 64, args


def test_output_file_atomic(mx, tmp_path):
    fill_queue(mx)
    out = tmp_path / "prom"
    out.mkdir()
    give_to_user(str(out))
    target = out / "mxfb.prom"
    target.write_text("old\n")
    # A reader polling while writes go on sees a whole file each time.
    reader = subprocess.Popen(
        ["/usr/bin/python3", "-c", """
import sys, time
from prometheus_client.parser import text_string_to_metric_families
end = time.time() + 3
n = 0
while time.time() < end:
    t = open(sys.argv[1]).read()
    if t != "old\\n":
        assert t.endswith("mxfb_queue_corrupt_messages 1\\n"), t[-200:]
        list(text_string_to_metric_families(t))
        n += 1
print(n)
""", str(target)], stdout=subprocess.PIPE)
    deadline = time.time() + 3
    while time.time() < deadline:
        mx.run("status", "-m", "-o", str(target), check=True)
    assert reader.wait(10) == 0
    assert int(reader.stdout.read()) > 0
    st = os.stat(target)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert os.listdir(out) == ["mxfb.prom"]
    age = re.compile(rb"^mxfb_queue_oldest_age_seconds.*\n", re.M)
    assert age.sub(b"", target.read_bytes()) == age.sub(b"", mx.run(
        "status", "-m", check=True).stdout)


def test_output_file_unwritable_dir(mx, tmp_path):
    mx.inject("s@sender.test", ["a@example.test"], message())
    d = tmp_path / "closed"
    d.mkdir()
    os.chmod(d, 0o755)          # root's: the user cannot write here
    p = mx.run("status", "-m", "-o", str(d / "mxfb.prom"))
    assert p.returncode == 73
    err = p.stderr.decode()
    assert re.search(r"^mxfb: status: cannot create a file in %s: "
                     r"Permission denied$" % re.escape(str(d)), err, re.M), err
    assert os.listdir(d) == []


def test_down_since_after_probe_of_dead_primary(mx, dns, primary_factory):
    c, _ = primary_factory("127.0.0.2")
    dns.mx("example.test", 10, "mx1.example.test")
    dns.a("mx1.example.test", "127.0.0.2")
    dns.mx("example.test", 20, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")
    mx.config("smtp-port %d" % c.port, *FAST)
    mx.inject("s@sender.test", ["a@example.test"], message())
    mx.run("probe", "-q", "example.test")
    rows = mx.run("status", "-s", "-j", check=True).stdout.decode()
    assert json.loads(rows)["down_since"] is None
    assert "down since" not in mx.run("status", "-s").stdout.decode()
    c.stop()
    time.sleep(1)
    first = int(time.time())
    assert mx.run("probe", "-q", "example.test").returncode == 2
    rec = dict(l.split("=", 1) for l in open(os.path.join(
        mx.spool, "domains", "example.test.probe")).read().splitlines()[1:])
    assert rec["up"] == "0" and first <= int(rec["since"]) <= time.time()
    assert rec["reason"] == "Connection refused", rec
    time.sleep(1)
    # A second down keeps when the state began.
    assert mx.run("probe", "-q", "example.test").returncode == 2
    again = dict(l.split("=", 1) for l in open(os.path.join(
        mx.spool, "domains", "example.test.probe")).read().splitlines()[1:])
    assert again["since"] == rec["since"] and again["time"] > rec["time"]
    o = json.loads(mx.run("status", "-s", "-j", check=True).stdout)
    assert o["down_since"] == int(rec["since"])
    out = mx.run("status", "-s", check=True).stdout.decode()
    line = [l for l in out.splitlines() if l.startswith("example.test")][0]
    when = time.strftime("%a %b %e %H:%M:%S",
                         time.localtime(int(rec["since"])))
    assert ", down since %s (" % when in line, line
    assert "refused" in line.lower()
    fams = families(mx.run("status", "-m", check=True).stdout.decode())
    assert by_domain(fams, "mxfb_primary_up") == {"example.test": 0}
    assert by_domain(fams, "mxfb_primary_last_check_timestamp_seconds")[
        "example.test"] == int(again["time"])
