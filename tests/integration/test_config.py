"""The configuration file as every command sees it (issue 2): a bad line
makes each command that loads it exit 78 (probe: 3, a monitoring-plugin
UNKNOWN) with "FILE:LINE: reason" on stderr, before it touches anything;
a missing file is an error too; a file using every key is accepted."""
import os
import subprocess
import time

import pytest

from conftest import MXFB

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def err(p):
    return p.stderr.decode(errors="replace")


def b32(n, width):
    s = ""
    for _ in range(width):
        s = ALPHABET[n % 32] + s
        n //= 32
    return s


def some_queue_id():
    """A well-formed queue ID (core/mail/queue_id.h: 7 chars of seconds, 4 of
    microseconds, 6 random) for commands that want one."""
    t = time.time()
    return b32(int(t), 7) + b32(int((t % 1) * 1e6), 4) + "ABCDEF"


MESSAGE = "From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n"

# command, extra arguments, stdin, expected exit status
COMMANDS = [
    ("status", [], None, 78),
    ("status", ["-j"], None, 78),
    ("inject", ["-f", "a@sender.test", "u@example.test"], MESSAGE, 78),
    ("flush", [], None, 78),
    ("flush", ["-f", "-d", "example.test"], None, 78),
    ("bounce", [], None, 78),
    ("probe", [], None, 3),
    ("hold", ["ID"], None, 78),
    ("release", ["ID"], None, 78),
    ("delete", ["ID"], None, 78),
    ("verify", ["u@example.test"], None, 78),
    ("verify", ["-l"], None, 78),
    ("receive", [], "EHLO client.test\r\nQUIT\r\n", 78),
]

BAD_LINES = [
    ("frobnicate yes", "unknown key \"frobnicate\""),
    ("max-size", "missing value for \"max-size\""),
    ("max-size 10M 20M", "too many values"),
    ("hostname again.example.test", "duplicate key \"hostname\""),
    ("queue-lifetime 5 days", "too many values"),
    ("queue-lifetime 5y", "bad duration"),
    ("max-size 5T", "bad size"),
    ("smtp-port 70000", "bad port"),
    ("smarthost [127.0.0.1:25", "missing ]"),
    ("etrn-allow 127.0.0.0/40", "etrn-allow"),
    ("bounce-policy sometimes", "bounce-policy"),
    ("relay-domain other.test through mx.other.test", "\"via\""),
    ("relay-domain bad..test", "invalid domain"),
    ("retry-min 2h", "greater than retry-max"),
    # RFC 5321 4.5.3.1.8: a server must accept 100 recipients.
    ("max-recipients 99", "max-recipients: number \"99\" is too small"),
    ("tls-outbound secure", "tls-outbound: \"secure\" is not one of"),
    ("tls-required perhaps", "neither yes nor no"),
    ("tls-required yes", "tls-required yes needs tls-cert"),
    ("tls-ciphers NO-SUCH-CIPHER", "tls-ciphers"),
    ("tls-cert /etc/ssl/mx.pem", "tls-cert without tls-key"),
    ("relay-domain other.test tls strict", "tls \"strict\" is not one of"),
    ("relay-domain other.test tls may tls none", "once each"),
    ("min-data-rate fast", "min-data-rate: bad size \"fast\""),
    ("max-sessions-per-client 100001",
     "max-sessions-per-client: number \"100001\" is too large"),
    ("soft-error-limit many",
     "soft-error-limit: number \"many\" is invalid"),
    ("hard-error-limit 0", "hard-error-limit: number \"0\" is too small"),
    ("error-sleep 2h", "error-sleep: must be at most 3600s"),
    ("recipient-verify on", "recipient-verify: \"on\" is neither off nor "
     "callout"),
    ("verify-positive-ttl 0", "verify-positive-ttl: must be at least 1s"),
    ("verify-negative-ttl soon", "verify-negative-ttl: bad duration"),
    # Against the other key's default (20, 10) as retry-min/retry-max do.
    ("soft-error-limit 21",
     "soft-error-limit (21) is greater than hard-error-limit (20)"),
    ("hard-error-limit 9",
     "soft-error-limit (10) is greater than hard-error-limit (9)"),
]


def args_for(extra):
    return [some_queue_id() if a == "ID" else a for a in extra]


def spool_untouched(mx):
    """Nothing was created or written: a config error stops first."""
    if not os.path.exists(mx.spool):
        return True
    for root, dirs, files in os.walk(mx.spool):
        if files:
            return False
    return True


@pytest.mark.parametrize("cmd,extra,stdin,code", COMMANDS,
                         ids=["%s%s" % (c[0], "".join(c[1][:1]))
                              for c in COMMANDS])
def test_bad_line_every_command(mx, cmd, extra, stdin, code):
    # The error is on the line after the fixture's base lines and two
    # good ones.
    mx.config("max-recipients 100", "retry-max 1h # comment",
              "frobnicate yes")
    bad = len(mx.base_lines()) + 3
    p = mx.run(cmd, *args_for(extra), input=stdin, timeout=30)
    assert p.returncode == code, (cmd, p.returncode, err(p))
    assert "%s:%d: unknown key \"frobnicate\"" % (mx.conf, bad) in err(p), \
        err(p)
    assert ("mxfb: %s: " % cmd) in err(p), err(p)
    assert spool_untouched(mx)
    if cmd == "receive":
        # No SMTP greeting for a server that cannot run.
        assert not p.stdout.startswith(b"220")


@pytest.mark.parametrize("line,reason", BAD_LINES,
                         ids=[b[0] for b in BAD_LINES])
