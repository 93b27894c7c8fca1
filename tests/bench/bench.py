#!/usr/bin/python3
"""mxfb against Postfix and against the disk, side by side (issue 6).

Starts, on loopback only, a DNS server, Postfix's smtp-sink as the primary
MX, a private Postfix instance configured as backup MX for example.test,
and mxfb (under tcpserver, inetd-style, and as `receive -l`; the default
build and, given MXFB_STATIC_BIN, a STATIC=1 copy beside it); then measures
receive rates, connection cost, drain, status of a big queue and the
machine's fsync limit, and the drain after a mass outage of many
domains' primaries (issue 13), and prints one table (plus bench.json, and
bench.png when gnuplot is there).  See tests/bench/README.

A benchmark, not a test: it exits non-zero only when it cannot run.
Sizes scale with BENCH_QUICK=1 and the BENCH_* variables in the README.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MXFB = os.path.abspath(os.environ.get("MXFB_BIN") or os.path.join(REPO, "mxfb"))
# A STATIC=1 build beside the default (dynamic) one: `make bench` builds it
# into build-static/ and names it here; its connection and receive rows
# stand next to the default build's.  Unset, or BENCH_STATIC=0: none.
MXFB_STATIC = os.environ.get("MXFB_STATIC_BIN") or None
if MXFB_STATIC and os.environ.get("BENCH_STATIC", "1") != "0":
    MXFB_STATIC = os.path.abspath(MXFB_STATIC)
else:
    MXFB_STATIC = None
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
OUT = os.path.abspath(os.environ.get("BENCH_OUT", "."))
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0")


def knob(name, full, quick):
    return type(full)(os.environ.get("BENCH_" + name, quick if QUICK else full))


RUN_SECONDS = knob("RUN_SECONDS", 6.0, 2.0)   # each receive run
RECV_MSGS = knob("RECV_MSGS", 100000, 100000)  # cap per receive run
DRAIN_MSGS = knob("DRAIN", 5000, 300)          # queue drained to smtp-sink
STATUS_MSGS = knob("STATUS", 100000, 2000)     # queue listed by status
STATUS_SEED = knob("STATUS_SEED", 2000, 500)   # of which really received
SECONDS = knob("SECONDS", 4.0, 1.0)            # fsync and connection runs
REPEAT = knob("REPEAT", 3, 1)                  # status runs (median)
STATUS_PAIRS = knob("STATUS_PAIRS", 7, 5)      # status -s/-m interleaved
CONCURRENCY = [int(c) for c in
               os.environ.get("BENCH_CONCURRENCY", "1,4,16").split(",")]
PER_CONN = [1, 20]
PHASES = os.environ.get("BENCH_PHASES",
                        "fsync,connect,receive,syscalls,drain,status,verify,"
                        "mailbox,outage,submission").split(",")
VERIFY_SESSIONS = knob("VERIFY_SESSIONS", 200, 30)  # per verify figure
VERIFY_RCPTS = 20                             # RCPTs per session (and 1)
VERIFY_FILE_LINES = 100000                    # the recipients file
MAILBOX_RCPTS = knob("MAILBOX_RCPTS", 1, 1)   # recipients per message
MAILBOX_PAIRS = knob("MAILBOX_PAIRS", 7, 1)   # off/on pairs (median)
MAILBOX_CONC, MAILBOX_PER_CONN = 16, 20       # receive -l, with and without
SUB_LOGINS = knob("SUB_LOGINS", 40, 10)        # AUTH cost: logins timed
SUB_CONC = 4                                  # submission: sessions at once
SUB_USER, SUB_PASSWORD = "sub@example.test", "bench password 1"
MSG_BYTES = 2048                              # smtp-source -l
# The mass outage (issue 13): scenario, "DOMAINS,MESSAGES", primaries
# shared (two per kind) or each domain its own; "0" skips a scenario.
OUTAGE = [("A", knob("OUTAGE_A", "200,4000", "40,400"), False),
          ("B", knob("OUTAGE_B", "300,3000", "60,600"), True)]
OUTAGE_TIMEOUT = knob("OUTAGE_TIMEOUT", 20, 5)  # connect, greeting: s
OUTAGE_KINDS = ("up", "refusing", "tarpit", "421", "550")
DOMAIN = "example.test"
HOSTNAME = "backup.example.test"
PRIMARY_IP = "127.0.0.2"
CGROOT = "/sys/fs/cgroup/cpuacct"

TARGETS = {             # ratio mxfb/Postfix (or Postfix/mxfb for times)
    "receive-inetd": 1.5,
    "receive-listen": 2.0,
    "drain": 3.0,
    "status": 10.0,
    "connect": 2.0,
}
STATUS_RSS_LIMIT_KB = 16 * 1024


T_START = time.monotonic()


def log(*a):
    print("bench: [%4.0fs]" % (time.monotonic() - T_START), *a,
          file=sys.stderr, flush=True)


def die(msg):
    log("cannot run:", msg)
    sys.exit(1)


# ---------------------------------------------------------------- setup

def which(prog):
    return shutil.which(prog, path=os.environ.get("PATH", "") +
                        ":/usr/sbin:/sbin:/usr/bin:/bin")


def have_dnslib():
    return subprocess.run(["/usr/bin/python3", "-c", "import dnslib"],
                          stderr=subprocess.DEVNULL).returncode == 0


def ensure_packages():
    """Install the peers like the tests do: Postfix (smtp-source,
    smtp-sink, the private instance), ucspi-tcp, dnslib.  Never starts or
    enables the system Postfix: debconf says "No configuration", a
    temporary policy-rc.d refuses service starts, and the unit the package
    enables is disabled again."""
    need = []
    if not (which("postfix") and which("smtp-source") and which("smtp-sink")):
        need.append("postfix")
    if not which("tcpserver"):
        need.append("ucspi-tcp")
    if not have_dnslib():
        need.append("python3-dnslib")
    if not which("cc"):
        need.append("gcc")
    if not need:
        return
    apt = "apt-get install -y " + " ".join(need)
    if os.geteuid() != 0:
        die("missing packages; as root run:\n  echo 'postfix postfix/"
            "main_mailer_type select No configuration' | "
            "debconf-set-selections\n  " + apt)
    log("installing:", " ".join(need))
    subprocess.run(["debconf-set-selections"], check=True,
                   input=b"postfix postfix/main_mailer_type select "
                         b"No configuration\n")
    prc = "/usr/sbin/policy-rc.d"
    created = False
    if not os.path.exists(prc):
        with open(prc, "w") as f:
            f.write("#!/bin/sh\n# mxfb bench: no service starts\nexit 101\n")
        os.chmod(prc, 0o755)
        created = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq"] + need
        if subprocess.run(cmd, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env)
            if subprocess.run(cmd, env=env).returncode != 0:
                die("apt-get install failed: " + apt)
    finally:
        if created:
            os.unlink(prc)
    if "postfix" in need and which("systemctl"):
        subprocess.run(["systemctl", "disable", "--quiet", "postfix.service"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def isolate():
    """Re-run inside new network and PID namespaces (root only): the only
    interface is lo, so nothing can reach beyond loopback, and every process
    the bench started dies with it."""
    if os.environ.get("BENCH_INNER") or os.environ.get("BENCH_NO_UNSHARE"):
        return
    if os.geteuid() != 0 or not which("unshare") or not which("ip"):
        log("not isolating in a network namespace (needs root, unshare, ip)")
        return
    ns = ["unshare", "-n", "-p", "-f", "--mount-proc"]
    if subprocess.run(ns + ["true"], stderr=subprocess.DEVNULL).returncode:
        log("unshare not permitted here; running without namespaces")
        return
    workfile = tempfile.NamedTemporaryFile(prefix="mxfb-bench.", delete=False)
    workfile.close()
    env = dict(os.environ, BENCH_INNER="1", BENCH_WORKFILE=workfile.name,
               BENCH_CGPREFIX="mxfb-bench.%d" % os.getpid())
    cmd = ns + ["sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    try:
        rc = subprocess.run(cmd, env=env).returncode
    except KeyboardInterrupt:
        rc = 130
    for name in ("mxfb", "postfix", "sink", "floor"):
        try:
            os.rmdir(os.path.join(CGROOT, env["BENCH_CGPREFIX"] + "." + name))
        except OSError:
            pass
    with open(workfile.name) as f:
        work = f.read().strip()
    os.unlink(workfile.name)
    if work:
        remove_later(work)
    sys.exit(rc)


def remove_later(work):
    """Hundreds of thousands of queue files take minutes to unlink: leave
    it to a detached rm -rf (outside the namespaces, which die with us)."""
    if KEEP:
        log("kept", work)
        return
    subprocess.Popen(["rm", "-rf", work], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    log("removing %s in the background" % work)


def build_helpers(bindir):
    cc = os.environ.get("CC", "cc")
    os.makedirs(bindir, exist_ok=True)
    for prog, flags in (("fsyncrate", ["-pthread"]),
                        ("smtpping", ["-pthread"]),
                        ("rusage", []),
                        ("smtpfloor", ["-static"])):
        src = os.path.join(HERE, prog + ".c")
        cmd = [cc, "-O2", "-Wall", "-o", os.path.join(bindir, prog), src]
        if subprocess.run(cmd + flags, stderr=subprocess.DEVNULL).returncode:
            subprocess.run(cmd + [f for f in flags if f != "-static"],
                           check=True)


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(host, port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %s:%d" % (host, port))


def start_dns():
    """A loopback DNS server: every mxfb configuration points `resolver`
    at it (and uses `via [127.0.0.2]:PORT`, so it is hardly asked).
    Returns (port, servers, zone): zone maps (name, type) to dnslib
    records and may be added to while it serves (the outage phase)."""
    from dnslib import RR, QTYPE, RCODE, A
    from dnslib.server import BaseResolver, DNSServer

    zone = mx_records(DOMAIN, "mx1." + DOMAIN, PRIMARY_IP)
    zone[(HOSTNAME, "A")] = [A("127.0.0.1")]

    class Zone(BaseResolver):
        def resolve(self, request, handler):
            name = str(request.q.qname).rstrip(".").lower()
            qtype = QTYPE[request.q.qtype]
            reply = request.reply()
            if not any(k[0] == name for k in zone):
                reply.header.rcode = RCODE.NXDOMAIN
            for rd in zone.get((name, qtype), []):
                reply.add_answer(RR(request.q.qname, request.q.qtype,
                                    rdata=rd, ttl=3600))
            return reply

    class Quiet:
        def __getattr__(self, name):
            return lambda *a, **k: None

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    servers = [DNSServer(Zone(), port=port, address="127.0.0.1", tcp=tcp,
                         logger=Quiet()) for tcp in (False, True)]
    for srv in servers:
        srv.start_thread()
    return port, servers, zone


def mx_records(domain, primary, ip):
    """Zone entries: domain's MX is primary (preference 10, address ip)
    and then us (20), as for a domain we back up."""
    from dnslib import A, MX
    return {(domain, "MX"): [MX(primary + ".", 10), MX(HOSTNAME + ".", 20)],
            (primary, "A"): [A(ip)]}


# ---------------------------------------------------------- measurement

class Cpu:
    """CPU time of a group of processes: a cgroup-v1 cpuacct group that
    every server process is started in (their children inherit it).
    Without cgroups: the whole machine's busy time from /proc/stat, which
    then includes the client."""

    def __init__(self, name):
        prefix = os.environ.get("BENCH_CGPREFIX", "mxfb-bench.%d" % os.getpid())
        self.path = os.path.join(CGROOT, prefix + "." + name)
        try:
            os.makedirs(self.path, exist_ok=True)
            with open(os.path.join(self.path, "cpuacct.usage")):
                pass
        except OSError:
            self.path = None

    @property
    def source(self):
        return "cgroup" if self.path else "machine"

    def join(self):                     # preexec_fn: runs in the child
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    def ns(self):
        if self.path:
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read())
        return machine_busy_ns()

    def remove(self):
        if self.path:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def machine_busy_ns():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) * 1e9 / os.sysconf("SC_CLK_TCK")


def machine_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4], v[2] + v[5] + v[6]   # total, idle, kernel


class Window:
    """Wall time, server CPU and machine busy share over one measurement."""

    def __init__(self, cpu):
        self.cpu = cpu

    def __enter__(self):
        self.t0 = time.monotonic()
        self.c0 = self.cpu.ns()
        self.m0 = machine_times()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        self.cpu_s = (self.cpu.ns() - self.c0) / 1e9
        m1 = machine_times()
        tot = m1[0] - self.m0[0] or 1
        self.busy = 1 - (m1[1] - self.m0[1]) / tot
        self.kernel = (m1[2] - self.m0[2]) / tot
        return False


def run(cmd, timeout=600, cpu=None, env=None, stdout=subprocess.DEVNULL,
        check=True):
    """Run cmd to completion; returns (exitcode, rusage, stderr text)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=stdout, stderr=err, env=env,
                             preexec_fn=cpu.join if cpu else None)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd[:3]),
                                                p.returncode, text[-500:]))
    return p.returncode, ru, text


