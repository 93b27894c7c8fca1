"""`mxfb probe` as a monitoring plugin, against aiosmtpd primaries and a
dnslib DNS server on loopback.

Shows: one line per primary (domain, host[ip]:port, pref, up/down,
latency, banner or reason); exit 0 all up, 1 degraded, 2 a domain with no
primary up, 3 could not tell (DNS failure, loop to ourselves); -q quiet;
a successful probe recorded in the spool; -F starts a flush for domains
with mail waiting whose primary is up; via and only-better-than-us MX.
"""
import os
import re
import time

from test_flush import FAST, message, setup_domain

LINE = re.compile(r"^(?P<domain>\S+) (?P<relay>\S+) pref=(?P<pref>\S+) "
                  r"(?P<state>up|down|unknown) (?P<ms>\d+)ms (?P<text>.*)$")


STATUS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
FIRST = re.compile(r"^MXFB (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]*?)"
                   r"(?: \| (.*))?$")
# Monitoring Plugins guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERF = re.compile(r"(?:'((?:[^'=]|'')+)'|([^'= ]+))="
                  r"(U|-?[0-9]+(?:\.[0-9]+)?)(s|ms|us|%|B|KB|MB|TB|c)?"
                  r"((?:;[^; ]*){0,4})(?: |$)")


def perfdata(text):
    """The guidelines' perfdata as {label: (value, uom)}; the whole text
    must parse."""
    got, pos = {}, 0
    while pos < len(text):
        m = PERF.match(text, pos)
        assert m, "bad perfdata at %r" % text[pos:]
        label = m.group(1).replace("''", "'") if m.group(1) else m.group(2)
        value = None if m.group(3) == "U" else float(m.group(3))
        got[label] = (value, m.group(4) or "")
        pos = m.end()
    return got


def first_line(p):
    out = p.stdout.decode().splitlines()
    assert out, p.stderr
    m = FIRST.match(out[0])
    assert m, out[0]
    assert m.group(1) == STATUS[p.returncode], (out[0], p.returncode)
    return m.group(2), perfdata(m.group(3) or "")


def probe(mx, *args):
    p = mx.run("probe", *args, timeout=60)
    out = p.stdout.decode().splitlines()
    if out:
        first_line(p)
    lines = [LINE.match(l) for l in out[1:]]
    assert all(lines), p.stdout.decode()
    return p.returncode, lines, p


def notes(mx):
    found = []
    for root, _, files in os.walk(mx.spool):
        for f in files:
            path = os.path.join(root, f)
            try:
                with open(path, "rb") as fh:
                    data = fh.read(4096)
            except OSError:
                continue
            if b"ehlo=" in data:
                found.append(data.decode(errors="replace"))
    return found


