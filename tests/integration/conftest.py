"""Shared fixtures for the integration tests.

Every test runs the real binary ($MXFB_BIN, default ./mxfb) against peers
on loopback only: a dnslib DNS server (`dns`), aiosmtpd primaries
(`primary_factory`), and a per-test spool and configuration (`mx`).
Nothing here may resolve through, or connect to, anything but 127.0.0.0/8.
"""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
from dnslib import RR, QTYPE, RCODE, A, AAAA, MX, TXT
from dnslib.server import BaseResolver, DNSServer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MXFB = os.environ.get("MXFB_BIN") or os.path.join(REPO, "mxfb")

# Started as root, every command becomes `user` (default mxfb, not an
# account on a fresh machine): the tests name one every Debian has.
USER = "nobody"


def user_ids():
    """(uid, gid) of USER."""
    pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Run as root, the tests' temp directories live under a base of our
    own: pytest's default (/tmp/pytest-of-root) is set back to 0700 by
    every pytest run that starts meanwhile, which would shut USER out of
    the spools and configuration files of running tests."""
    if config.option.basetemp is None and os.geteuid() == 0:
        base = tempfile.mkdtemp(prefix="mxfb-pytest-")
        os.chmod(base, 0o711)
        config.option.basetemp = os.path.join(base, "tmp")
        config._mxfb_basetemp = base


def pytest_unconfigure(config):
    base = getattr(config, "_mxfb_basetemp", None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def reachable(path):
    """Let USER reach path: pytest makes tmp_path and its parents 0700;
    every directory from / down gets search permission."""
    if os.geteuid() != 0:
        return
    path = os.path.abspath(path)
    while True:
        st = os.stat(path)
        if st.st_mode & 0o001 == 0:
            os.chmod(path, (st.st_mode & 0o7777) | 0o011)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def tmpfs_options(size):
    """mount -o for a tmpfs spool of size that USER owns (0700)."""
    uid, gid = user_ids()
    return "size=%s,mode=0700,uid=%d,gid=%d" % (size, uid, gid)


def give_to_user(path):
    """chown -R path to USER (a spool, or files planted in it, as root
    made them: the user mxfb runs as must own its spool)."""
    if os.geteuid() != 0:
        return
    uid, gid = user_ids()
    os.lchown(path, uid, gid)
    for dp, dns_, fs in os.walk(path):
        for n in dns_ + fs:
            os.lchown(os.path.join(dp, n), uid, gid)


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("nothing listening on %s:%d" % (host, port))


class Zone(BaseResolver):
    """A tiny authoritative zone: records[(name, qtype)] -> [rdata];
    rcodes[name] -> forced RCODE (e.g. RCODE.SERVFAIL); silent: names
    for which no answer is sent at all (a timeout)."""

    def __init__(self):
        self.records = {}
        self.rcodes = {}
        self.silent = set()
        self.queries = []
        self.lock = threading.Lock()

    @staticmethod
    def _norm(name):
        return str(name).rstrip(".").lower()

    def add(self, name, qtype, rdata):
        with self.lock:
            self.records.setdefault((self._norm(name), qtype), []).append(rdata)

    def clear(self, name, qtype=None):
        with self.lock:
            for k in list(self.records):
                if k[0] == self._norm(name) and (qtype is None or k[1] == qtype):
                    del self.records[k]

    def mx(self, domain, pref, host):
        self.add(domain, "MX", MX(host.rstrip(".") + ".", pref))

    def a(self, host, ip):
        self.add(host, "A", A(ip))

    def aaaa(self, host, ip):
        self.add(host, "AAAA", AAAA(ip))

    def resolve(self, request, handler):
        qname = self._norm(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            if qname in self.silent:
                return None
        reply = request.reply()
        reply.header.aa = 1
        with self.lock:
            if qname in self.rcodes:
                reply.header.rcode = self.rcodes[qname]
                return reply
            known = any(k[0] == qname for k in self.records)
            rdatas = list(self.records.get((qname, qtype), []))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rd in rdatas:
            reply.add_answer(RR(request.q.qname, QTYPE.reverse[qtype], rdata=rd, ttl=60))
        return reply


class _QuietLogger:
    def __getattr__(self, name):
        return lambda *a, **k: None


@pytest.fixture
def dns():
    """A DNS server on 127.0.0.1 (UDP and TCP); .zone to add records,
    .port to point `resolver` at."""
    yield from serve_dns(Zone())


def serve_dns(zone):
    """Serve zone (any dnslib resolver) on 127.0.0.1, UDP and TCP on one
    port; sets zone.port and zone.address, yields zone (for fixtures)."""
    # UDP and TCP on one port number: another process may take the TCP
    # side of a port that was free for UDP, so try a few.
    for attempt in range(20):
        port = free_port(kind=socket.SOCK_DGRAM)
        try:
            udp = DNSServer(zone, port=port, address="127.0.0.1",
                            logger=_QuietLogger())
        except OSError:
            continue
        try:
            tcp = DNSServer(zone, port=port, address="127.0.0.1", tcp=True,
                            logger=_QuietLogger())
        except OSError:
            udp.server.server_close()
            continue
        break
    else:
        raise RuntimeError("no free port for the test DNS server")
    # dnslib's own start_thread polls for shutdown every 0.5 s, which
    # makes every test's teardown a second long.
    for srv in (udp, tcp):
        srv.thread = threading.Thread(target=srv.server.serve_forever,
                                      kwargs={"poll_interval": 0.02},
                                      daemon=True)
        srv.thread.start()
    zone.port = port
    zone.address = "127.0.0.1:%d" % port
    yield zone
    udp.stop()
    tcp.stop()


class Mxfb:
    """One mxfb installation: a spool and a configuration file in a temp
    dir.  config() rewrites the configuration; run() runs a command."""

    def __init__(self, tmp, dns):
        self.dir = str(tmp)
        self.spool = os.path.join(self.dir, "spool")
        self.conf = os.path.join(self.dir, "mxfb.conf")
        self.dns = dns
        self.hostname = "backup.example.test"
        self.extra = []
        reachable(self.dir)
        self.config()

    def base_lines(self):
        return [
            "hostname %s" % self.hostname,
            "spool %s" % self.spool,
            "relay-domain example.test",
            "resolver %s" % self.dns.address,
            "log stderr",
            "dns-timeout 1s",
            "dns-retry 1",
            "user %s" % USER,
        ]

    def config(self, *lines, replace_base=False):
        self.extra = list(lines)
        body = list(lines) if replace_base else self.base_lines() + list(lines)
        with open(self.conf, "w") as f:
            f.write("\n".join(body) + "\n")

    def env(self, extra=None):
        e = dict(os.environ)
        e["MXFB_CONFIG"] = self.conf
        e.pop("TCPREMOTEIP", None)
        if extra:
            e.update(extra)
        return e

    def run(self, *args, input=None, check=False, env=None, timeout=60,
            argv0=None):
        cmd = [MXFB] + list(args)
        kw = {}
        if argv0:
            kw["executable"] = MXFB
            cmd = [argv0] + list(args)
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=self.env(env),
                           timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
                cmd, p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace")))
        return p

    def give(self, path=None):
        """Hand path (default: the spool) to the user mxfb runs as."""
        give_to_user(path or self.spool)

    def inject(self, sender, rcpts, message):
        p = self.run("inject", "-f", sender, *rcpts, input=message, check=True)
        return p.stdout.decode().strip()

    def status_json(self, *args):
        import json
        p = self.run("status", "-j", *args, check=True)
        return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]

    def listen(self, host="127.0.0.1", extra_args=()):
        """Start `receive -l` on a free port; returns (process, port)."""
        port = free_port(host)
        p = subprocess.Popen([MXFB, "receive", "-l", "%s:%d" % (host, port)]
                             + list(extra_args), env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        wait_port(host, port)
        return p, port

    procs = None


@pytest.fixture
def mx(tmp_path, dns):
    m = Mxfb(tmp_path, dns)
    m.procs = []
    yield m
    for p in m.procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Recorder:
    """aiosmtpd handler: records envelopes; per-recipient replies from
    .rcpt_replies[addr] (e.g. "451 4.3.0 try later"), .data_reply for
    the end of DATA."""

    def __init__(self):
        self.messages = []
        self.rcpt_replies = {}
        self.data_reply = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = self.rcpt_replies.get(address)
        if r:
            return r
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from,
                "mail_options": list(envelope.mail_options),
                "rcpts": list(envelope.rcpt_tos),
                "rcpt_options": [list(o) for o in envelope.rcpt_options],
                "data": envelope.original_content,
            })
        return "250 2.0.0 OK queued"


@pytest.fixture
def primary_factory():
    """primary_factory(host="127.0.0.2", port=None, **controller_kw)
    starts an aiosmtpd server; returns (controller, recorder)."""
    from aiosmtpd.controller import Controller
    started = []

    def make(host="127.0.0.2", port=None, **kw):
        rec = Recorder()
        port = port or free_port(host)
        kw.setdefault("decode_data", False)
        c = Controller(rec, hostname=host, port=port, **kw)
        c.start()
        started.append(c)
        c.recorder = rec
        return c, rec

    yield make
    for c in started:
        try:
            c.stop()
        except Exception:
            pass


# ---- receive: SMTP client helpers (added for tests/integration/test_receive*.py)

class RawSmtp:
    """A byte-level SMTP client over any connected socket: send() writes
    exactly the bytes given; reply() reads one complete (multi-line)
    reply and returns (code, text) with the lines joined by "\\n"."""

    def __init__(self, sock, timeout=30):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def read_to_eof(self):
        data = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                break
            if not chunk:
                break
            data += chunk
        return data

    def close(self):
        self.sock.close()


def receive_stdio(mx, env=None, args=()):
    """Run `mxfb receive` on one end of a socketpair, as inetd would (a
    Unix socket: no IP peer, so $TCPREMOTEIP or "local" is used).
    Returns (process, RawSmtp at the client end) after the greeting."""
    client, server = socket.socketpair()
    p = subprocess.Popen([MXFB, "receive"] + list(args), stdin=server,
                         stdout=server, stderr=subprocess.PIPE,
                         env=mx.env(env))
    server.close()
    mx.procs.append(p)
    raw = RawSmtp(client)
    code, text = raw.reply()
    assert code == 220, text
    return p, raw


def smtplib_on(sock):
    """An smtplib.SMTP client on an already connected socket (after the
    greeting has not yet been read)."""
    import smtplib
    s = smtplib.SMTP()
    s.sock = sock
    code, msg = s.getreply()
    assert code == 220, msg
    return s
