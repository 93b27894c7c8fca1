#!/usr/bin/python3
"""make demo: the whole life of a backup MX, on loopback, in one command.

Starts a DNS server (dnslib) on 127.0.0.1 that lists two MX hosts for
example.test: the primary mx1.example.test (127.0.0.2, preference 10) and
us, backup.example.test (preference 20).  The primary is down.  Starts
`mxfb receive -l`, sends a message to it with a real SMTP client (swaks,
or Python's smtplib when swaks is missing), shows `status` and `probe`;
then starts the primary (aiosmtpd), shows `probe`, `flush`, `status` and
what the primary received.  Run as root, it also shows mxfb giving up
root: `receive -l` binds, then runs as the configured `user` (the account
`useradd --system ... mxfb` makes; `nobody` here when there is no mxfb
account), and the spool it makes belongs to that account.  Everything it started is stopped and its
temporary directory removed, whatever happens (errors, Ctrl-C).

usage: demo.py [path/to/mxfb]
Nothing here talks to anything but 127.0.0.0/8.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MXFB = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "./mxfb")
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() \
    else ("", "", "")


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(host, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %s:%d" % (host, port))


def say(text):
    print("\n%s==> %s%s" % (BOLD, text, OFF), flush=True)


class Demo:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="mxfb-demo-")
        # The account mxfb runs as must reach the spool and the file.
        os.chmod(self.tmp, 0o711)
        try:
            self.user = pwd.getpwnam("mxfb").pw_name
        except KeyError:
            self.user = "nobody"
        self.procs = []
        self.servers = []
        self.conf = os.path.join(self.tmp, "mxfb.conf")

    def run(self, *args, show=True):
        cmd = ["mxfb"] + list(args)
        if show:
            print("%s$ %s%s" % (DIM, " ".join(cmd), OFF), flush=True)
        p = subprocess.run([MXFB, "-C", self.conf] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        out = p.stdout.decode(errors="replace")
        if show:
            sys.stdout.write(out)
            for line in p.stderr.decode(errors="replace").splitlines():
                print("%s  log: %s%s" % (DIM, line, OFF))
            if p.returncode:
                print("%s(exit %d)%s" % (DIM, p.returncode, OFF))
        return p

    def start_dns(self):
        from dnslib import RR, QTYPE, RCODE, A, MX
        from dnslib.server import BaseResolver, DNSServer

        records = {
            ("example.test", "MX"): [MX("mx1.example.test.", 10),
                                     MX("backup.example.test.", 20)],
            ("mx1.example.test", "A"): [A("127.0.0.2")],
            ("backup.example.test", "A"): [A("127.0.0.1")],
        }

        class Zone(BaseResolver):
            def resolve(self, request, handler):
                name = str(request.q.qname).rstrip(".").lower()
                qtype = QTYPE[request.q.qtype]
                reply = request.reply()
                if not any(k[0] == name for k in records):
                    reply.header.rcode = RCODE.NXDOMAIN
                for rd in records.get((name, qtype), []):
                    reply.add_answer(RR(request.q.qname,
                                        QTYPE.reverse[qtype], rdata=rd,
                                        ttl=60))
                return reply

        class Quiet:
            def __getattr__(self, name):
                return lambda *a, **k: None

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self.dns_port = s.getsockname()[1]
        s.close()
        for tcp in (False, True):
            srv = DNSServer(Zone(), port=self.dns_port, address="127.0.0.1",
                            tcp=tcp, logger=Quiet())
            srv.start_thread()
            self.servers.append(srv)

    def start_primary(self):
        from aiosmtpd.controller import Controller
        self.received = []
        demo = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                demo.received.append(envelope)
                return "250 2.0.0 Ok: queued on the primary"

        c = Controller(Handler(), hostname="127.0.0.2", port=self.smtp_port)
        c.start()
        self.servers.append(c)

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "# written by make demo",
                "hostname backup.example.test",
                "spool %s" % os.path.join(self.tmp, "spool"),
                "relay-domain example.test",
                "resolver 127.0.0.1:%d" % self.dns_port,
                "smtp-port %d" % self.smtp_port,
                "log stderr",
                "user %s" % self.user,
                "connect-timeout 2s",
                "command-timeout 5s",
                "dns-timeout 2s",
                "dns-retry 1",
                "retry-min 1m",
            ]) + "\n")

    def send_mail(self):
        body = ("From: alice@sender.test\r\nTo: bob@example.test\r\n"
                "Subject: hello from the demo\r\n\r\n"
                "Sent while the primary MX was down.\r\n")
        if shutil.which("swaks"):
            cmd = ["swaks", "--server", "127.0.0.1:%d" % self.listen_port,
                   "--from", "alice@sender.test", "--to", "bob@example.test",
                   "--helo", "client.sender.test", "--data", body,
                   "--hide-all"]
            print("%s$ swaks --server 127.0.0.1:%d --from alice@sender.test "
                  "--to bob@example.test%s" % (DIM, self.listen_port, OFF))
            subprocess.run(cmd, check=True, timeout=60)
            print("(accepted)")
        else:
            import smtplib
            print("%s$ python3 smtplib -> 127.0.0.1:%d%s"
                  % (DIM, self.listen_port, OFF))
            with smtplib.SMTP("127.0.0.1", self.listen_port, timeout=30) as s:
                s.sendmail("alice@sender.test", ["bob@example.test"],
                           body.encode())
            print("(accepted)")

    def main(self):
        say("building blocks, all on loopback")
        self.smtp_port = free_port("127.0.0.2")
        self.start_dns()
        print("DNS server 127.0.0.1:%d: example.test MX 10 mx1.example.test "
              "(127.0.0.2), MX 20 backup.example.test (us)" % self.dns_port)
        print("primary mx1.example.test 127.0.0.2:%d: DOWN" % self.smtp_port)
        self.write_config()
        self.listen_port = free_port("127.0.0.1")
        p = subprocess.Popen([MXFB, "-C", self.conf, "receive", "-l",
                              "127.0.0.1:%d" % self.listen_port],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port("127.0.0.1", self.listen_port)
        print("mxfb receive -l 127.0.0.1:%d (the backup MX, as a sender "
              "sees it)" % self.listen_port)

        say("a sender cannot reach the primary and hands the mail to us")
        self.send_mail()
        if os.geteuid() == 0:
            self.show_privileges(p.pid)

        say("the mail waits in our queue")
        self.run("status")

        say("the primary is down: probe says CRITICAL (exit 2)")
        self.run("probe")

        say("the primary comes back")
        self.start_primary()
        wait_port("127.0.0.2", self.smtp_port)
        self.run("probe")

        say("deliver what we hold (cron runs this every few minutes)")
        self.run("flush", "-f")

        say("the queue is empty")
        p = self.run("status")
        if not p.stdout.strip():
            print("(empty)")

        say("what the primary received")
        for env in self.received:
            print("MAIL FROM:<%s> RCPT TO:%s" % (env.mail_from,
                  ",".join("<%s>" % r for r in env.rcpt_tos)))
            print(env.content.decode(errors="replace").rstrip())
        if len(self.received) != 1:
            raise RuntimeError("the primary got %d messages, expected 1"
                               % len(self.received))
        say("done: received while the primary was down, delivered when it "
            "came back")

    def show_privileges(self, pid):
        say("started as root, mxfb bound its port and then became `user`")
        print("%s# for real: useradd --system --home-dir /var/spool/mxfb "
              "--shell /usr/sbin/nologin mxfb%s" % (DIM, OFF))
        print("%s# here: user %s (in the configuration)%s"
              % (DIM, self.user, OFF))
        with open("/proc/%d/status" % pid) as f:
            uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
        print("receive -l (pid %d) runs as uid %s (%s)"
              % (pid, uid, pwd.getpwuid(int(uid)).pw_name))
        spool = os.path.join(self.tmp, "spool")
        for d in sorted(os.listdir(spool)):
            st = os.stat(os.path.join(spool, d))
            print("spool/%-8s %o %s" % (d, st.st_mode & 0o7777,
                                        pwd.getpwuid(st.st_uid).pw_name))
        if uid == "0":
            raise RuntimeError("receive still runs as root")

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for s in self.servers:
            try:
                s.stop()
            except Exception:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    if not os.access(MXFB, os.X_OK):
        sys.exit("demo: %s not built (run make)" % MXFB)
    demo = Demo()

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        demo.main()
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    except Exception as e:
        print("\ndemo failed: %s" % e)
        return 1
    finally:
        demo.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