def test_all_up(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    c3, _ = primary_factory("127.0.0.3", port=c.port)
    setup_domain(mx, dns, c.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx2.example.test", "127.0.0.3", 15)))
    mx.run("status")             # creates nothing; spool made by inject
    mx.inject("s@sender.test", ["a@example.test"], message())
    rc, lines, p = probe(mx)
    assert rc == 0, p.stderr
    assert len(lines) == 2
    assert lines[0]["domain"] == "example.test"
    assert lines[0]["relay"] == "mx1.example.test[127.0.0.2]:%d" % c.port
    assert lines[0]["pref"] == "10"
    assert lines[0]["state"] == "up"
    assert lines[0]["text"].startswith("220 ")
    assert lines[1]["relay"] == "mx2.example.test[127.0.0.3]:%d" % c.port
    # Recorded: time, host, EHLO keywords.
    n = notes(mx)
    assert len(n) == 1
    assert "host=mx1.example.test" in n[0]
    assert "8BITMIME" in n[0] and "time=" in n[0]
    # Quiet: nothing printed, same status.
    rc, lines, p = probe(mx, "-q")
    assert rc == 0 and p.stdout == b""
    # probe never delivers by itself.
    assert rec.messages == []


def test_degraded_and_critical(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    c3, _ = primary_factory("127.0.0.3", port=c.port)
    setup_domain(mx, dns, c.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx2.example.test", "127.0.0.3", 15)))
    c3.stop()
    rc, lines, _ = probe(mx)
    assert rc == 1
    states = {l["relay"].split("[")[0]: l for l in lines}
    assert states["mx1.example.test"]["state"] == "up"
    assert states["mx2.example.test"]["state"] == "down"
    assert "Connection refused" in states["mx2.example.test"]["text"]
    c.stop()
    rc, lines, _ = probe(mx)
    assert rc == 2
    assert [l["state"] for l in lines] == ["down", "down"]


def test_silent_primary_times_out(mx, dns):
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.2", 0))
    srv.listen(5)                    # accepts (kernel), never says a word
    port = srv.getsockname()[1]
    try:
        setup_domain(mx, dns, port)
        mx.config("smtp-port %d" % port, "connect-timeout 1s",
                  "command-timeout 1s")
        t0 = time.time()
        rc, lines, _ = probe(mx)
        assert time.time() - t0 < 10
        assert rc == 2
        assert "timed out while receiving the initial server greeting" \
            in lines[0]["text"]
    finally:
        srv.close()


def test_unknown_when_dns_fails_or_loops(mx, dns, primary_factory):
    from dnslib import RCODE
    c, _ = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    mx.config("smtp-port %d" % c.port, "relay-domain broken.test", *FAST)
    dns.rcodes["broken.test"] = RCODE.SERVFAIL
    rc, lines, _ = probe(mx)
    assert rc == 3
    got = {l["domain"]: l for l in lines}
    assert got["example.test"]["state"] == "up"
    assert got["broken.test"]["state"] == "unknown"
    assert got["broken.test"]["relay"] == "-"
    # Only the working domain asked for: OK.
    rc, lines, _ = probe(mx, "example.test")
    assert rc == 0 and len(lines) == 1
    # We are the best MX: cannot tell (a configuration problem).
    dns.clear("example.test", "MX")
    dns.mx("example.test", 5, "backup.example.test")
    rc, lines, _ = probe(mx, "example.test")
    assert rc == 3
    assert "loops back to myself" in lines[0]["text"]


def test_nxdomain_or_null_mx_is_critical(mx, dns, primary_factory):
    """A relay domain whose name does not exist, or that publishes a Null
    MX (RFC 7505), has no primary for certain: critical (2), not
    unknown."""
    c, _ = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    mx.config("smtp-port %d" % c.port, "relay-domain gone.test",
              "relay-domain nullmx.test", *FAST)
    dns.mx("nullmx.test", 0, ".")
    for domain in ("gone.test", "nullmx.test"):
        rc, lines, _ = probe(mx, domain)
        assert rc == 2, lines
        assert lines[0]["state"] == "down"
        assert lines[0]["relay"] == "-"


def test_critical_beats_unknown(mx, dns, primary_factory):
    from dnslib import RCODE
    c, _ = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    mx.config("smtp-port %d" % c.port, "relay-domain broken.test", *FAST)
    dns.rcodes["broken.test"] = RCODE.SERVFAIL
    c.stop()
    rc, _, _ = probe(mx)
    assert rc == 2


def test_only_primaries_better_than_us_and_via(mx, dns, primary_factory):
    c, _ = primary_factory("127.0.0.2")
    c3, _ = primary_factory("127.0.0.3")
    setup_domain(mx, dns, c.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx9.example.test", "127.0.0.9", 90)))
    mx.config("smtp-port %d" % c.port,
              "relay-domain via.test via [127.0.0.3]:%d" % c3.port, *FAST)
    rc, lines, _ = probe(mx)
    assert rc == 0
    relays = sorted(l["relay"] for l in lines)
    assert relays == sorted(["mx1.example.test[127.0.0.2]:%d" % c.port,
                             "127.0.0.3[127.0.0.3]:%d" % c3.port])


def test_probe_F_starts_flush(mx, dns, primary_factory):
    c, rec = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    c.stop()
    mx.inject("s@sender.test", ["a@example.test"], message())
    rc, _, _ = probe(mx, "-q", "-F")
    assert rc == 2
    time.sleep(0.5)
    assert rec.messages == []
    c2, rec2 = primary_factory("127.0.0.2", port=c.port)
    rc, _, _ = probe(mx, "-q", "-F")
    assert rc == 0
    deadline = time.time() + 15
    while time.time() < deadline and not rec2.messages:
        time.sleep(0.1)
    assert len(rec2.messages) == 1
    deadline = time.time() + 10
    while time.time() < deadline and mx.status_json():
        time.sleep(0.1)
    assert mx.status_json() == []


def test_no_relay_domains(mx, dns):
    mx.config("hostname backup.example.test", "spool %s" % mx.spool,
              "resolver %s" % dns.address, "log stderr", replace_base=True)
    p = mx.run("probe")
    assert p.returncode == 3
    assert b"mxfb: probe:" in p.stderr


def test_bad_configuration_is_unknown(mx, dns):
    mx.config("no-such-key 1")
    p = mx.run("probe")
    assert p.returncode == 3
    assert b"no-such-key" in p.stderr
    p = mx.run("probe", "-C", os.path.join(mx.dir, "missing.conf"))
    assert p.returncode == 3
    p = mx.run("probe", "-t", "0")
    assert p.returncode == 64


def test_timeout_cap(mx, dns):
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.2", 0))
    srv.listen(5)
    port = srv.getsockname()[1]
    try:
        setup_domain(mx, dns, port)
        # The configured timeouts are long; -t 1 caps every wait.
        mx.config("smtp-port %d" % port, "command-timeout 300s")
        t0 = time.time()
        rc, lines, _ = probe(mx, "-t", "1")
        assert time.time() - t0 < 5
        assert rc == 2
        assert "timed out" in lines[0]["text"]
    finally:
        srv.close()


def test_domains_taken_as_flush_takes_them(mx, dns, primary_factory):
    """A domain given to probe is read as flush -d reads it (one helper,
    address_domain_typed): case and one trailing dot aside; nothing left
    (the root "."), a '/' or an empty name is a usage error for both."""
    c, _ = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    rc, lines, p = probe(mx, "EXAMPLE.Test.")
    assert rc == 0, p.stderr
    assert [l["domain"] for l in lines] == ["example.test"]
    for bad in ("", ".", "a/b.test", "x" * 254):
        p = mx.run("probe", bad)
        assert p.returncode == 64, (bad, p.stderr)
        assert b"bad domain" in p.stderr
        if len(bad) < 254:
            p = mx.run("flush", "-d", bad)
            assert p.returncode == 64, (bad, p.stderr)
            assert b"bad domain for -d" in p.stderr


# ---- the monitoring-plugin first line (issue 17 point 4)

def two_primaries(mx, dns, primary_factory):
    c, _ = primary_factory("127.0.0.2")
    c3, _ = primary_factory("127.0.0.3", port=c.port)
    setup_domain(mx, dns, c.port, primaries=(
        ("mx1.example.test", "127.0.0.2", 10),
        ("mx2.example.test", "127.0.0.3", 15)))
    return c, c3


def host_perf(perf, host, up):
    for what in ("connect", "greeting"):
        value, uom = perf["example.test %s %s" % (host, what)]
        if up:
            assert uom == "s" and 0 <= value < 5, (host, what, value)
        else:
            assert value is None, (host, what, value)


def test_plugin_ok_first_line_and_perfdata(mx, dns, primary_factory):
    c, _ = two_primaries(mx, dns, primary_factory)
    mx.inject("s@sender.test", ["a@example.test"], message())
    mx.inject("s@sender.test", ["b@example.test"], message())
    time.sleep(1.1)
    rc, lines, p = probe(mx)
    assert rc == 0, p.stderr
    out = p.stdout.decode().splitlines()
    assert out[0].startswith(
        "MXFB OK - example.test: primary mx1.example.test up | "), out[0]
    summary, perf = first_line(p)
    assert summary == "example.test: primary mx1.example.test up"
    host_perf(perf, "mx1.example.test", True)
    host_perf(perf, "mx2.example.test", True)
    assert perf["example.test queue"] == (2, "")
    age, uom = perf["example.test oldest"]
    assert uom == "s" and 1 <= age < 60, perf
    assert len(perf) == 6, perf
    # The per-host lines follow, as before the first line existed.
    assert len(out) == 3
    assert [l["relay"] for l in lines] == [
        "mx1.example.test[127.0.0.2]:%d" % c.port,
        "mx2.example.test[127.0.0.3]:%d" % c.port]
    assert [l["state"] for l in lines] == ["up", "up"]
    assert all(l["text"].startswith("220 ") for l in lines)


def test_plugin_warning_and_critical(mx, dns, primary_factory):
    c, c3 = two_primaries(mx, dns, primary_factory)
    mx.inject("s@sender.test", ["a@example.test"], message())
    c3.stop()
    rc, lines, p = probe(mx)
    assert rc == 1
    summary, perf = first_line(p)
    assert summary == ("example.test: primary mx1.example.test up, "
                       "1 of 2 down")
    host_perf(perf, "mx1.example.test", True)
    host_perf(perf, "mx2.example.test", False)
    assert perf["example.test queue"] == (1, "")
    assert [l["state"] for l in lines] == ["up", "down"]
    c.stop()
    rc, lines, p = probe(mx)
    assert rc == 2
    summary, perf = first_line(p)
    assert summary == "example.test: down"
    host_perf(perf, "mx1.example.test", False)
    host_perf(perf, "mx2.example.test", False)
    assert perf["example.test queue"] == (1, "")
    assert [l["state"] for l in lines] == ["down", "down"]


def test_plugin_no_relay_domains(mx, dns):
    mx.config("hostname backup.example.test", "spool %s" % mx.spool,
              "resolver %s" % dns.address, "log stderr", "user nobody",
              replace_base=True)
    p = mx.run("probe")
    assert p.returncode == 3
    assert p.stdout == b"MXFB UNKNOWN - no relay-domain configured\n"
    assert b"mxfb: probe: no relay-domain configured" in p.stderr
    assert mx.run("probe", "-q").stdout == b""
    # An account that does not exist: UNKNOWN, saying so.
    mx.config("hostname backup.example.test", "spool %s" % mx.spool,
              "resolver %s" % dns.address, "log stderr",
              "user no-such-user-here", "relay-domain example.test",
              replace_base=True)
    p = mx.run("probe")
    assert p.returncode == 3
    assert p.stdout.startswith(b"MXFB UNKNOWN - "), p.stdout
    assert b"no-such-user-here" in p.stdout and p.stdout.count(b"\n") == 1


def test_plugin_unknown_and_no_spool(mx, dns, primary_factory):
    """A domain DNS cannot tell about is UNKNOWN with no host figures;
    with no spool to list (nothing ever queued) the queue figures are
    left out."""
    from dnslib import RCODE
    c, _ = primary_factory("127.0.0.2")
    setup_domain(mx, dns, c.port)
    mx.config("smtp-port %d" % c.port, "relay-domain broken.test", *FAST)
    dns.rcodes["broken.test"] = RCODE.SERVFAIL
    rc, lines, p = probe(mx, "broken.test")
    assert rc == 3
    assert p.stdout.decode().splitlines()[0] == \
        "MXFB UNKNOWN - broken.test: unknown", p.stdout
    assert [l["state"] for l in lines] == ["unknown"]
    rc, lines, p = probe(mx, "example.test")
    assert rc == 0
    summary, perf = first_line(p)
    assert sorted(perf) == ["example.test mx1.example.test connect",
                            "example.test mx1.example.test greeting"]


def test_plugin_precedence(mx, dns, primary_factory):
    """CRITICAL outranks UNKNOWN, UNKNOWN outranks WARNING, in the exit
    status and the first line's word; every domain in the summary."""
    from dnslib import RCODE
    c, c3 = two_primaries(mx, dns, primary_factory)
    mx.config("smtp-port %d" % c.port, "relay-domain broken.test",
              "relay-domain gone.test", *FAST)
    dns.rcodes["broken.test"] = RCODE.SERVFAIL
    c3.stop()
    mx.inject("s@sender.test", ["a@example.test", "b@gone.test"], message())
    rc, _, p = probe(mx, "example.test", "broken.test")
    assert rc == 3
    summary, perf = first_line(p)
    assert summary == ("example.test: primary mx1.example.test up, 1 of 2 "
                       "down; broken.test: unknown")
    assert perf["broken.test queue"] == (0, "")
    assert perf["broken.test oldest"] == (0, "s")
    rc, lines, p = probe(mx)
    assert rc == 2
    summary, perf = first_line(p)
    assert summary == ("example.test: primary mx1.example.test up, 1 of 2 "
                       "down; broken.test: unknown; gone.test: down")
    assert perf["gone.test queue"] == (1, "")
    assert perf["example.test queue"] == (1, "")
    assert [l["domain"] for l in lines] == [
        "example.test", "example.test", "broken.test", "gone.test"]
    rc, _, p = probe(mx, "example.test")
    assert rc == 1
    assert first_line(p)[0].startswith("example.test: primary")


def test_perfdata_parser_rejects_bad_syntax():
    """The test's parser follows the grammar (so it can fail)."""
    import pytest
    assert perfdata("'a b'=1s;2;3;0;9 c=U 'it''s'=0.5") == {
        "a b": (1, "s"), "c": (None, ""), "it's": (0.5, "")}
    for bad in ("a b=1", "'a'=x", "'a'=1sec", "'a=b'=1", "'a'=1;;;;;"):
        with pytest.raises(AssertionError):
            perfdata(bad)