def count_files(*dirs):
    n = 0
    for d in dirs:
        for _, _, files in os.walk(d):
            n += len(files)
    return n


def smtp_source(port, conc, total, per_conn, seconds=3600, rcpts=1):
    """Send up to total 2 KB messages with smtp-source at concurrency conc,
    one message per connection or per_conn per connection (rounds of
    `-d -s conc -m conc*per_conn`: each session sends about per_conn),
    stopping after seconds.  Returns the seconds it ran; the caller counts
    what the server accepted.  rcpts > 1: that many recipients a message,
    NUMBERrcpt@DOMAIN (smtp-source -r prepends the number)."""
    base = ["smtp-source", "-4", "-l", str(MSG_BYTES), "-M",
            "client.example.test", "-f", "sender@client.example.test",
            "-t", "rcpt@" + DOMAIN] + (["-r", str(rcpts)] if rcpts > 1
                                       else [])
    target = "127.0.0.1:%d" % port
    if per_conn == 1:
        cmds = [base + ["-s", str(conc), "-m", str(total), target]]
    else:
        chunk = conc * per_conn
        cmds = []
        for done in range(0, total, chunk):
            m = min(chunk, total - done)
            cmds.append(base + ["-d", "-s", str(min(conc, m)), "-m", str(m),
                                target])
    t0 = time.monotonic()
    for cmd in cmds:
        left = t0 + seconds - time.monotonic()
        if left <= 0:
            break
        rc, _, err = run(cmd, timeout=left, check=False)
        if rc == -signal.SIGKILL:
            break                       # time is up
        if rc != 0:
            raise RuntimeError("smtp-source: exit %d: %s" % (rc, err[-300:]))
    return time.monotonic() - t0


