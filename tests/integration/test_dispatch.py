"""The multi-call dispatcher (issue 2): `mxfb -V/--version/-h`, `mxfb`
alone and unknown commands (exit 64), busybox-style `mxfb-COMMAND`
through argv[0], `-C FILE` before the command and among its options, and
`-h` on every command."""
import os

import pytest

COMMANDS = ["receive", "probe", "flush", "bounce", "status", "inject",
            "hold", "release", "delete"]


def out(p):
    return p.stdout.decode(errors="replace")


def err(p):
    return p.stderr.decode(errors="replace")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(mx, flag):
    p = mx.run(flag)
    assert p.returncode == 0, err(p)
    assert out(p).startswith("mxfb "), out(p)
    version = out(p).split()[1]
    assert version[0].isdigit(), out(p)
    assert err(p) == ""


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_command(mx, flag):
    p = mx.run(flag)
    assert p.returncode == 0, err(p)
    text = out(p)
    assert text.startswith("usage: mxfb"), text
    for c in COMMANDS:
        assert "\n  %s " % c in text, (c, text)


def test_no_command_is_usage_error(mx):
    p = mx.run()
    assert p.returncode == 64
    assert "usage: mxfb" in err(p)
    assert out(p) == ""


def test_unknown_command(mx):
    p = mx.run("frobnicate")
    assert p.returncode == 64
    assert "unknown command: frobnicate" in err(p)


def test_unknown_option(mx):
    p = mx.run("-x", "status")
    assert p.returncode == 64
    assert "usage: mxfb" in err(p)


def test_unknown_argv0_command(mx):
    p = mx.run("-j", argv0="mxfb-frobnicate")
    assert p.returncode == 64
    assert "unknown command: frobnicate" in err(p)


def test_argv0_picks_command(mx):
    """mxfb-status runs status: -h through argv[0] shows status's usage,
    and a broken configuration is reported as status's error."""
    p = mx.run("-h", argv0="mxfb-status")
    assert p.returncode == 0, err(p)
    assert out(p).startswith("usage: mxfb status"), out(p)

    with open(mx.conf, "a") as f:
        f.write("no-such-key 1\n")
    p = mx.run(argv0="/usr/local/bin/mxfb-status")
    assert p.returncode == 78, err(p)
    assert "mxfb: status: " in err(p)
    assert "%s:%d: unknown key" % (mx.conf, len(mx.base_lines()) + 1) \
        in err(p)


def write_conf(path, spool, dns):
    with open(path, "w") as f:
        f.write("hostname other.example.test\n"
                "spool %s\n"
                "relay-domain example.test\n"
                "resolver %s\n"
                "log stderr\n"
                "user nobody\n" % (spool, dns.address))


MESSAGE = "From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_option(mx, dns, where):
    """-C FILE before the command or among the command's options picks
    the configuration over $MXFB_CONFIG: a message injected through one
    configuration's spool is seen only through that configuration."""
    other = os.path.join(mx.dir, "other.conf")
    write_conf(other, os.path.join(mx.dir, "other-spool"), dns)

    def run(cmd, *args, **kw):
        if where == "before":
            return mx.run("-C", other, cmd, *args, **kw)
        return mx.run(cmd, "-C", other, *args, **kw)

    p = run("inject", "-f", "a@sender.test", "u@example.test",
            input=MESSAGE)
    assert p.returncode == 0, err(p)
    qid = out(p).strip()
    assert qid

    p = run("status", "-j")
    assert p.returncode == 0, err(p)
    assert qid in out(p)

    # $MXFB_CONFIG (the fixture's file) names another spool.
    p = mx.run("status", "-j")
    assert qid not in out(p)

    # And -C really is read: a broken file given with -C fails, even
    # though $MXFB_CONFIG is fine.
    with open(other, "a") as f:
        f.write("max-size huge\n")
    p = run("status")
    assert p.returncode == 78, err(p)
    assert "%s:7: " % other in err(p)


def test_config_option_argv0(mx, dns):
    """mxfb-status -C FILE -j (the interface contract's own
    example)."""
    other = os.path.join(mx.dir, "other.conf")
    write_conf(other, os.path.join(mx.dir, "other-spool"), dns)
    with open(other, "a") as f:
        f.write("retry-min soon\n")
    p = mx.run("-C", other, "-j", argv0="mxfb-status")
    assert p.returncode == 78, err(p)
    assert "%s:7: retry-min: bad duration" % other in err(p)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_on_every_command(mx, cmd):
    for flag in ("-h",):
        p = mx.run(cmd, flag)
        assert p.returncode == 0, (cmd, err(p))
        assert out(p).startswith("usage: mxfb %s" % cmd) or \
            out(p).startswith("usage: mxfb [-C file] %s" % cmd), out(p)
        # -h must not need a configuration.
        p = mx.run(cmd, flag, env={"MXFB_CONFIG": "/nonexistent/mxfb.conf"})
        assert p.returncode == 0, (cmd, err(p))


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_through_argv0(mx, cmd):
    p = mx.run("-h", argv0="mxfb-%s" % cmd)
    assert p.returncode == 0, (cmd, err(p))
    assert "usage: mxfb" in out(p) and cmd in out(p).splitlines()[0]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_bad_option_on_every_command(mx, cmd):
    p = mx.run(cmd, "-Z")
    assert p.returncode == 64, (cmd, err(p))
    assert "usage: mxfb" in err(p)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_bad_option_message_names_program_and_command(mx, cmd):
    """The interface contract: errors read `mxfb: COMMAND: message`,
    getopt's too, whether called as `mxfb CMD` or as `mxfb-CMD`."""
    for p in (mx.run(cmd, "-Z"), mx.run("-Z", argv0="mxfb-%s" % cmd)):
        assert p.returncode == 64, (cmd, err(p))
        assert err(p).startswith("mxfb: %s: invalid option -- 'Z'\n" % cmd), \
            (cmd, err(p))
