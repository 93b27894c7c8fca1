"""The drain after a mass outage (issue 13): `mxfb flush` delivers per
next-hop host.

- Many domains on two shared primaries and on primaries of their own:
  every message once, one transaction each, the shared hosts' mail over
  at most flush-per-host connections, a host of its own over one.
- Broken kinds (a refusing port, a tarpit that accepts and never greets,
  421 at the greeting, 550 at RCPT) beside live hosts: each dead host is
  connected to once per run whatever the number of its domains, a domain
  whose first MX is dead goes to its second, live mail is all delivered
  before the tarpit's timeout ends and the run ends within that timeout.
- The host notes in the spool: the next (unforced) run does not try a
  dead host again before its back-off; flush -f does, once.
- flush-concurrency sessions run as threads of one delivery process: a
  dozen tarpits are waited on at once, by one child of flush.
- Exactly once with two flushes at once, and under kill -9 of flush.
"""
import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import MXFB, free_port
from test_flush import FAST, message
from test_flush_concurrent import fill, group_pids, subjects, wait_gone
from test_flush_worker_death import children


class Counting:
    """aiosmtpd handler wrapper: counts sessions (EHLO per connection)
    and notes when each message arrived."""

    def __init__(self, rec, delay=0.0):
        self.rec = rec
        self.sessions = set()
        self.times = []
        self.delay = delay
        orig = rec.handle_DATA

        async def data(server, session, envelope):
            if self.delay:
                await asyncio.sleep(self.delay)
            self.times.append(time.time())
            return await orig(server, session, envelope)
        rec.handle_DATA = data

        async def ehlo(server, session, envelope, hostname, responses):
            self.sessions.add(id(session))
            session.host_name = hostname
            return responses
        rec.handle_EHLO = ehlo


def primary(factory, host, port, delay=0.0):
    c, rec = factory(host, port=port)
    return rec, Counting(rec, delay)