def test_bad_values(mx, line, reason):
    mx.config("# a comment line", "", line)
    at = "%s:%d: " % (mx.conf, len(mx.base_lines()) + 3)
    p = mx.run("status")
    assert p.returncode == 78, err(p)
    assert at in err(p), err(p)
    assert reason in err(p), err(p)
    # One line, "mxfb: status: FILE:LINE: reason".
    lines = [l for l in err(p).splitlines() if l]
    assert len(lines) == 1, lines
    assert lines[0].startswith("mxfb: status: " + at), lines


def test_bad_log_value(mx):
    # `log` is among the fixture's base lines: write the file whole.
    mx.config("hostname backup.example.test", "spool %s" % mx.spool,
              "resolver %s" % mx.dns.address, "log journal",
              replace_base=True)
    p = mx.run("status")
    assert p.returncode == 78, err(p)
    assert "%s:4: log: \"journal\" is neither syslog nor stderr" % \
        mx.conf in err(p), err(p)


def test_missing_config_file(mx):
    missing = os.path.join(mx.dir, "absent.conf")
    p = mx.run("status", env={"MXFB_CONFIG": missing})
    assert p.returncode == 78, err(p)
    assert "%s: No such file or directory" % missing in err(p)

    p = mx.run("-C", missing, "inject", "u@example.test", input=MESSAGE)
    assert p.returncode == 78, err(p)
    assert "%s: No such file or directory" % missing in err(p)
    assert not os.path.exists(mx.spool)


def test_default_config_path(mx):
    """Without -C and $MXFB_CONFIG the build's sysconfdir file is used."""
    default = "/etc/mxfb/mxfb.conf"
    if os.path.exists(default):
        pytest.skip("%s exists on this machine" % default)
    env = dict(os.environ)
    env.pop("MXFB_CONFIG", None)
    p = subprocess.run([MXFB, "status"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 78, err(p)
    assert "/mxfb/mxfb.conf: No such file or directory" in err(p)


def test_config_option_wins_over_environment(mx):
    bad = os.path.join(mx.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("# nothing\nspool\n")
    p = mx.run("-C", bad, "status")
    assert p.returncode == 78
    assert "%s:2: missing value for \"spool\"" % bad in err(p)
    # The fixture's own file ($MXFB_CONFIG) is fine.
    p = mx.run("status")
    assert p.returncode != 78, err(p)


def test_every_key_accepted(mx, dns):
    """A file that sets every documented key (README's key table, mxfb.1's
    CONFIGURATION) loads: the command gets past configuration loading."""
    mx.config(
        "relay-domain other.test via [127.0.0.2]:2525",
        "relay-domain v6.test via [::1]:2526",
        "relay-domain named.test via mx.named.test",
        "recipients %s" % os.path.join(mx.dir, "recipients"),
        "max-size 10M",
        "max-recipients 100",
        "queue-lifetime 5d",
        "delay-warning 0",
        "retry-min 1m",
        "retry-max 2h",
        "smtp-port 2525",
        "etrn-allow 127.0.0.0/8 ::1",
        "etrn-allow ::ffff:127.0.0.0/104",
        "smarthost [127.0.0.9]:2527",
        "timeout 30s",
        "queue-minfree 1M",
        "max-sessions 10",
        "max-sessions-per-client 5",
        "min-data-rate 1K",
        "soft-error-limit 5",
        "hard-error-limit 10",
        "error-sleep 2s",
        "flush-concurrency 2",
        "connect-timeout 5s",
        "command-timeout 1m",
        "data-timeout 1m",
        "data-done-timeout 2m",
        "claim-timeout 1h",
        "bounce-size-limit 50K",
        "bounce-policy all",
        "relay-domain dane.test via mx.dane.test:2528 tls dane",
        "relay-domain plain.test tls none",
        "tls-cert %s" % os.path.join(mx.dir, "cert.pem"),
        "tls-key %s" % os.path.join(mx.dir, "key.pem"),
        "tls-ciphers ECDHE+AESGCM:ECDHE+CHACHA20",
        "tls-required yes",
        "tls-outbound verify",
        "tls-ca-file %s" % os.path.join(mx.dir, "ca.pem"),
        "recipient-verify callout",
        "verify-db verify.lmdb",
        "verify-positive-ttl 31d",
        "verify-negative-ttl 3d",
        "verify-timeout 10s",
        "verify-unknown-when-down defer",
    )
    with open(os.path.join(mx.dir, "recipients"), "w") as f:
        f.write("@example.test\n")
    p = mx.run("inject", "-f", "a@sender.test", "u@example.test",
               input=MESSAGE)
    assert p.returncode == 0, err(p)
    assert p.stdout.strip()
    p = mx.run("status")
    assert p.returncode == 0, err(p)


def test_whitespace_and_comments(mx):
    """Leading blanks, tabs, CRLF line ends and trailing comments."""
    with open(mx.conf, "w") as f:
        f.write("# mxfb configuration\r\n"
                "\r\n"
                "   hostname\tbackup.example.test   # our name\r\n"
                "\tspool %s\r\n"
                "relay-domain Example.TEST.  # case and dot\r\n"
                "resolver %s\r\n"
                "log stderr\r\n"
                "user nobody\r\n" % (mx.spool, mx.dns.address))
    p = mx.run("inject", "-f", "a@sender.test", "u@example.test",
               input=MESSAGE)
    assert p.returncode == 0, err(p)
    assert os.path.isdir(mx.spool)