def smtp_send(port, msgs, conc=4, per_conn=20):
    """Send msgs, (Message-ID, recipient) pairs, from the null sender
    over conc connections at a time, per_conn messages a connection (as
    smtp-source, which cannot vary the recipient's domain or the
    Message-ID); each about MSG_BYTES.  Raises on any refusal."""
    import smtplib
    body = ("x" * 70 + "\r\n") * (MSG_BYTES // 72)
    chunks = [msgs[i:i + per_conn] for i in range(0, len(msgs), per_conn)]
    lock, errors = threading.Lock(), []

    def worker():
        while not errors:
            with lock:
                if not chunks:
                    return
                chunk = chunks.pop()
            try:
                with smtplib.SMTP("127.0.0.1", port, "client.example.test",
                                  timeout=60) as c:
                    for mid, rcpt in chunk:
                        c.sendmail("", [rcpt], (
                            "From: <bench@client.example.test>\r\n"
                            "To: <%s>\r\nSubject: outage\r\n"
                            "Message-ID: %s\r\n\r\n%s" % (
                                rcpt, mid, body)).encode())
            except (OSError, smtplib.SMTPException) as e:
                errors.append(e)
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("sending to :%d: %s" % (port, errors[0]))
def loopback_tls_context():
    """A client TLS context that takes any certificate (loopback only)."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_source(login):
    """A load generator with smtp_source's signature for what smtp-source
    cannot do: STARTTLS and, with login (user, password), AUTH PLAIN.
    conc threads, each a session of per_conn 2 KB messages after another,
    from login's user (else sender@client.example.test) to rcpt@DOMAIN.
    Certificates are not checked (a bench on loopback)."""
    import smtplib
    ctx = loopback_tls_context()
    sender = login[0] if login else "sender@client.example.test"
    body = ("From: <%s>\r\nTo: <rcpt@%s>\r\nSubject: bench\r\n\r\n" % (
        sender, DOMAIN)).encode()
    body += b"x" * 76 + b"\r\n"
    body = body * max(1, MSG_BYTES // len(body))

    def source(port, conc, total, per_conn, seconds=3600, rcpts=1):
        t0 = time.monotonic()
        left = [total]
        lock = threading.Lock()
        errors = []

        def worker():
            while time.monotonic() - t0 < seconds:
                with lock:
                    n = min(per_conn, left[0])
                    left[0] -= n
                if n <= 0:
                    return
                try:
                    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
                    s.ehlo("client.example.test")
                    s.starttls(context=ctx)
                    s.ehlo("client.example.test")
                    if login:
                        s.login(*login)
                    for _ in range(n):
                        if time.monotonic() - t0 >= seconds:
                            break
                        s.sendmail(sender, ["rcpt@" + DOMAIN], body)
                    s.quit()
                except (OSError, smtplib.SMTPException) as e:
                    errors.append(e)
                    return
        threads = [threading.Thread(target=worker) for _ in range(conc)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("submission client: %s" % errors[0])
        return time.monotonic() - t0
    return source


# -------------------------------------------------------------- servers

def mxfb_user():
    """The account mxfb switches to (the bench runs as root): mxfb when
    the machine has it, else nobody."""
    try:
        return pwd.getpwnam("mxfb").pw_name
    except KeyError:
        return "nobody"


class Mxfb:
    """One mxfb spool + configuration per phase."""

    def __init__(self, work, name, sink_port, dns_port, cpu, binary=None):
        self.bin = binary or MXFB
        self.dir = os.path.join(work, "mxfb-" + name)
        os.makedirs(self.dir, exist_ok=True)
        self.spool = os.path.join(self.dir, "spool")
        self.conf = os.path.join(self.dir, "mxfb.conf")
        self.cpu = cpu
        self.procs = []
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "hostname " + HOSTNAME,
                "spool " + self.spool,
                "relay-domain %s via [%s]:%d" % (DOMAIN, PRIMARY_IP, sink_port),
                "resolver 127.0.0.1:%d" % dns_port,
                "dns-timeout 1s",
                "dns-retry 1",
                "log stderr",
                "max-size 10M",
                "user " + mxfb_user(),
            ] + os.environ.get("BENCH_MXFB_CONF", "").split(";")) + "\n")

    def env(self):
        e = dict(os.environ, MXFB_CONFIG=self.conf)
        e.pop("TCPREMOTEIP", None)
        return e

    def _start(self, cmd, logname, port):
        errf = open(os.path.join(self.dir, logname), "ab")
        p = subprocess.Popen(cmd, env=self.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=errf,
                             preexec_fn=self.cpu.join)
        errf.close()
        self.procs.append(p)
        wait_port("127.0.0.1", port)
        if p.poll() is not None:
            raise RuntimeError("%s exited %d" % (cmd[0], p.returncode))
        return p

    def listen(self, port, logname="receive-l.log", args=()):
        return self._start([self.bin, "-C", self.conf, "receive"] +
                           list(args) + ["-l", "127.0.0.1:%d" % port],
                           logname, port)

    def tcpserver(self, port):
        # -R -H -l: no ident, no DNS for the remote or the local name.
        return self._start(["tcpserver", "-R", "-H", "-l", HOSTNAME, "-c",
                            "200", "127.0.0.1", str(port), self.bin, "-C",
                            self.conf, "receive"], "tcpserver.log", port)

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)

    def count(self):
        """Messages in the spool (spool/INTERNALS: queue/, active/, hold/)."""
        return count_files(*(os.path.join(self.spool, d)
                             for d in ("queue", "active", "hold")))

    ID_ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    def clone(self, n):
        """Grow the spool to n messages by copying the ones there under
        new queue IDs, following spool/INTERNALS: queue/ID ends in a
        trailer whose `id` line must match the name (same length, so the
        footer's offsets stay right) and state/ID is copied as it is."""
        qdir = os.path.join(self.spool, "queue")
        sdir = os.path.join(self.spool, "state")
        seeds = []
        for qid in sorted(os.listdir(qdir)):
            with open(os.path.join(qdir, qid), "rb") as f:
                data = f.read()
            state = None
            if os.path.exists(os.path.join(sdir, qid)):
                with open(os.path.join(sdir, qid), "rb") as f:
                    state = f.read()
            line = b"\nid " + qid.encode() + b"\n"
            if data.count(line) != 1:
                raise RuntimeError("unexpected queue file format: " + qid)
            pos = data.index(line)
            seeds.append((qid, data[:pos + 4], data[pos + 4 + len(qid):],
                          state))
        if not seeds:
            raise RuntimeError("nothing to clone")
        ids = set(s[0] for s in seeds)
        owner = os.stat(qdir)       # the files are the spool owner's
        have, i = len(seeds), 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        while have < n:
            qid, head, tail, state = seeds[i % len(seeds)]
            i += 1
            new = qid[:11] + "".join(chr(self.ID_ALPHABET[b % 32])
                                     for b in os.urandom(6))
            if new in ids:
                continue
            ids.add(new)
            fd = os.open(os.path.join(qdir, new), flags, 0o600)
            os.fchown(fd, owner.st_uid, owner.st_gid)
            os.write(fd, head + new.encode() + tail)
            os.close(fd)
            if state is not None:
                fd = os.open(os.path.join(sdir, new), flags, 0o600)
                os.fchown(fd, owner.st_uid, owner.st_gid)
                os.write(fd, state)
                os.close(fd)
            have += 1

    def cmd(self, *args):
        return [self.bin, "-C", self.conf] + list(args)


class Postfix:
    """A private Postfix instance: its own config, queue and data
    directories, chroot n, loopback only, relaying example.test to the
    same primary as mxfb; everything else Postfix's shipped defaults
    (durability included).  Retries are pushed out to 1 h so that Postfix
    does not re-deliver on its own in the middle of a measurement (mxfb
    retries only when cron runs flush)."""

    SERVICES = """\
{smtpd} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

    def __init__(self, work, port, sink_port, cpu):
        self.dir = os.path.join(work, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.queue = None
        self.data = os.path.join(self.dir, "data")
        self.port = port
        self.sink_port = sink_port
        self.cpu = cpu
        self.running = False
        self.extra = {}             # main.cf lines of one phase
        for d in (self.etc, self.data):
            os.makedirs(d, exist_ok=True)
        shutil.chown(self.data, "postfix")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(self.SERVICES.format(smtpd="127.0.0.1:%d" % port))

    def write_main(self, main=None):
        lines = {
            "compatibility_level": "3.6",
            "config_directory": self.etc,
            "queue_directory": self.queue,
            "data_directory": self.data,
            "command_directory": "/usr/sbin",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": HOSTNAME,
            "mydestination": "",
            "relay_domains": DOMAIN,
            "transport_maps": "inline:{ %s=smtp:[%s]:%d }" % (
                DOMAIN, PRIMARY_IP, self.sink_port),
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "message_size_limit": "10485760",
            "maillog_file": os.path.join(self.dir, "maillog"),
            "maillog_file_prefixes": self.dir,
            "queue_run_delay": "1h",
            "minimal_backoff_time": "1h",
            "maximal_backoff_time": "2h",
        }
        lines.update(self.extra)
        lines.update(main or {})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in lines.items():
                f.write("%s = %s\n" % (k, v))

    def postfix(self, *args, timeout=120):
        return run(["postfix", "-c", self.etc] + list(args), timeout=timeout,
                   cpu=self.cpu)

    def start(self, queue, main=None):
        """Start on queue directory DIR/queue-NAME (a fresh one per phase:
        emptying a big queue with postsuper takes longer than a restart);
        main: main.cf parameters of that phase, over the usual ones."""
        self.queue = os.path.join(self.dir, "queue-" + queue)
        os.makedirs(self.queue, exist_ok=True)
        self.write_main(main)
        maillog = os.path.join(self.dir, "maillog")
        if os.path.exists(maillog):      # postsuper writes it as postfix
            shutil.chown(maillog, "postfix")
        self.postfix("start")
        self.running = True
        wait_port("127.0.0.1", self.port)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.running:
            return
        pid = self.master_pid()
        self.postfix("stop", timeout=60)
        self.running = False
        deadline = time.time() + 30
        while pid and alive(pid) and time.time() < deadline:
            time.sleep(0.05)

    def queues(self, *names):
        return [os.path.join(self.queue, n) for n in names]

    def count(self):
        return count_files(*self.queues("maildrop", "incoming", "active",
                                        "deferred", "hold"))

    def settle(self, timeout=600):
        """Wait until every message has left maildrop/incoming/active
        (with the primary down: until all are deferred)."""
        deadline = time.monotonic() + timeout
        while count_files(*self.queues("maildrop", "incoming", "active")):
            if time.monotonic() > deadline:
                raise RuntimeError("postfix queue did not settle")
            time.sleep(0.05)

    def clone(self, n):
        """Grow the deferred queue to n messages by copying its queue files
        and their defer logs under new queue IDs.  Short queue IDs are 5
        hex digits of microseconds and the file's inode number in hex
        (postfix start renames any file whose name does not match its
        inode); hash_queue_depth 1 puts deferred/ID and defer/ID under the
        ID's first character.  Postfix must be stopped."""
        assert not self.running
        deferred = os.path.join(self.queue, "deferred")
        seeds = []
        for sub in os.listdir(deferred):
            for qid in os.listdir(os.path.join(deferred, sub)):
                path = os.path.join(deferred, sub, qid)
                logp = os.path.join(self.queue, "defer", sub, qid)
                with open(path, "rb") as f:
                    data = f.read()
                logdata = None
                if os.path.exists(logp):
                    with open(logp, "rb") as f:
                        logdata = f.read()
                seeds.append((data, os.stat(path), logdata))
        if not seeds:
            raise RuntimeError("nothing to clone")
        st = seeds[0][1]
        tmp = os.path.join(deferred, "clone.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        have, i, made = len(seeds), 0, set()
        while have < n:
            data, qst, logdata = seeds[i % len(seeds)]
            i += 1
            fd = os.open(tmp, flags, qst.st_mode & 0o7777)
            os.write(fd, data)
            os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, qst.st_mode & 0o7777)
            # the mtime is Postfix's next retry time: keep it
            os.utime(fd, (qst.st_atime, qst.st_mtime))
            new = "%05X%X" % (int.from_bytes(os.urandom(3), "big") % 1000000,
                              os.fstat(fd).st_ino)
            os.close(fd)
            for q in ("deferred", "defer"):
                d = os.path.join(self.queue, q, new[0])
                if (q, new[0]) not in made:
                    if not os.path.isdir(d):
                        os.mkdir(d, 0o700)
                        os.chown(d, st.st_uid, st.st_gid)
                    made.add((q, new[0]))
            os.rename(tmp, os.path.join(deferred, new[0], new))
            if logdata is not None:
                fd = os.open(os.path.join(self.queue, "defer", new[0], new),
                             flags, 0o600)
                os.write(fd, logdata)
                os.fchown(fd, st.st_uid, st.st_gid)
                os.close(fd)
            have += 1

    def showq_hwm_kb(self):
        peak = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() != "showq":
                        continue
                with open("/proc/%s/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        return peak


class Sink:
    """smtp-sink on 127.0.0.2: the primary MX, up only while draining.
    ip and options (smtp-sink's: -d to keep each message, -Q connect to
    greet 421, -f rcpt to refuse RCPT) make the outage phase's
    primaries."""

    def __init__(self, port, cpu, ip=PRIMARY_IP, options=()):
        self.port, self.cpu, self.p = port, cpu, None
        self.ip, self.options = ip, list(options)

    def start(self, wait=True):
        self.p = subprocess.Popen(["smtp-sink", "-u", "nobody", "-4"] +
                                  self.options +
                                  ["%s:%d" % (self.ip, self.port), "256"],
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  preexec_fn=self.cpu.join)
        if wait:
            wait_port(self.ip, self.port)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            self.p.wait(10)
        self.p = None


class Tarpit:
    """Primaries that take the connection and never greet: listening
    sockets on (ip, port) whose connections are accepted and held,
    never written to, until stop()."""

    def __init__(self, addrs):
        self.addrs, self.socks, self.held = addrs, [], []
        self.thread = None

    def start(self):
        import selectors
        self.sel = selectors.DefaultSelector()
        for addr in self.addrs:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(1024)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.socks:
            for key, _ in self.sel.select(0.2):
                try:
                    self.held.append(key.fileobj.accept()[0])
                except OSError:
                    pass

    def stop(self):
        socks, self.socks = self.socks, []
        if self.thread:
            self.thread.join()
        for s in socks + self.held:
            s.close()
        self.held = []


def alive(pid):
    """Running, not a zombie (as PID 1 of our namespace we inherit the
    daemons' orphans; reap them on the way)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class OutagePlan:
    """One scenario of the mass outage (issue 13): ndom domains, every
    third one's primary broken (refusing, tarpitting, 421 at greeting,
    550 at RCPT, in turn), the others' up; shared: two primaries per kind
    serve all its domains, else each domain has its own.  Primary h is
    mxH.S.outage.test at 127.0.(10 + h / 250).(1 + h % 250); nmsg
    messages, one recipient each, round robin over the domains."""

    def __init__(self, scen, ndom, nmsg, shared):
        self.scen, self.shared = scen, shared
        self.hosts = {}             # key -> (name, ip, kind)
        self.domains = []           # (domain, kind, primary, ip)
        nkind = {}
        for i in range(ndom):
            kind = "up" if i % 3 != 2 else OUTAGE_KINDS[1 + i // 3 % 4]
            nkind[kind] = nkind.get(kind, 0) + 1
            key = (kind, nkind[kind] % 2) if shared else i
            if key not in self.hosts:
                h = len(self.hosts)
                self.hosts[key] = ("mx%d.%s.outage.test" % (h, scen.lower()),
                                   "127.0.%d.%d" % (10 + h // 250,
                                                    1 + h % 250), kind)
            name, ip, _ = self.hosts[key]
            self.domains.append(("d%d.%s.outage.test" % (i, scen.lower()),
                                 kind, name, ip))
        self.msgs = []              # (Message-ID, recipient, kind, ip)
        for j in range(nmsg):
            dom, kind, _, ip = self.domains[j % ndom]
            self.msgs.append(("<%s.%d@bench.outage.test>" % (scen, j),
                              "u%d@%s" % (j, dom), kind, ip))
        self.expect = {"delivered": 0, "failed": 0, "deferred": 0}
        for m in self.msgs:
            self.expect[self.fate(m[2])] += 1

    @staticmethod
    def fate(kind):
        return {"up": "delivered", "550": "failed"}.get(kind, "deferred")

    def label(self):
        return "%s: %d domains, %s, %d msgs" % (
            self.scen, len(self.domains), "2 shared primaries per kind"
            if self.shared else "each its own primary", len(self.msgs))

    def outcome(self, arrived, queued, failed):
        """Each message's fate against its primary's kind.  arrived:
        Message-ID -> the sink addresses it arrived at; queued: recipient
        -> state of what is still in the queue; failed: recipients refused
        for good.  delivered counts messages (a second copy is a dup),
        lost those neither arrived, queued nor failed, wrong those whose
        fate is not their kind's (a copy at the wrong primary too)."""
        n = {"delivered": 0, "dups": 0, "lost": 0, "failed": 0,
             "deferred": 0, "wrong": 0}
        for mid, rcpt, kind, ip in self.msgs:
            at = arrived.pop(mid, [])
            fate = "delivered" if at else "failed" if rcpt in failed else \
                "deferred" if rcpt in queued else "lost"
            n[fate] += 1
            n["dups"] += max(0, len(at) - 1)
            if fate != self.fate(kind) or any(a != ip for a in at) or \
                    (at and rcpt in queued):
                n["wrong"] += 1
        n["unknown"] = sum(len(v) for v in arrived.values())
        n["correct"] = n["wrong"] == n["dups"] == n["unknown"] == 0
        return n


def sink_census(root):
    """The messages smtp-sink -d kept under root/IP/: Message-ID -> the
    IPs it arrived at, and the time the last one was written."""
    arrived, last = {}, None
    for ip in os.listdir(root) if os.path.isdir(root) else ():
        for name in os.listdir(os.path.join(root, ip)):
            path = os.path.join(root, ip, name)
            last = max(last or 0, os.stat(path).st_mtime)
            with open(path, "rb") as f:
                head = f.read(65536).split(b"\n\n", 1)[0]
            for line in head.split(b"\n"):
                if line.lower().startswith(b"message-id:"):
                    mid = line.split(b":", 1)[1].strip().decode()
                    arrived.setdefault(mid, []).append(ip)
    return arrived, last


# --------------------------------------------------------------- phases

class Bench:
    def __init__(self, work):
        self.work = work
        self.bin = os.path.join(work, "bin")
        self.results = {}          # figure -> dict
        self.notes = []
        self.cpu_mx = Cpu("mxfb")
        self.cpu_pf = Cpu("postfix")
        self.cpu_sink = Cpu("sink")
        self.cpu_floor = Cpu("floor")
        self.sink_port = free_port(PRIMARY_IP)
        self.dns_port, self.dns, self.zone = start_dns()
        self.sink = Sink(self.sink_port, self.cpu_sink)
        self.mx = {}
        self.port_pf = free_port()
        self.pf = Postfix(work, self.port_pf, self.sink_port, self.cpu_pf)

    def mxfb(self, name):
        """One spool per name; names ending in -static run MXFB_STATIC."""
        if name not in self.mx:
            self.mx[name] = Mxfb(self.work, name, self.sink_port,
                                 self.dns_port, self.cpu_mx,
                                 MXFB_STATIC if name.endswith("-static")
                                 else MXFB)
        return self.mx[name]

    def mxfb_servers(self):
        """(system, port) of every mxfb receive server started."""
        return [(s, p) for s, p in (
            ("inetd", self.port_inetd), ("listen", self.port_listen),
            ("inetd-static", getattr(self, "port_inetd_static", None)),
            ("listen-static", getattr(self, "port_listen_static", None)))
            if p is not None]

    def record(self, key, **kw):
        self.results.setdefault(key, {}).update(kw)

    def attempt(self, what, fn, *args):
        try:
            fn(*args)
        except Exception as e:        # a benchmark reports, then goes on
            log("%s failed: %s" % (what, e))
            self.notes.append("%s failed: %s" % (what, str(e)[:300]))

    # the limit
    def fsync_limit(self, writers=(1, 4, 16)):
        for w in writers:
            d = os.path.join(self.work, "fsync%d" % w)
            os.makedirs(d)
            _, _, _ = run([os.path.join(self.bin, "fsyncrate"), d, str(w),
                           str(SECONDS)], stdout=open(d + ".out", "w"))
            with open(d + ".out") as f:
                kv = dict(x.split("=") for x in f.read().split())
            self.record("fsync-%d" % w, rate=float(kv["rate"]))
            log("fsync limit, %2d writers: %7.0f commits/s" % (w, float(kv["rate"])))

    def fsync_for(self, conc):
        w = 1 if conc <= 1 else 4 if conc <= 4 else 16
        return self.results.get("fsync-%d" % w, {}).get("rate")

    # servers for receive and connect
    def start_servers(self):
        rx = self.mxfb("receive")
        self.port_inetd = free_port()
        self.port_listen = free_port()
        self.srv_inetd = rx.tcpserver(self.port_inetd)
        self.srv_listen = rx.listen(self.port_listen)
        if MXFB_STATIC:
            rs = self.mxfb("receive-static")
            self.port_inetd_static = free_port()
            self.port_listen_static = free_port()
            rs.tcpserver(self.port_inetd_static)
            rs.listen(self.port_listen_static)
            log("STATIC=1 build %s on :%d (tcpserver) and :%d (receive -l)" % (
                MXFB_STATIC, self.port_inetd_static, self.port_listen_static))
        self.pf.start("receive")
        log("mxfb on :%d (tcpserver) and :%d (receive -l), Postfix on :%d, "
            "primary %s:%d (down)" % (self.port_inetd, self.port_listen,
                                      self.port_pf, PRIMARY_IP, self.sink_port))

    def connect_cost(self):
        """Sessions per second; and the floor: a trivial static server
        under the same tcpserver, i.e. what fork+exec+exit per
        connection costs on this machine."""
        conc = 4
        floor_port = free_port()
        floor = subprocess.Popen(
            ["tcpserver", "-R", "-H", "-l", HOSTNAME, "-c", "200", "127.0.0.1",
             str(floor_port), os.path.join(self.bin, "smtpfloor")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=self.cpu_floor.join)
        try:
            wait_port("127.0.0.1", floor_port)
            self._connect_cost(conc, floor_port)
        finally:
            floor.terminate()
            floor.wait()

    def _connect_cost(self, conc, floor_port):
        runs = [("connect-" + system, port, self.cpu_mx)
                for system, port in self.mxfb_servers()]
        runs += [("connect-postfix", self.port_pf, self.cpu_pf),
                 ("connect-floor", floor_port, self.cpu_floor)]
        for key, port, cpu in runs:
            out = os.path.join(self.work, key + ".out")
            with Window(cpu) as w:
                run([os.path.join(self.bin, "smtpping"), "127.0.0.1",
                     str(port), str(conc), str(SECONDS)],
                    stdout=open(out, "w"), check=False)
            with open(out) as f:
                kv = dict(x.split("=") for x in f.read().split())
            n = int(kv["sessions"])
            cpu_ms = w.cpu_s * 1e3 / n if n else None
            self.record(key, rate=float(kv["rate"]), errors=int(kv["errors"]),
                        cpu_ms=cpu_ms, busy=w.busy, concurrency=conc)
            log("%-16s %7.0f sessions/s (errors %s, %.2f ms CPU each)" % (
                key, float(kv["rate"]), kv["errors"], cpu_ms or float("nan")))

    def receive_one(self, key, system, port, conc, per_conn, spool=None,
                    rcpts=1, source=smtp_source):
        """Messages accepted per second with the primary down, counted in
        the queue; server CPU from its cgroup (for Postfix including the
        queue manager deferring what came in, until its queue settles).
        spool: the mxfb spool's name when not the receive phase's;
        source: the load generator (smtp_source, or tls_source's)."""
        rx = self.mxfb(spool or ("receive-static" if system.endswith(
            "-static") else "receive"))
        if system == "postfix":
            counter, cpu = self.pf.count, self.cpu_pf
        else:
            counter, cpu = rx.count, self.cpu_mx
        before = counter()
        with Window(cpu) as w:
            secs = source(port, conc, RECV_MSGS, per_conn, RUN_SECONDS,
                          rcpts)
            if system == "postfix":
                self.pf.settle()
        accepted = counter() - before
        rate = accepted / secs
        cpu_ms = w.cpu_s * 1e3 / max(1, accepted)
        self.record(key, rate=rate, accepted=accepted, seconds=secs,
                    cpu_ms=cpu_ms, busy=w.busy, kernel=w.kernel,
                    concurrency=conc, per_conn=per_conn)
        log("%-24s %6.0f msg/s %6.2f ms CPU/msg  machine busy %3.0f%% "
            "(kernel %3.0f%%)  %d in %.1f s" % (
                key, rate, cpu_ms, w.busy * 100, w.kernel * 100, accepted,
                secs))

    def receive(self):
        for per_conn in PER_CONN:
            for conc in CONCURRENCY:
                for system, port in self.mxfb_servers() + [
                        ("postfix", self.port_pf)]:
                    key = "receive-%s-c%d-m%d" % (system, conc, per_conn)
                    self.attempt(key, self.receive_one, key, system, port,
                                 conc, per_conn)

    def syscalls(self):
        """fsync calls and system calls per accepted message, counted by
        strace -f -c attached to every process of the server's cgroup
        (Postfix: master, smtpd, cleanup, qmgr, ...), C=4, 20/conn."""
        if not which("strace") or not self.cpu_mx.path:
            log("syscall counts skipped (needs strace and cgroups)")
            return
        n = 100 if QUICK else 200
        for system, port, cpu in (("inetd", self.port_inetd, self.cpu_mx),
                                  ("listen", self.port_listen, self.cpu_mx),
                                  ("postfix", self.port_pf, self.cpu_pf)):
            counter = self.pf.count if system == "postfix" else \
                self.mxfb("receive").count
            with open(os.path.join(cpu.path, "cgroup.procs")) as f:
                pids = f.read().split()
            out = os.path.join(self.work, "strace-%s.txt" % system)
            cmd = ["strace", "-f", "-c", "-o", out]
            for pid in pids:
                cmd += ["-p", pid]
            tr = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            time.sleep(1.0)             # attach
            before = counter()
            smtp_source(port, 4, n, 20, 60)
            if system == "postfix":
                self.pf.settle()
            accepted = counter() - before
            tr.send_signal(signal.SIGINT)
            tr.wait(30)
            calls = {}
            with open(out) as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 5 and w[0][0].isdigit() and \
                            w[-1] not in ("total",):
                        calls[w[-1]] = int(w[3])
            fs = sum(calls.get(k, 0) for k in ("fsync", "fdatasync",
                                               "sync_file_range"))
            total = sum(calls.values())
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
            self.record("syscalls-" + system, accepted=accepted,
                        fsync_per_msg=fs / max(1, accepted),
                        syscalls_per_msg=total / max(1, accepted),
                        top={k: round(v / max(1, accepted), 1) for k, v in top})
            log("%-8s %5.2f fsync/msg %6.1f syscalls/msg  (top: %s)" % (
                system, fs / max(1, accepted), total / max(1, accepted),
                ", ".join("%s %.1f" % (k, v / max(1, accepted))
                          for k, v in top[:5])))

    def stop_receive_servers(self):
        for name in ("receive", "receive-static"):
            if name in self.mx:
                self.mx[name].stop_all()
        self.pf.stop()

    # drain
    def fill(self, mx, pf, n):
        """n messages into mxfb (through a receive -l of its own) and into
        Postfix (already started), with the primary down."""
        port = free_port()
        srv = mx.listen(port, logname="fill.log")
        smtp_source(port, 4, n - mx.count(), 20)
        mx.stop(srv)
        smtp_source(self.port_pf, 4, n - pf.count(), 20)
        pf.settle()
        if mx.count() != n or pf.count() != n:
            raise RuntimeError("filled %d (mxfb) and %d (Postfix), not %d" % (
                mx.count(), pf.count(), n))

    def drain(self):
        n = DRAIN_MSGS
        dr = self.mxfb("drain")
        self.pf.start("drain")
        log("drain: %d messages into each queue (primary down)" % n)
        self.fill(dr, self.pf, n)
        self.sink.start()
        try:
            with Window(self.cpu_mx) as w:
                _, _, err = run(dr.cmd("flush", "-f"), cpu=self.cpu_mx)
            left = dr.count()
            summary = [l for l in err.splitlines() if "delivered" in l]
            self.record("drain-mxfb", rate=(n - left) / w.seconds,
                        seconds=w.seconds, messages=n, left=left, busy=w.busy,
                        cpu_ms=w.cpu_s * 1e3 / max(1, n - left),
                        summary=summary[-1] if summary else None)
            log("drain mxfb flush -f: %d messages in %.2f s (%d left)" % (
                n, w.seconds, left))
            with Window(self.cpu_pf) as w:
                run(["postqueue", "-c", self.pf.etc, "-f"], timeout=60)
                deadline = time.monotonic() + 600
                while self.pf.count() and time.monotonic() < deadline:
                    time.sleep(0.02)
            left = self.pf.count()
            self.record("drain-postfix", rate=(n - left) / w.seconds,
                        seconds=w.seconds, messages=n, left=left,
                        busy=w.busy, cpu_ms=w.cpu_s * 1e3 / max(1, n - left))
            log("drain postqueue -f: %d messages in %.2f s (%d left)" % (
                n, w.seconds, left))
        finally:
            self.sink.stop()
            self.pf.stop()

    # status of a big queue
    def fill_status_queues(self):
        """STATUS_SEED messages really received by each (primary down;
        mxfb then runs flush -f once, so that, as in Postfix's deferred
        queue, every message carries an attempt and its error), then both
        queues grown to STATUS_MSGS by copying those files under new IDs:
        receiving 100,000 messages would take most of the time budget."""
        n, seed = STATUS_MSGS, min(STATUS_SEED, STATUS_MSGS)
        st = self.mxfb("status")
        self.pf.start("status")
        self.fill(st, self.pf, seed)
        run(st.cmd("flush", "-f"), check=False)
        self.pf.stop()
        t0 = time.monotonic()
        errors = []

        def clone(q):
            try:
                q.clone(n)
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=clone, args=(q,))
                   for q in (st, self.pf)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        self.pf.start("status")
        log("status: %d messages received by each, grown to %d (mxfb) and "
            "%d (Postfix) by copying in %.0f s" % (
                seed, st.count(), self.pf.count(), time.monotonic() - t0))
        self.notes.append(
            "status: %d messages received by each (primary down; mxfb then "
            "flush -f once), queues grown to %d by copying files under new "
            "queue IDs" % (seed, n))

    def status_run(self, cmd, cpu, showq=False, env=None):
        """One run, output to a file: (wall s, peak RSS kB, CPU s), the
        RSS and CPU the command's own (through the rusage helper) and,
        for postqueue, the RSS of the showq daemon that does the work."""
        out = os.path.join(self.work, "status.out")
        ruf = os.path.join(self.work, "status.rusage")
        with open(out, "w") as f:
            t0 = time.monotonic()
            run([os.path.join(self.bin, "rusage"), ruf] + cmd, cpu=cpu,
                stdout=f, timeout=600, env=env)
            secs = time.monotonic() - t0
        with open(ruf) as f:
            ru = dict(x.split("=") for x in f.read().split())
        rss = int(ru["maxrss_kb"])
        if showq:
            rss = max(rss, self.pf.showq_hwm_kb())
        return secs, rss, float(ru["user_s"]) + float(ru["sys_s"])

    def status_lines(self):
        with open(os.path.join(self.work, "status.out"), "rb") as f:
            return sum(1 for _ in f)

    def status_one(self, key, cmd, cpu, showq=False, env=None):
        """Median wall time of REPEAT runs, peak RSS of all."""
        runs = [self.status_run(cmd, cpu, showq, env) for _ in range(REPEAT)]
        lines = self.status_lines()
        secs = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        self.record(key, seconds=secs, rss_kb=rss, lines=lines,
                    runs=[r[0] for r in runs])
        log("%-16s %6.2f s  peak RSS %6.1f MiB  (%d output lines)" % (
            key, secs, rss / 1024, lines))

    def status_pair(self, key_s, key_m, cmd_s, cmd_m, cpu, env=None):
        """status -s and status -m side by side (issue 17 point 1: -m no
        slower than -s): STATUS_PAIRS runs of each, interleaved in ABBA
        order so that neither gets the warmer page cache or the quieter
        moment; median wall and CPU time of each, peak RSS of all."""
        runs = {key_s: [], key_m: []}
        lines = {}
        for i in range(STATUS_PAIRS):
            order = ((key_s, cmd_s), (key_m, cmd_m))
            for key, cmd in (order if i % 2 == 0 else order[::-1]):
                runs[key].append(self.status_run(cmd, cpu, env=env))
                lines[key] = self.status_lines()
        for key in (key_s, key_m):
            r = runs[key]
            secs = statistics.median(x[0] for x in r)
            cpu_s = statistics.median(x[2] for x in r)
            rss = max(x[1] for x in r)
            self.record(key, seconds=secs, cpu_s=cpu_s, rss_kb=rss,
                        lines=lines[key], runs=[x[0] for x in r],
                        cpu_runs=[x[2] for x in r])
            log("%-18s %6.2f s  CPU %6.2f s  peak RSS %6.1f MiB  "
                "(median of %d interleaved, %d output lines)" % (
                    key, secs, cpu_s, rss / 1024, len(r), lines[key]))

    def status(self):
        self.fill_status_queues()
        st = self.mxfb("status")
        self.record("status-queue", mxfb=st.count(), postfix=self.pf.count())
        # Full scans: every message file read (a queue that changed
        # since the last listing), the status.cache neither read nor
        # written.
        nocache = dict(os.environ, MXFB_NO_STATUS_CACHE="1")
        self.attempt("status-full-mxfb", self.status_one, "status-full-mxfb",
                     st.cmd("status"), self.cpu_mx, False, nocache)
        self.attempt("status -s/-m full", self.status_pair,
                     "status-s-full-mxfb", "status-m-full-mxfb",
                     st.cmd("status", "-s"), st.cmd("status", "-m"),
                     self.cpu_mx, nocache)
        # An unchanged queue listed again, as an administrator does: one
        # listing writes status.cache (the directories must be over a
        # second old for that), the measured ones use it.
        time.sleep(2.1)
        run(st.cmd("status"), stdout=subprocess.DEVNULL)
        if not os.path.exists(os.path.join(st.spool, "status.cache")):
            log("status: no status.cache written; cached figures are "
                "full scans")
        self.attempt("status-mxfb", self.status_one, "status-mxfb",
                     st.cmd("status"), self.cpu_mx)
        # status -m (issue 17): the same listing and cache as -s.
        self.attempt("status -s/-m", self.status_pair, "status-s-mxfb",
                     "status-m-mxfb", st.cmd("status", "-s"),
                     st.cmd("status", "-m"), self.cpu_mx)
        # New mail arrived since (the primary still down): only the new
        # messages are read, the others come from the cache.
        for _ in range(100):
            subprocess.run(st.cmd("inject", "-f", "a@example.org",
                                  "rcpt@example.test"),
                           input=b"Subject: new\n\nbody\n", check=True,
                           stdout=subprocess.DEVNULL)
        self.attempt("status-new-mxfb", self.status_one, "status-new-mxfb",
                     st.cmd("status"), self.cpu_mx)
        self.attempt("status-postfix", self.status_one, "status-postfix",
                     ["postqueue", "-c", self.pf.etc, "-p"], self.cpu_pf, True)
        self.pf.stop()

    # recipient verification at RCPT (issue 14)
    def configured_server(self, name, *lines, listen=False, args=()):
        """tcpserver + receive (inetd style), or receive -l (with args),
        for a configuration with extra lines; returns (Mxfb, port)."""
        m = self.mxfb(name)
        with open(m.conf, "a") as f:
            f.write("\n".join(lines) + "\n")
        port = free_port()
        if listen:
            m.listen(port, args=args)
        else:
            m.tcpserver(port)
        return m, port

    def verify_sessions(self, key, port, addrs, per_session):
        """Sessions of per_session RCPTs for addrs, one after another:
        the median and 90th percentile RCPT latency (client side) and
        mxfb's CPU per RCPT and per session (the whole session: fork,
        exec, EHLO, MAIL, QUIT included)."""
        lat, codes = [], {}
        with Window(self.cpu_mx) as w:
            for i in range(0, len(addrs), per_session):
                s = socket.create_connection(("127.0.0.1", port), 30)
                f = s.makefile("rb")

                def reply():
                    while True:
                        line = f.readline()
                        if not line:
                            raise RuntimeError("%s: connection closed" % key)
                        if line[3:4] != b"-":
                            return int(line[:3])

                def cmd(line):
                    s.sendall(line.encode() + b"\r\n")
                    return reply()
                reply()
                cmd("EHLO bench.test")
                cmd("MAIL FROM:<s@sender.test>")
                for a in addrs[i:i + per_session]:
                    t0 = time.monotonic()
                    c = cmd("RCPT TO:<%s>" % a)
                    lat.append(time.monotonic() - t0)
                    codes[c] = codes.get(c, 0) + 1
                cmd("QUIT")
                f.close()
                s.close()
        n = len(addrs)
        lat.sort()
        self.record(key, rcpts=n, sessions=-(-n // per_session),
                    median_ms=lat[n // 2] * 1000,
                    p90_ms=lat[int(n * 0.9)] * 1000,
                    cpu_per_rcpt_ms=w.cpu_s * 1000 / n,
                    cpu_per_session_ms=w.cpu_s * 1000 / -(-n // per_session),
                    codes=codes, cpu_source=self.cpu_mx.source)
        r = self.results[key]
        log("%-24s RCPT median %6.2f ms p90 %6.2f ms, CPU %6.3f ms/RCPT "
            "%6.2f ms/session  %s" % (key, r["median_ms"], r["p90_ms"],
                                      r["cpu_per_rcpt_ms"],
                                      r["cpu_per_session_ms"], codes))

    def verify(self):
        n = VERIFY_SESSIONS * VERIFY_RCPTS
        self.sink.start()           # the primary the callouts ask
        try:
            off, p_off = self.configured_server("verify-off")
            rfile = os.path.join(self.work, "recipients")
            with open(rfile, "w") as f:
                for i in range(VERIFY_FILE_LINES):
                    f.write("user%d@%s\n" % (i, DOMAIN))
            os.chmod(rfile, 0o644)
            fl, p_file = self.configured_server("verify-file",
                                                "recipients " + rfile)
            db, p_db = self.configured_server("verify-db",
                                              "recipient-verify callout",
                                              "verify-timeout 5s")
            co, p_co = self.configured_server("verify-callout",
                                              "recipient-verify callout",
                                              "verify-timeout 5s")
            # The database learns the addresses the db figure asks for.
            known = ["known%d@%s" % (i, DOMAIN) for i in range(200)]
            self.verify_sessions("verify-prime", p_db, known, VERIFY_RCPTS)
            listed = ["user%d@%s" % (VERIFY_FILE_LINES - 1 - i % 1000,
                                     DOMAIN) for i in range(n)]
            hits = [known[i % len(known)] for i in range(n)]
            # Never asked before: each is a database miss, a callout.
            fresh = ["new%d@%s" % (i, DOMAIN)
                     for i in range(n + VERIFY_SESSIONS)]
            for per in (VERIFY_RCPTS, 1):
                m = n if per > 1 else VERIFY_SESSIONS
                self.verify_sessions("verify-off-%d" % per, p_off,
                                     listed[:m], per)
                self.verify_sessions("verify-file-%d" % per, p_file,
                                     listed[:m], per)
                self.verify_sessions("verify-db-%d" % per, p_db, hits[:m],
                                     per)
                self.verify_sessions("verify-callout-%d" % per, p_co,
                                     fresh[:m] if per > 1 else
                                     fresh[n:], per)
        finally:
            for m in ("verify-off", "verify-file", "verify-db",
                      "verify-callout"):
                if m in self.mx:
                    self.mx[m].stop_all()
            self.sink.stop()

    # the outage mailbox's cost at receive (issue 15)
    def mailbox(self):
        """receive -l at C=16, 20/conn, primary down, twice on spools of
        their own: with a recipients file naming the recipients used (the
        baseline) and with that file and `mailbox DIR` (a Maildir copy per
        recipient; DIR beside the spool, on the same file system); BENCH_
        MAILBOX_PAIRS alternating pairs, medians.  The copies' cost per message is
        the difference in wall time per message (1/rate) and in CPU; per
        recipient it is set against one fsync at the 16-writer limit."""
        rcpts = ["rcpt@" + DOMAIN] + ["%drcpt@%s" % (i, DOMAIN)
                                      for i in range(MAILBOX_RCPTS + 1)]
        rfile = os.path.join(self.work, "mailbox-recipients")
        with open(rfile, "w") as f:
            f.write("".join(r + "\n" for r in rcpts))
        os.chmod(rfile, 0o644)
        mbox = os.path.join(self.work, "mailbox-dir")
        os.makedirs(mbox)
        pw = pwd.getpwnam(mxfb_user())
        os.chown(mbox, pw.pw_uid, pw.pw_gid)
        off, p_off = self.configured_server("mailbox-off",
                                            "recipients " + rfile,
                                            listen=True)
        on, p_on = self.configured_server("mailbox-on",
                                          "recipients " + rfile,
                                          "mailbox " + mbox, listen=True)
        runs = {"off": [], "on": []}
        try:
            for i in range(MAILBOX_PAIRS):
                for what, port in (("off", p_off), ("on", p_on)):
                    key = "mailbox-%s-%d" % (what, i + 1)
                    self.record(key, mailbox_before=self.copies(mbox))
                    self.receive_one(key, "listen", port, MAILBOX_CONC,
                                     MAILBOX_PER_CONN, "mailbox-" + what,
                                     MAILBOX_RCPTS)
                    runs[what].append(self.results[key])
        finally:
            off.stop_all()
            on.stop_all()
        for what, rs in runs.items():
            self.record("mailbox-" + what, runs=len(rs),
                        accepted=sum(r["accepted"] for r in rs),
                        rate=statistics.median(r["rate"] for r in rs),
                        cpu_ms=statistics.median(r["cpu_ms"] for r in rs))
        # Sessions still running when the listener stopped finish theirs.
        deadline = time.monotonic() + 10
        while True:
            copies, msgs = self.copies(mbox), on.count()
            if copies >= msgs * MAILBOX_RCPTS or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.record("mailbox-on", copies=copies, messages=msgs,
                    copies_per_msg=copies / max(1, msgs),
                    same_fs=os.stat(mbox).st_dev == os.stat(on.spool).st_dev)
        if copies != msgs * MAILBOX_RCPTS:
            self.notes.append("mailbox: %d copies for %d messages of %d "
                              "recipients" % (copies, msgs, MAILBOX_RCPTS))
        if self.fsync_for(MAILBOX_CONC) is None:
            self.fsync_limit((16,))
        self.mailbox_cost()

    @staticmethod
    def copies(mbox):
        """Copies in the users' new/ under mbox."""
        top = os.path.join(mbox, DOMAIN)
        return sum(count_files(os.path.join(top, u, "new"))
                   for u in os.listdir(top)) if os.path.isdir(top) else 0

    def mailbox_cost(self):
        """The copies' cost from the two medians: ms per message (wall
        time at the measured rate, and CPU), per recipient, and as a
        fraction of one fsync at the 16-writer limit (1/its rate)."""
        off, on = self.results["mailbox-off"], self.results["mailbox-on"]
        fsync_ms = 1e3 / self.fsync_for(MAILBOX_CONC)
        wall_ms = 1e3 / on["rate"] - 1e3 / off["rate"]
        cpu_ms = on["cpu_ms"] - off["cpu_ms"]
        frac = wall_ms / MAILBOX_RCPTS / fsync_ms
        self.record("mailbox-cost", wall_ms=wall_ms, cpu_ms=cpu_ms,
                    rcpts=MAILBOX_RCPTS, fsync_ms=fsync_ms,
                    fsync_fraction=frac,
                    cpu_fsync_fraction=cpu_ms / MAILBOX_RCPTS / fsync_ms,
                    ok=frac < 1)
        log("mailbox: %+.3f ms/msg wall, %+.3f ms/msg CPU, per recipient "
            "%.2f of one fsync (%.3f ms): %s" % (
                wall_ms, cpu_ms, frac, fsync_ms, "ok" if frac < 1 else "MISS"))

    # the drain after a mass outage (issue 13)
    def outage(self):
        for scen, size, shared in OUTAGE:
            ndom, nmsg = (int(x) for x in (size + ",0").split(",")[:2])
            if ndom > 0 and nmsg > 0:
                self.attempt("outage " + scen, self.outage_one,
                             OutagePlan(scen, ndom, nmsg, shared))

    def outage_one(self, plan):
        """Both queues filled while every primary is down, then the
        primaries back (some broken) and one `mxfb flush`, then one
        `postqueue -f`, each alone and timed to the sinks."""
        d = os.path.join(self.work, "outage-" + plan.scen)
        os.makedirs(d)
        shutil.chown(d, "nobody")       # the sinks write under it
        for dom, _, host, ip in plan.domains:
            self.zone.update(mx_records(dom, host, ip))
        log("outage %s, %d primaries: filling both queues" % (
            plan.label(), len(plan.hosts)))
        sinks, tarpit = [], Tarpit([])
        try:
            mx = self.outage_fill(plan, d)
            sinks, tarpit = self.outage_primaries(plan,
                                                  os.path.join(d, "sinks"))
            log("outage %s: primaries back, mxfb flush, then postqueue -f" %
                plan.scen)
            self.outage_mxfb(plan, mx, d)
            self.outage_postfix(plan, d)
        finally:
            for s in sinks:
                s.stop()
            tarpit.stop()
            self.pf.stop()
            if "outage-" + plan.scen in self.mx:
                self.mx["outage-" + plan.scen].stop_all()

    def outage_fill(self, plan, d):
        """The same messages into both, every primary down.  mxfb finds
        the primaries by MX lookups (a relay-domain line per domain), on
        smtp-port; Postfix is a backup whose transport_maps name each
        domain's primary.  Connect and greeting timeouts OUTAGE_TIMEOUT
        in both: connect-timeout and command-timeout (each reply, the
        greeting's too); smtp_connect_timeout and smtp_helo_timeout (the
        greeting and the HELO reply)."""
        t = "%ds" % OUTAGE_TIMEOUT
        mx, port = self.configured_server(
            "outage-" + plan.scen, *(["relay-domain " + dom[0]
                                      for dom in plan.domains] +
                                     ["smtp-port %d" % self.sink_port,
                                      "connect-timeout " + t,
                                      "command-timeout " + t]), listen=True)
        msgs = [m[:2] for m in plan.msgs]
        smtp_send(port, msgs)
        mx.stop_all()
        tmap = os.path.join(d, "transport")
        with open(tmap, "w") as f:
            for dom, _, _, ip in plan.domains:
                f.write("%s smtp:[%s]:%d\n" % (dom, ip, self.sink_port))
        os.chmod(tmap, 0o644)
        self.pf.start("outage-" + plan.scen, {
            "relay_domains": "texthash:" + tmap,
            "transport_maps": "texthash:" + tmap,
            "smtp_connect_timeout": t, "smtp_helo_timeout": t})
        smtp_send(self.port_pf, msgs)
        self.pf.settle()
        if mx.count() != len(msgs) or self.pf.count() != len(msgs):
            raise RuntimeError("queued %d (mxfb) and %d (Postfix), not %d" %
                               (mx.count(), self.pf.count(), len(msgs)))
        return mx

    def outage_primaries(self, plan, dumps):
        """Every primary back but the refusing ones (nothing listens
        there): an smtp-sink keeping each message under dumps/IP/ for an
        up one, smtp-sink greeting 421 or refusing RCPT with 550, a
        Tarpit.  All on the port mxfb's smtp-port names."""
        sinks, held = [], []
        for _, ip, kind in plan.hosts.values():
            opts = {"up": ["-d", os.path.join(dumps, ip, "m.")],
                    "421": ["-Q", "connect"],
                    "550": ["-f", "rcpt", "-B", "550 5.1.1 no such user"]}
            if kind == "tarpit":
                held.append((ip, self.sink_port))
            elif kind in opts:
                sinks.append(Sink(self.sink_port, self.cpu_sink, ip,
                                  opts[kind]))
        tarpit = Tarpit(held)
        try:
            tarpit.start()
            for s in sinks:
                s.start(wait=False)
            for s in sinks:
                wait_port(s.ip, s.port)
        except Exception:
            for s in sinks:
                s.stop()
            tarpit.stop()
            raise
        return sinks, tarpit

    def outage_mxfb(self, plan, mx, d):
        """One `mxfb flush`, as cron starts it, until it exits."""
        out = os.path.join(d, "flush.out")
        t0 = time.time()
        with Window(self.cpu_mx) as w, open(out, "w") as f:
            rc, _, _ = run(mx.cmd("flush"), cpu=self.cpu_mx, timeout=3600,
                           stdout=f, check=False)
        if rc != 0:
            self.notes.append("outage %s: mxfb flush exited %d (log in %s)"
                              % (plan.scen, rc, mx.dir))
        status = os.path.join(d, "status.json")
        with open(status, "w") as f:
            run(mx.cmd("status", "-j"), stdout=f)
        queued = {}
        with open(status) as f:
            for line in f:
                for r in json.loads(line)["recipients"]:
                    queued[r["addr"]] = r["state"]
        failed = set(a for a, st in queued.items() if st == "failed")
        with open(out) as f:
            summary = f.read().strip()
        self.outage_record(plan, "mxfb", d, t0, w, queued, failed,
                           summary=summary, exit=rc, untried=sum(
                               1 for st in queued.values() if st == "queued"))

    def outage_postfix(self, plan, d):
        """One `postqueue -f`; the run ends when every deliverable message
        is at its sink and maildrop, incoming and active are empty (only
        the deferred left), or that long after they emptied (by two
        timeouts and 30 s) without it.  Bounces from its log."""
        maillog = os.path.join(self.pf.dir, "maillog")
        offset = os.path.getsize(maillog) if os.path.exists(maillog) else 0
        dumps, want = os.path.join(d, "sinks"), plan.expect["delivered"]
        t0 = time.time()
        with Window(self.cpu_pf) as w:
            run(["postqueue", "-c", self.pf.etc, "-f"], timeout=60)
            idle = None
            while time.time() - t0 < 3600:
                if count_files(*self.pf.queues("maildrop", "incoming",
                                               "active")):
                    idle = None
                elif count_files(dumps) >= want or \
                        time.time() - (idle or time.time()) > \
                        2 * OUTAGE_TIMEOUT + 30:
                    break
                else:
                    idle = idle or time.time()
                time.sleep(0.1)
        time.sleep(1)                   # postlogd writes behind
        with open(maillog, "rb") as f:
            f.seek(offset)
            failed = set(l.split(b"to=<", 1)[1].split(b">", 1)[0].decode()
                         for l in f if b" status=bounced " in l and
                         b"to=<" in l)
        queued, listing = {}, os.path.join(d, "postqueue.json")
        with open(listing, "w") as f:
            run(["postqueue", "-c", self.pf.etc, "-j"], stdout=f)
        with open(listing) as f:
            for line in f:
                q = json.loads(line)
                for r in q["recipients"]:
                    queued[r["address"]] = q["queue_name"]
        self.outage_record(plan, "postfix", d, t0, w, queued, failed)

    def outage_record(self, plan, system, d, t0, w, queued, failed, **kw):
        """The run's figures: seconds from its start to the last message
        kept by an up primary (only when all deliverable mail arrived) and
        to its end, the fates; the sinks' files are moved aside for the
        other MTA's run."""
        dumps = os.path.join(d, "sinks")
        arrived, last = sink_census(dumps)
        if os.path.isdir(dumps):
            os.rename(dumps, dumps + "-" + system)
        n = plan.outcome(arrived, queued, failed)
        key = "outage-%s-%s" % (plan.scen, system)
        self.record(key, label=plan.label(), hosts=len(plan.hosts),
                    expect=plan.expect, end_s=w.seconds, cpu_s=w.cpu_s,
                    busy=w.busy, timeout=OUTAGE_TIMEOUT,
                    last_arrival_s=last - t0 if last else None,
                    deliverable_s=last - t0 if last and n["delivered"] ==
                    plan.expect["delivered"] else None, **dict(n, **kw))
        r = self.results[key]
        log("outage %s %-7s deliverable in %s s, ends %.1f s: delivered "
            "%d/%d (dups %d, lost %d), failed %d/%d, deferred %d/%d, wrong "
            "%d; CPU %.1f s, machine busy %.0f%%" % (
                plan.scen, system, "%.1f" % r["deliverable_s"]
                if r["deliverable_s"] is not None else "n/a", r["end_s"],
                n["delivered"], plan.expect["delivered"], n["dups"],
                n["lost"], n["failed"], plan.expect["failed"], n["deferred"],
                plan.expect["deferred"], n["wrong"], w.cpu_s, w.busy * 100))
    # submission (issue 16)
    def submission_files(self):
        """A self-signed certificate (key 0600) and the users file with
        SUB_USER's hash from `mxfb passwd` (0640, the mxfb user's)."""
        d = os.path.join(self.work, "submission-files")
        os.makedirs(d)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
             cert, "-days", "2", "-subj", "/CN=" + HOSTNAME])
        os.chmod(key, 0o600)
        users = os.path.join(d, "users")
        p = subprocess.run([MXFB, "passwd"], input=SUB_PASSWORD.encode(),
                           stdout=subprocess.PIPE, check=True)
        with open(users, "w") as f:
            f.write("%s:%s\n" % (SUB_USER, p.stdout.decode().strip()))
        os.chmod(users, 0o640)
        shutil.chown(users, mxfb_user())
        os.chmod(d, 0o755)
        return cert, key, users

    def auth_cost(self, port):
        """SUB_LOGINS sessions up to a timed AUTH PLAIN: its latency at
        the client, and mxfb's CPU per session (connect, EHLO, STARTTLS,
        EHLO, AUTH, QUIT)."""
        import smtplib
        ctx = loopback_tls_context()
        lat = []
        with Window(self.cpu_mx) as w:
            for _ in range(SUB_LOGINS):
                s = smtplib.SMTP("127.0.0.1", port, timeout=30)
                s.ehlo("client.example.test")
                s.starttls(context=ctx)
                s.ehlo("client.example.test")
                t0 = time.monotonic()
                s.login(SUB_USER, SUB_PASSWORD)
                lat.append(time.monotonic() - t0)
                s.quit()
        lat.sort()
        self.record("submission-auth", logins=len(lat),
                    median_ms=lat[len(lat) // 2] * 1000,
                    p90_ms=lat[int(len(lat) * 0.9)] * 1000,
                    cpu_per_session_ms=w.cpu_s * 1000 / len(lat))
        r = self.results["submission-auth"]
        log("AUTH PLAIN (argon2id)    median %6.1f ms p90 %6.1f ms, CPU "
            "%6.1f ms/session" % (r["median_ms"], r["p90_ms"],
                                  r["cpu_per_session_ms"]))

    def submission(self):
        """AUTH's cost, then msg/s through `receive -s -l` (STARTTLS, AUTH)
        at C=SUB_CONC beside the bench's Postfix smtpd with STARTTLS but
        without AUTH (Postfix's SASL needs Dovecot's or Cyrus's auth
        server, which this bench does not run), one message a session and
        20; the same Python load generator for both (smtp-source has
        neither STARTTLS nor AUTH)."""
        cert, key, users = self.submission_files()
        m, port = self.configured_server(
            "submission", "tls-cert " + cert, "tls-key " + key,
            "users " + users, "submission-rate 1000000/1h",
            "auth-fail-limit 100000", listen=True, args=("-s",))
        self.pf.stop()
        self.pf.extra = {"smtpd_tls_cert_file": cert,
                         "smtpd_tls_key_file": key,
                         "smtpd_tls_security_level": "may"}
        try:
            self.pf.start("submission")
            self.attempt("submission AUTH cost", self.auth_cost, port)
            for per_conn in PER_CONN:
                for system, p, login in (
                        ("submission", port, (SUB_USER, SUB_PASSWORD)),
                        ("postfix", self.port_pf, None)):
                    key_ = "submission-%s-c%d-m%d" % (
                        "mxfb" if system == "submission" else "postfix",
                        SUB_CONC, per_conn)
                    self.attempt(key_, self.receive_one, key_, system, p,
                                 SUB_CONC, per_conn, "submission", 1,
                                 tls_source(login))
        finally:
            m.stop_all()
            self.pf.stop()
            self.pf.extra = {}

    def close(self):
        for m in self.mx.values():
            m.stop_all()
        self.sink.stop()
        try:
            self.pf.stop()
        except Exception as e:
            log("postfix stop:", e)
        for s in self.dns:
            s.stop()


# --------------------------------------------------------------- report

def fmt_rate(r):
    if not r or r.get("rate") is None:
        return "n/a"
    s = "%.0f/s" % r["rate"]
    if r.get("cpu_ms") is not None:
        s += " %.2fms" % r["cpu_ms"]
    return s


def inetd_bounds(R):
    """What any program started per connection could reach against
    Postfix on this machine, from the floor (a trivial static responder
    under the same tcpserver): connection cost at most the floor's rate;
    receive at 1 msg/conn at most Postfix's CPU per message over the
    floor's CPU per process start plus mxfb's own CPU per message once
    started (receive -l at the same concurrency).  The receive bound
    assumes CPU is the limit, as it is at C=4 and C=16 here; at C=1 the
    fsync latency comes on top.  Returns (figure, bound, target)."""
    out = []
    floor, pf = R.get("connect-floor"), R.get("connect-postfix")
    if floor and pf and floor.get("rate") and pf.get("rate"):
        out.append(("connect+EHLO+QUIT, tcpserver",
                    floor["rate"] / pf["rate"], TARGETS["connect"]))
    fcpu = floor and floor.get("cpu_ms")
    for conc in CONCURRENCY:
        p = R.get("receive-postfix-c%d-m1" % conc)
        m = R.get("receive-listen-c%d-m1" % conc)
        if fcpu and p and m and p.get("cpu_ms") and m.get("cpu_ms"):
            out.append(("receive tcpserver C=%d 1/conn" % conc,
                        p["cpu_ms"] / (fcpu + m["cpu_ms"]),
                        TARGETS["receive-inetd"]))
    return out


def link_mode(path):
    """How a binary is linked, from its dynamic section: which of the
    libraries a security update replaces it loads from the system."""
    try:
        out = subprocess.run(["readelf", "-d", path], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no readelf)"
    needed = [l.split("[", 1)[1].split("]")[0] for l in
              out.decode(errors="replace").splitlines() if "(NEEDED)" in l]
    if not needed:
        return "fully static"
    shared = [n.split(".so")[0] for n in needed
              if n.split(".so")[0] in ("libssl", "libcrypto", "libldns",
                                       "libsodium", "libbsd")]
    return "shared %s" % ", ".join(shared) if shared else \
        "static libraries (%s shared)" % ", ".join(
            n.split(".so")[0] for n in needed)


def systems(R):
    """The mxfb rows of the table, (system key, label): each of the
    default build's followed by the STATIC=1 build's where that ran."""
    static = any(k.endswith("-static") or "-static-" in k for k in R)
    out = []
    for system, label in (("inetd", "tcpserver"), ("listen", "receive -l")):
        out.append((system, label))
        if static:
            out.append((system + "-static", label + ", STATIC=1"))
    return out


def report(b):
    R = b.results
    rows = []        # figure, mxfb, postfix, ratio, target, fsync fraction

    def ratio(a, p, invert=False):
        if not a or not p:
            return None
        return (p / a) if invert else (a / p)

    for name in ("fsync-1", "fsync-4", "fsync-16"):
        if name in R:
            rows.append(("fsync limit, %s writers" % name.split("-")[1],
                         "%.0f/s" % R[name]["rate"], "", None, None, ""))
    for system, label in systems(R):
        key = "connect-" + system
        if system.endswith("-static") and key not in R:
            continue
        label = "connect+EHLO+QUIT, " + label
        m, p = R.get(key), R.get("connect-postfix")
        rows.append((label + " C=4", fmt_rate(m), fmt_rate(p),
                     ratio(m and m["rate"], p and p["rate"]),
                     TARGETS["connect"], ""))
    m, p = R.get("connect-floor"), R.get("connect-postfix")
    if m:
        rows.append(("  floor: trivial server under tcpserver", fmt_rate(m),
                     fmt_rate(p), ratio(m["rate"], p and p["rate"]), None, ""))
    for system, label in systems(R):
        tgt = "receive-" + system.split("-")[0]
        for per_conn in PER_CONN:
            for conc in CONCURRENCY:
                m = R.get("receive-%s-c%d-m%d" % (system, conc, per_conn))
                p = R.get("receive-postfix-c%d-m%d" % (conc, per_conn))
                lim = b.fsync_for(conc)
                frac = ""
                if lim and (m or p):
                    frac = "%s / %s" % (
                        "%.2f" % (m["rate"] / lim) if m else "-",
                        "%.2f" % (p["rate"] / lim) if p else "-")
                rows.append(("receive %s C=%d %d/conn" % (label, conc, per_conn),
                             fmt_rate(m), fmt_rate(p),
                             ratio(m and m["rate"], p and p["rate"]),
                             TARGETS[tgt] if per_conn == 1 else None, frac))
    for system, label in (("inetd", "tcpserver"), ("listen", "receive -l")):
        m, p = R.get("syscalls-" + system), R.get("syscalls-postfix")
        if m or p:
            rows.append(("fsync, syscalls per msg, %s" % label,
                         "%.2f, %.0f" % (m["fsync_per_msg"], m["syscalls_per_msg"])
                         if m else "n/a",
                         "%.2f, %.0f" % (p["fsync_per_msg"], p["syscalls_per_msg"])
                         if p else "n/a", None, None, ""))
    m, p = R.get("drain-mxfb"), R.get("drain-postfix")
    rows.append(("drain %d msgs to smtp-sink" % DRAIN_MSGS, fmt_rate(m),
                 fmt_rate(p), ratio(m and m["rate"], p and p["rate"]),
                 TARGETS["drain"], ""))
    p = R.get("status-postfix")
    for key, label in (("status-mxfb", "status"),
                       ("status-s-mxfb", "status -s"),
                       ("status-m-mxfb", "status -m"),
                       ("status-new-mxfb", "status after 100 new"),
                       ("status-full-mxfb", "status full scan"),
                       ("status-s-full-mxfb", "status -s full scan"),
                       ("status-m-full-mxfb", "status -m full scan")):
        m = R.get(key)
        rows.append(("%s, %d msgs (s, vs postqueue -p)" % (label, STATUS_MSGS),
                     "%.2fs %.1fMiB" % (m["seconds"], m["rss_kb"] / 1024) if m else "n/a",
                     "%.2fs %.1fMiB" % (p["seconds"], p["rss_kb"] / 1024) if p else "n/a",
                     ratio(m and m["seconds"], p and p["seconds"], invert=True),
                     TARGETS["status"] if label == "status" else None, ""))

    verify_rows = []
    for per in (VERIFY_RCPTS, 1):
        for what, label in (("off", "no check (baseline)"),
                            ("file", "recipients file, %d lines"
                             % VERIFY_FILE_LINES),
                            ("db", "database hit"),
                            ("callout", "callout to a local primary")):
            m = R.get("verify-%s-%d" % (what, per))
            if m:
                verify_rows.append((
                    "RCPT %s, %d RCPT/session" % (label, per),
                    "%.2f/%.2f ms" % (m["median_ms"], m["p90_ms"]),
                    "%.3f ms" % m["cpu_per_rcpt_ms"],
                    "%.2f ms" % m["cpu_per_session_ms"]))
    m0, m1 = R.get("verify-off-1"), R.get("verify-db-1")
    if m0 and m1:
        verify_rows.append((
            "  opening the database in an inetd receive (db hit - baseline)",
            "", "", "%+.2f ms" % (m1["cpu_per_session_ms"] -
                                 m0["cpu_per_session_ms"])))
    m0, m1 = R.get("verify-file-%d" % VERIFY_RCPTS), \
        R.get("verify-db-%d" % VERIFY_RCPTS)
    if m0 and m1:
        verify_rows.append((
            "  database hit cheaper than the recipients file",
            "", "", "yes" if m1["cpu_per_rcpt_ms"] < m0["cpu_per_rcpt_ms"]
            else "NO"))

    mailbox_rows = mailbox_table(R)
    outage_rows = outage_table(R)
    submission_rows = submission_table(R)

    w = max(len(r[0]) for r in rows)
    head = "%-*s  %-16s  %-16s  %6s  %6s  %s" % (
        w, "figure", "mxfb (CPU/msg)", "Postfix (CPU/msg)", "ratio",
        "target", "fsync frac mx/pf")
    print()
    print(head)
    print("-" * len(head))
    for fig, mv, pv, rt, tg, fr in rows:
        mark = ""
        if rt is not None and tg is not None:
            mark = " ok" if rt >= tg else " MISS"
        print("%-*s  %-16s  %-16s  %6s  %6s  %s" % (
            w, fig, mv, pv, "%.2f" % rt if rt is not None else "-",
            ("%.1fx" % tg + mark) if tg else "", fr))
    if verify_rows:
        vw = max(len(r[0]) for r in verify_rows)
        vhead = "%-*s  %-18s  %-12s  %s" % (
            vw, "recipient verification", "RCPT median/p90",
            "CPU/RCPT", "CPU/session")
        print()
        print(vhead)
        print("-" * len(vhead))
        for r in verify_rows:
            print("%-*s  %-18s  %-12s  %s" % ((vw,) + r))
    if mailbox_rows:
        mw = max(len(r[0]) for r in mailbox_rows)
        mhead = "%-*s  %-16s  %s" % (
            mw, "outage mailbox, receive -l C=%d %d/conn" % (
                MAILBOX_CONC, MAILBOX_PER_CONN), "rate or wall", "CPU")
        print()
        print(mhead)
        print("-" * len(mhead))
        for r in mailbox_rows:
            print("%-*s  %-16s  %s" % ((mw,) + r))
    if outage_rows:
        print()
        print_table(("mass outage, flush once the primaries are back "
                     "(timeouts %d s)" % OUTAGE_TIMEOUT,
                     "deliverable in", "run ends", "delivered (dup, lost)",
                     "failed", "deferred", "CPU, busy"), outage_rows)
    if submission_rows:
        sw = max(len(r[0]) for r in submission_rows)
        shead = "%-*s  %-22s  %s" % (sw, "submission, C=%d" % SUB_CONC,
                                     "mxfb (CPU/msg)", "Postfix (CPU/msg)")
        print()
        print(shead)
        print("-" * len(shead))
        for r in submission_rows:
            print("%-*s  %-22s  %s" % ((sw,) + r))
    sms = [R[k] for k in ("status-mxfb", "status-s-mxfb", "status-new-mxfb",
                          "status-full-mxfb", "status-s-full-mxfb")
           if R.get(k)]
    if sms:
        rss = max(sm["rss_kb"] for sm in sms)
        print("status peak RSS %.1f MiB (limit 16 MiB): %s" % (
            rss / 1024, "ok" if rss <= STATUS_RSS_LIMIT_KB else "MISS"))
    for what, ks, km in (("from status.cache", "status-s-mxfb",
                          "status-m-mxfb"),
                         ("full scan", "status-s-full-mxfb",
                          "status-m-full-mxfb")):
        ms, mm = R.get(ks), R.get(km)
        if not (ms and mm and "cpu_s" in ms and "cpu_s" in mm):
            continue
        # "No slower": -m's median CPU within 5% (run-to-run spread) and
        # 5 ms (a scheduler tick or so) of -s's, in the same runs.
        cr = mm["cpu_s"] / ms["cpu_s"] if ms["cpu_s"] > 0 else 1.0
        print("status -m beside -s, %s, median of %d interleaved: wall "
              "%.3f/%.3f s, CPU %.3f/%.3f s, CPU -m/-s %.2f: %s" % (
                  what, len(mm["runs"]), ms["seconds"], mm["seconds"],
                  ms["cpu_s"], mm["cpu_s"], cr,
                  "ok" if mm["cpu_s"] <= ms["cpu_s"] * 1.05 + 0.005
                  else "MISS"))
    bounds = inetd_bounds(R)
    for fig, bound, tg in bounds:
        print("bound: %s: at most %.2fx on this machine (target %.1fx%s)" % (
            fig, bound, tg, ": out of reach" if bound < tg else ""))
    builds = {"default": link_mode(MXFB)}
    if MXFB_STATIC:
        builds["STATIC=1"] = link_mode(MXFB_STATIC)
    for name, mode in builds.items():
        print("mxfb %s build: %s" % (name, mode))
    for n in b.notes:
        print("note:", n)

    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": QUICK,
        "sizes": {"receive": RECV_MSGS, "drain": DRAIN_MSGS,
                  "status": STATUS_MSGS, "seconds": SECONDS,
                  "repeat": REPEAT, "status_pairs": STATUS_PAIRS,
                  "message_bytes": MSG_BYTES},
        "cpu_source": b.cpu_mx.source,
        "builds": {k: {"binary": MXFB if k == "default" else MXFB_STATIC,
                       "linking": v} for k, v in builds.items()},
        "cpus": os.cpu_count(),
        "results": R,
        "table": [{"figure": r[0], "mxfb": r[1], "postfix": r[2],
                   "ratio": r[3], "target": r[4], "fsync_fraction": r[5]}
                  for r in rows],
        "verify_table": [{"figure": r[0], "rcpt_latency": r[1],
                          "cpu_per_rcpt": r[2], "cpu_per_session": r[3]}
                         for r in verify_rows],
        "mailbox_table": [{"figure": r[0], "rate_or_wall": r[1],
                           "cpu": r[2]} for r in mailbox_rows],
        "outage_table": [dict(zip(("figure", "deliverable", "end",
                                   "delivered", "failed", "deferred",
                                   "cpu"), r)) for r in outage_rows],
        "submission_table": [{"figure": r[0], "mxfb": r[1], "postfix": r[2]}
                             for r in submission_rows],
        "notes": b.notes,
        "inetd_bounds": [{"figure": f, "bound": v, "target": t}
                         for f, v, t in bounds],
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "bench.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print("wrote", path)
    chart(rows)


def submission_table(R):
    """The submission phase's rows, (figure, mxfb, Postfix)."""
    out = []
    a = R.get("submission-auth")
    if a:
        out.append(("AUTH PLAIN, argon2id t=2 m=64MiB (median/p90)",
                    "%.1f/%.1f ms" % (a["median_ms"], a["p90_ms"]),
                    "n/a (no SASL here)"))
        out.append(("  CPU per session up to AUTH",
                    "%.1f ms" % a["cpu_per_session_ms"], ""))
    for per_conn in PER_CONN:
        m = R.get("submission-mxfb-c%d-m%d" % (SUB_CONC, per_conn))
        p = R.get("submission-postfix-c%d-m%d" % (SUB_CONC, per_conn))
        if m or p:
            out.append(("STARTTLS, %d/conn (mxfb: +AUTH; Postfix: none)" %
                        per_conn, fmt_rate(m), fmt_rate(p)))
    return out


def mailbox_table(R):
    """The mailbox phase's rows, (figure, rate or wall time, CPU)."""
    out = []
    for what, label in (("off", "mailbox off (recipients file only)"),
                        ("on", "mailbox on")):
        m = R.get("mailbox-" + what)
        if m:
            out.append((label, "%.0f msg/s" % m["rate"],
                        "%.2f ms/msg" % m["cpu_ms"]))
    for i in range(1, MAILBOX_PAIRS + 1) if MAILBOX_PAIRS > 1 else ():
        m = R.get("mailbox-on-%d" % i)
        if m and "rate" in m:
            out.append(("  on, run %d: %d copies in the mailbox before" % (
                i, m["mailbox_before"]), "%.0f msg/s" % m["rate"],
                "%.2f ms/msg" % m["cpu_ms"]))
    m = R.get("mailbox-on")
    if m and "copies" in m:
        out.append(("  copies made per message (%s file system as the "
                    "spool)" % ("same" if m["same_fs"] else "NOT the same"),
                    "%.2f" % m["copies_per_msg"], ""))
    c = R.get("mailbox-cost")
    if c:
        out.append(("  the copies' cost per message", "%+.3f ms" %
                    c["wall_ms"], "%+.3f ms" % c["cpu_ms"]))
        out.append(("  per recipient, in fsyncs (one = %.3f ms at the "
                    "16-writer limit)" % c["fsync_ms"],
                    "%.2f" % c["fsync_fraction"],
                    "%.2f" % c["cpu_fsync_fraction"]))
        out.append(("  target: extra cost per recipient below one fsync",
                    "ok" if c["ok"] else "MISS", ""))
    return out


def outage_table(R):
    """The outage phase's rows: per scenario mxfb's and Postfix's run,
    then the targets (issue 13): all deliverable mail at least 2x sooner
    than Postfix, and mxfb's run over within one timeout of the last
    delivery.  Times in seconds from `mxfb flush` / `postqueue -f`."""
    out = []
    for scen, _, _ in OUTAGE:
        m, p = (R.get("outage-%s-%s" % (scen, s)) for s in ("mxfb",
                                                             "postfix"))
        for r, name in ((m, "mxfb"), (p, "Postfix")):
            if not r:
                continue
            e = r["expect"]
            out.append((
                "%s, %s" % (r["label"], name),
                "%.1f s" % r["deliverable_s"] if r["deliverable_s"]
                is not None else "n/a (%s)" % ("none arrived"
                                               if r["last_arrival_s"] is None
                                               else "not all"),
                "%.1f s" % r["end_s"],
                "%d/%d (%d, %d)" % (r["delivered"], e["delivered"],
                                    r["dups"], r["lost"]),
                "%d/%d" % (r["failed"], e["failed"]),
                "%d/%d" % (r["deferred"], e["deferred"]),
                "%.1f s, %.0f%%" % (r["cpu_s"], r["busy"] * 100)))
            if not r["correct"]:
                out.append(("  %s %s: %d messages with the wrong fate, %d "
                            "unknown Message-IDs" % (scen, name, r["wrong"],
                                                     r["unknown"]),
                            "WRONG", "", "", "", "", ""))
        if m and p:
            md, pd = m["deliverable_s"], p["deliverable_s"]
            ok = md is not None and (pd is None or pd >= 2 * md)
            out.append(("  %s target: deliverable mail 2x sooner than "
                        "Postfix" % scen, "%s %s" % (
                            "%.2fx" % (pd / md) if md and pd else "-",
                            "ok" if ok else "MISS"), "", "", "", "", ""))
        if m:
            tail = m["end_s"] - m["last_arrival_s"] \
                if m["last_arrival_s"] is not None else None
            ok = m["deliverable_s"] is not None and tail <= m["timeout"]
            out.append(("  %s target: mxfb ends within %d s of the last "
                        "delivery" % (scen, m["timeout"]), "", "%s %s" % (
                            "+%.1f s" % tail if tail is not None else "-",
                            "ok" if ok else "MISS"), "", "", "", ""))
    return out


def print_table(head, rows):
    """Columns as wide as their widest cell, two spaces apart."""
    w = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = "  ".join("%-*s" % (n, c) for n, c in zip(w, head)).rstrip()
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join("%-*s" % (n, c) for n, c in zip(w, r)).rstrip())


def chart(rows):
    """Bar chart of the ratios (mxfb/Postfix; for status Postfix/mxfb),
    with the targets, when gnuplot is installed."""
    data = [(r[0], r[3], r[4] or 0) for r in rows if r[3] is not None]
    if not data or not which("gnuplot"):
        print("no gnuplot: bench.png not drawn")
        return
    png = os.path.join(OUT, "bench.png")
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        for i, (label, rt, tg) in enumerate(data):
            f.write('%d "%s" %f %f\n' % (i, label.replace('"', ""), rt, tg))
        dat = f.name
    script = """
set terminal pngcairo size 1200,700 noenhanced
set output '{png}'
set title 'mxfb / Postfix (higher is better), targets as points'
set style fill solid 0.6
set boxwidth 0.7
set xtics rotate by -45 font ',8'
set yrange [0:*]
plot '{dat}' using 1:3:xtic(2) with boxes title 'ratio', \\
     '' using 1:($4>0?$4:1/0) with points pt 7 title 'target'
""".format(png=png, dat=dat)
    r = subprocess.run(["gnuplot"], input=script.encode(),
                       stderr=subprocess.PIPE)
    os.unlink(dat)
    print("wrote", png if r.returncode == 0 else
          "no chart: " + r.stderr.decode()[-200:])


# ----------------------------------------------------------------- main

def main():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    if not os.access(MXFB, os.X_OK):
        die("%s not built (run make)" % MXFB)
    ensure_packages()
    if os.geteuid() != 0:
        die("needs root: the private Postfix instance (postfix start), the "
            "cgroup CPU accounting and the network namespace")
    isolate()
    base = os.environ.get("BENCH_TMPDIR", "/var/tmp")
    work = tempfile.mkdtemp(prefix="mxfb-bench.", dir=base)
    os.chmod(work, 0o755)        # Postfix daemons run as user postfix
    log("work dir %s, mxfb %s%s" % (work, MXFB, " (quick)" if QUICK else ""))
    build_helpers(os.path.join(work, "bin"))
    b = Bench(work)
    t0 = time.monotonic()
    try:
        if "fsync" in PHASES:
            b.attempt("fsync limit", b.fsync_limit)
        if set(PHASES) & {"connect", "receive", "syscalls"}:
            b.start_servers()
            if "connect" in PHASES:
                b.attempt("connection cost", b.connect_cost)
            if "receive" in PHASES:
                b.receive()
            if "syscalls" in PHASES:
                b.attempt("syscall counts", b.syscalls)
            b.stop_receive_servers()
        if "drain" in PHASES:
            b.attempt("drain", b.drain)
        if "status" in PHASES:
            b.attempt("status", b.status)
        if "verify" in PHASES:
            b.attempt("verify", b.verify)
        if "mailbox" in PHASES:
            b.attempt("mailbox", b.mailbox)
        if "outage" in PHASES:
            b.outage()
        if "submission" in PHASES:
            b.attempt("submission", b.submission)
    except KeyboardInterrupt:
        log("interrupted")
        b.notes.append("interrupted")
    finally:
        b.close()
        for c in (b.cpu_mx, b.cpu_pf, b.cpu_sink, b.cpu_floor):
            c.remove()
    log("finished in %.0f s" % (time.monotonic() - t0))
    try:
        report(b)
    finally:
        if os.environ.get("BENCH_WORKFILE"):
            with open(os.environ["BENCH_WORKFILE"], "w") as f:
                f.write(work)        # removed by the parent, outside
        else:
            remove_later(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