class RawHost:
    """A listening socket of a broken kind, counting connections:
    "tarpit" accepts and never writes (and notes when the client gave
    up), "421" greets with 421 and closes."""

    def __init__(self, host, port, kind):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.kind = kind
        self.accepted = 0
        self.closed_at = []
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.kind == "421":
                c.sendall(b"421 4.3.2 too busy, come back later\r\n")
                c.close()
                continue
            self.conns.append(c)
            threading.Thread(target=self._wait_eof, args=(c,),
                             daemon=True).start()

    def _wait_eof(self, c):
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
        self.closed_at.append(time.time())

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def same_port(hosts):
    """A port free on every one of these loopback addresses."""
    for _ in range(50):
        port = free_port(hosts[0])
        ok = True
        for h in hosts[1:]:
            s = socket.socket()
            try:
                s.bind((h, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise AssertionError("no common free port")


def domains_on(mx, dns, names, *mxs):
    """Each domain gets MX records (pref, host, ip) and we are worse."""
    for d in names:
        for pref, host, ip in mxs:
            dns.mx(d, pref, host)
            dns.a(host, ip)
        dns.mx(d, 90, "backup.example.test")
    dns.a("backup.example.test", "127.0.0.1")


def run_flush(mx, *args, timeout=120):
    t0 = time.time()
    p = mx.run("flush", *args, timeout=timeout)
    t1 = time.time()
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    m = re.match(r"delivered (\d+), deferred (\d+), failed (\d+)\n$",
                 p.stdout.decode())
    assert m, p.stdout
    return tuple(int(x) for x in m.groups()), err, t0, t1


def config(mx, port, names, *extra):
    keys = {e.split()[0] for e in extra}
    fast = tuple(f for f in FAST if f.split()[0] not in keys)
    mx.config("smtp-port %d" % port, "retry-min 60s", "retry-max 1h",
              *(tuple("relay-domain %s" % d for d in names) + fast + extra))


def test_shared_primaries_share_connections(mx, dns, primary_factory):
    addrs = ["127.0.0.2", "127.0.0.3"] + ["127.0.1.%d" % i
                                          for i in range(1, 6)]
    port = same_port(addrs)
    a, ca = primary(primary_factory, "127.0.0.2", port)
    b, cb = primary(primary_factory, "127.0.0.3", port)
    own = [primary(primary_factory, ip, port) for ip in addrs[2:]]
    shared_a = ["a%d.test" % i for i in range(20)]
    shared_b = ["b%d.test" % i for i in range(20)]
    alone = ["own%d.test" % i for i in range(5)]
    domains_on(mx, dns, shared_a, (10, "mx.hoster-a.test", "127.0.0.2"))
    domains_on(mx, dns, shared_b, (10, "mx.hoster-b.test", "127.0.0.3"))
    for i, d in enumerate(alone):
        domains_on(mx, dns, [d], (10, "mx.%s" % d, addrs[2 + i]))
    config(mx, port, shared_a + shared_b + alone, "flush-per-host 3")
    want = {}
    for d in shared_a + shared_b + alone:
        for k in range(2):
            s = "%s-%d" % (d, k)
            want[s] = d
            mx.inject("s@sender.test", ["u%d@%s" % (k, d)], message(s))
    # One message for two domains of the same host, one for two hosts.
    mx.inject("s@sender.test", ["x@a1.test", "y@a2.test"], message("ab1"))
    mx.inject("s@sender.test", ["x@a3.test", "y@b3.test"], message("ab2"))
    counts, err, _, _ = run_flush(mx)
    assert counts == (len(want) + 4, 0, 0), err
    got_a, got_b = subjects(a), subjects(b)
    assert sorted(got_a) == sorted([s for s, d in want.items()
                                    if d in shared_a] + ["ab1", "ab1",
                                                         "ab2"])
    assert sorted(got_b) == sorted([s for s, d in want.items()
                                    if d in shared_b] + ["ab2"])
    # One transaction per message (and per domain): never two recipients
    # of different domains in one.
    for m in a.messages + b.messages:
        assert len({r.split("@")[1] for r in m["rcpts"]}) == 1, m
    # 41 messages to each shared host: more than one connection, at most
    # flush-per-host; a host of its own (2 messages): one.
    assert 1 <= len(ca.sessions) <= 3, len(ca.sessions)
    assert 1 <= len(cb.sessions) <= 3, len(cb.sessions)
    for i, (rec, cnt) in enumerate(own):
        assert sorted(subjects(rec)) == ["%s-0" % alone[i],
                                          "%s-1" % alone[i]]
        assert len(cnt.sessions) == 1
    assert mx.status_json() == []


def broken_setup(mx, dns, primary_factory, per_host=10,
                 command_timeout="6s"):
    """Live, fallback, refusing, tarpit, 421 and 550 hosts, many domains
    each; returns what the tests look at."""
    ips = {"live": "127.0.0.2", "refuse": "127.0.0.4", "tarpit": "127.0.0.5",
           "busy": "127.0.0.6", "second": "127.0.0.7", "reject": "127.0.0.8"}
    port = same_port(list(ips.values()))
    live, clive = primary(primary_factory, ips["live"], port)
    second, csecond = primary(primary_factory, ips["second"], port)
    reject, creject = primary(primary_factory, ips["reject"], port)
    orig = reject.handle_RCPT

    async def no(server, session, envelope, address, options):
        return "550 5.1.1 no such user here"
    reject.handle_RCPT = no
    assert orig
    tarpit = RawHost(ips["tarpit"], port, "tarpit")
    busy = RawHost(ips["busy"], port, "421")
    doms = {
        "live": ["live%d.test" % i for i in range(10)],
        "refuse": ["refuse%d.test" % i for i in range(30)],
        "tarpit": ["tarpit%d.test" % i for i in range(10)],
        "busy": ["busy%d.test" % i for i in range(10)],
        "fallback": ["fallback%d.test" % i for i in range(10)],
        "reject": ["reject%d.test" % i for i in range(5)],
    }
    domains_on(mx, dns, doms["live"], (10, "mx.live.test", ips["live"]))
    domains_on(mx, dns, doms["refuse"], (10, "mx.refuse.test",
                                         ips["refuse"]))
    domains_on(mx, dns, doms["tarpit"], (10, "mx.tarpit.test",
                                         ips["tarpit"]))
    domains_on(mx, dns, doms["busy"], (10, "mx.busy.test", ips["busy"]))
    domains_on(mx, dns, doms["fallback"],
               (10, "mx.refuse.test", ips["refuse"]),
               (20, "mx.second.test", ips["second"]))
    domains_on(mx, dns, doms["reject"], (10, "mx.reject.test",
                                         ips["reject"]))
    every = [d for v in doms.values() for d in v]
    config(mx, port, every, "flush-per-host %d" % per_host,
           "command-timeout %s" % command_timeout)
    ids = {}
    for kind, names in doms.items():
        for d in names:
            ids[d] = mx.inject("s@sender.test", ["u@%s" % d],
                               message("%s-0" % d))
    return dict(ips=ips, port=port, live=(live, clive),
                second=(second, csecond), reject=(reject, creject),
                tarpit=tarpit, busy=busy, doms=doms, ids=ids)


def refused_lines(err, ip, port):
    return len(re.findall(r"connect to \S+\[%s\]:%d: Connection refused$"
                          % (re.escape(ip), port), err, re.M))


def test_dead_hosts_once_live_mail_first(mx, dns, primary_factory):
    s = broken_setup(mx, dns, primary_factory)
    try:
        counts, err, t0, t1 = run_flush(mx)
    finally:
        s["tarpit"].close()
        s["busy"].close()
    doms = s["doms"]
    live, clive = s["live"]
    second, csecond = s["second"]
    # Delivered: live and fallback; failed: the 550s; the rest deferred.
    assert counts == (20, 50, 5), err
    assert sorted(subjects(live)) == sorted("%s-0" % d for d in doms["live"])
    assert sorted(subjects(second)) == sorted("%s-0" % d
                                              for d in doms["fallback"])
    # Each dead host connected to once in the run, for all its domains.
    assert s["tarpit"].accepted == 1
    assert s["busy"].accepted == 1
    assert refused_lines(err, s["ips"]["refuse"], s["port"]) == 1, err
    # 10 messages each: one session, more only for every 4 queued.
    assert 1 <= len(clive.sessions) <= 3, len(clive.sessions)
    assert 1 <= len(csecond.sessions) <= 3, len(csecond.sessions)
    # Live mail did not wait for the tarpit; the run ended within its
    # greeting timeout (6 s) of the last delivery.
    assert len(s["tarpit"].closed_at) == 1
    gave_up = s["tarpit"].closed_at[0]
    last_live = max(clive.times + csecond.times)
    assert last_live < gave_up - 1, (last_live - t0, gave_up - t0)
    assert t1 - last_live < 6 + 2, (t1 - last_live)
    # Every deferral says why, the dead host's own reason.
    got = {m["recipients"][0]["addr"].split("@")[1]: m["recipients"][0]
           for m in mx.status_json()}
    for d in doms["refuse"]:
        assert got[d]["state"] == "deferred"
        assert "Connection refused" in got[d]["last_error"], got[d]
    for d in doms["busy"]:
        assert "421" in got[d]["last_error"], got[d]
    for d in doms["reject"]:
        assert got[d]["state"] == "failed"
    # The host notes: down, with its back-off ahead.
    notes = sorted(os.listdir(os.path.join(mx.spool, "domains")))
    for kind in ("refuse", "tarpit", "busy"):
        name = "%s_%d.host" % (s["ips"][kind], s["port"])
        assert name in notes, notes
        text = open(os.path.join(mx.spool, "domains", name)).read()
        assert "\nup=0\n" in text and "\nfailures=1\n" in text, text
    text = open(os.path.join(mx.spool, "domains", "%s_%d.host" % (
        s["ips"]["live"], s["port"]))).read()
    assert text.startswith("mxfb-host 1\nup=1\n"), text


def test_next_run_respects_host_backoff(mx, dns, primary_factory):
    s = broken_setup(mx, dns, primary_factory, command_timeout="2s")
    tarpit, busy = s["tarpit"], s["busy"]
    try:
        run_flush(mx)
        assert (tarpit.accepted, busy.accepted) == (1, 1)
        # New mail for the dead hosts' domains is due at once, but the
        # hosts' back-off is not over: deferred without a connection.
        fresh = [mx.inject("s@sender.test", ["v@%s" % d], message("n" + d))
                 for d in (s["doms"]["tarpit"] + s["doms"]["busy"] +
                           s["doms"]["refuse"])]
        counts, err, t0, t1 = run_flush(mx)
        assert counts == (0, len(fresh), 0), err
        assert (tarpit.accepted, busy.accepted) == (1, 1)
        assert refused_lines(err, s["ips"]["refuse"], s["port"]) == 0
        r = mx.status_json(fresh[0])[0]["recipients"][0]
        assert "host down, next try in" in r["last_error"], r
        # flush -f tries each dead host again, once.
        counts, err, _, _ = run_flush(mx, "-f")
        assert (tarpit.accepted, busy.accepted) == (2, 2)
        assert refused_lines(err, s["ips"]["refuse"], s["port"]) == 1
        name = "%s_%d.host" % (s["ips"]["busy"], s["port"])
        text = open(os.path.join(mx.spool, "domains", name)).read()
        assert "\nfailures=2\n" in text, text
    finally:
        tarpit.close()
        busy.close()


def test_hosts_seen_up_are_served_first(mx, dns, primary_factory):
    """One connection at a time (flush-concurrency 1): the host noted up
    by the last run goes before a new one, here a tarpit whose mail came
    first."""
    port = same_port(["127.0.0.2", "127.0.0.5"])
    live, clive = primary(primary_factory, "127.0.0.2", port)
    pit = RawHost("127.0.0.5", port, "tarpit")
    domains_on(mx, dns, ["live.test"], (10, "mx.live.test", "127.0.0.2"))
    domains_on(mx, dns, ["pit.test"], (10, "mx.pit.test", "127.0.0.5"))
    config(mx, port, ["live.test", "pit.test"], "flush-concurrency 1",
           "command-timeout 4s")
    try:
        mx.inject("s@sender.test", ["u@live.test"], message("before"))
        assert run_flush(mx)[0] == (1, 0, 0)
        mx.inject("s@sender.test", ["u@pit.test"], message("pit"))
        mx.inject("s@sender.test", ["u@live.test"], message("after"))
        counts, err, t0, t1 = run_flush(mx)
    finally:
        pit.close()
    assert counts == (1, 1, 0), err
    assert subjects(live) == ["before", "after"]
    assert pit.accepted == 1 and len(pit.closed_at) == 1
    assert clive.times[-1] < pit.closed_at[0] - 2, (
        clive.times[-1] - t0, pit.closed_at[0] - t0)


def test_sessions_are_threads_not_processes(mx, dns):
    """A dozen tarpits, each waited on at once by one delivery process."""
    ips = ["127.0.2.%d" % i for i in range(1, 13)]
    port = same_port(ips)
    pits = [RawHost(ip, port, "tarpit") for ip in ips]
    names = ["pit%d.test" % i for i in range(len(ips))]
    for d, ip in zip(names, ips):
        domains_on(mx, dns, [d], (10, "mx.%s" % d, ip))
    config(mx, port, names, "command-timeout 5s")
    for d in names:
        mx.inject("s@sender.test", ["u@%s" % d], message(d))
    p = subprocess.Popen([MXFB, "flush"], env=mx.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 4
        while time.time() < deadline and sum(x.accepted for x in pits) < 12:
            time.sleep(0.05)
        assert [x.accepted for x in pits] == [1] * 12
        kids = children(p.pid)
        assert len(kids) == 1, kids
        assert children(kids[0]) == []
        threads = len(os.listdir("/proc/%d/task" % kids[0]))
        assert threads >= 12, threads
        out, err = p.communicate(timeout=30)
    finally:
        for x in pits:
            x.close()
    assert out.decode() == "delivered 0, deferred 12, failed 0\n", err


def test_two_flushes_at_once_deliver_each_once(mx, dns, primary_factory):
    s = broken_setup(mx, dns, primary_factory, command_timeout="2s")
    more = []
    for d in s["doms"]["live"] + s["doms"]["fallback"]:
        for k in range(1, 6):
            more.append("%s-%d" % (d, k))
            mx.inject("s@sender.test", ["u%d@%s" % (k, d)],
                      message("%s-%d" % (d, k)))
    try:
        procs = [subprocess.Popen([MXFB, "flush"], env=mx.env(),
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(2)]
        total = [0, 0, 0]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            m = re.match(rb"delivered (\d+), deferred (\d+), failed (\d+)",
                         out)
            for i in range(3):
                total[i] += int(m.group(i + 1))
    finally:
        s["tarpit"].close()
        s["busy"].close()
    live, _ = s["live"]
    second, _ = s["second"]
    got = subjects(live) + subjects(second)
    want = (["%s-0" % d for d in s["doms"]["live"] + s["doms"]["fallback"]]
            + more)
    assert sorted(got) == sorted(want)          # each exactly once
    assert total[0] == len(want) and total[2] == 5
    # Each run tries a dead host at most once.
    assert s["tarpit"].accepted <= 2 and s["busy"].accepted <= 2


def test_kill_9_of_the_engine_loses_nothing(mx, dns, primary_factory):
    port = same_port(["127.0.0.2", "127.0.0.3"])
    a, _ = primary(primary_factory, "127.0.0.2", port, delay=0.01)
    b, _ = primary(primary_factory, "127.0.0.3", port, delay=0.01)
    names = ["k%d.test" % i for i in range(10)]
    for i, d in enumerate(names):
        ip = "127.0.0.2" if i % 2 == 0 else "127.0.0.3"
        domains_on(mx, dns, [d], (10, "mx%d.hoster.test" % (i % 2), ip))
    per_host = 3
    config(mx, port, names, "flush-per-host %d" % per_host)
    n = 200
    fill(mx, n, rcpt=lambda i: "u%d@%s" % (i % 3, names[i % len(names)]))
    rnd = random.Random(13)
    kills = 0
    for _ in range(6):
        p = subprocess.Popen([MXFB, "flush", "-f"], env=mx.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        time.sleep(rnd.uniform(0.1, 0.5))
        if p.poll() is None:
            group = group_pids(p.pid)
            os.killpg(p.pid, signal.SIGKILL)
            kills += 1
            p.communicate()
            wait_gone(group)
        else:
            p.communicate()
    p = mx.run("flush", "-f", timeout=120)
    assert p.returncode == 0
    assert mx.status_json() == []
    got = subjects(a) + subjects(b)
    want = ["c%04d" % i for i in range(n)]
    assert set(got) == set(want)                 # nothing lost
    dups = len(got) - n
    # At most one message in flight per connection per kill.
    assert dups <= kills * per_host * 2, (dups, kills)


def test_host_view_in_status_and_probe(mx, dns, primary_factory):
    """status -s and -H show the host notes; probe shows flush's view and
    a host it finds up again is tried by the next unforced flush."""
    import json
    port = same_port(["127.0.0.2", "127.0.0.3"])
    live, _ = primary(primary_factory, "127.0.0.2", port)
    domains_on(mx, dns, ["up.test"], (10, "mx.up.test", "127.0.0.2"))
    domains_on(mx, dns, ["back.test"], (10, "mx.back.test", "127.0.0.3"))
    config(mx, port, ["up.test", "back.test"])
    mx.inject("s@sender.test", ["u@up.test"], message("up"))
    first = mx.inject("s@sender.test", ["u@back.test"], message("back1"))
    counts, err, _, _ = run_flush(mx)
    assert counts == (1, 1, 0), err
    out = mx.run("status", "-s", check=True).stdout.decode()
    head = out.index("Next-hop host")
    hosts = out[head:].splitlines()
    assert re.match(r"^127\.0\.0\.2:%d \(mx\.up\.test\) +up since " % port,
                    hosts[1]), hosts
    assert re.match(r"^127\.0\.0\.3:%d \(mx\.back\.test\) +down since .*, "
                    r"next try .* \(connect to mx\.back\.test\[127\.0\.0\.3\]"
                    r":%d: Connection refused\)$" % (port, port), hosts[2]), \
        hosts
    objs = [json.loads(l) for l in mx.run("status", "-H", "-j", check=True)
            .stdout.decode().splitlines()]
    assert [(o["host"], o["port"], o["mx"], o["state"], o["failures"])
            for o in objs] == [("127.0.0.2", port, "mx.up.test", "up", 0),
                               ("127.0.0.3", port, "mx.back.test", "down", 1)]
    assert objs[0]["next_try"] is None and objs[0]["reason"] is None
    assert objs[1]["next_try"] >= objs[1]["checked"] + 60
    assert "Connection refused" in objs[1]["reason"]
    # status -s -j stays one object per domain.
    rows = [json.loads(l) for l in mx.run("status", "-s", "-j", check=True)
            .stdout.decode().splitlines()]
    assert all("domain" in r for r in rows)

    # The primary comes back; new mail is due, but the note holds it back.
    back, cback = primary(primary_factory, "127.0.0.3", port)
    second = mx.inject("s@sender.test", ["v@back.test"], message("back2"))
    counts, err, _, _ = run_flush(mx)
    assert counts == (0, 1, 0) and cback.sessions == set(), err
    p = mx.run("probe", timeout=60)
    lines = {l.split()[1].split("[")[0]: l
             for l in p.stdout.decode().splitlines()[1:]}
    assert lines["mx.back.test"].split()[3] == "up"
    assert re.search(r" flush-host=down\(next try \d\d:\d\d:\d\d\)$",
                     lines["mx.back.test"]), lines
    assert lines["mx.up.test"].endswith(" flush-host=up"), lines
    # The probe found it up: the next unforced flush tries it at once
    # (the two deferred messages are not due yet, a new one is).
    mx.inject("s@sender.test", ["w@back.test"], message("back3"))
    counts, err, _, _ = run_flush(mx)
    assert counts == (1, 0, 0), err
    assert subjects(back) == ["back3"]
    assert {first, second} <= {m["id"] for m in mx.status_json()}
