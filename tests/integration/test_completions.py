"""Shell completions: the bash function is run in a real bash with
COMP_WORDS/COMP_CWORD set and its COMPREPLY checked (commands, options
derived from the code's getopt strings, queue IDs from `mxfb status -j`,
relay domains from the configuration, busybox-style names); the zsh file
is syntax-checked with `zsh -n` when zsh is installed."""
import os
import shutil
import subprocess

import pytest

from conftest import MXFB, REPO
from test_docs import command_options, commands

BASH_FILE = os.path.join(REPO, "completions", "mxfb.bash")
ZSH_FILE = os.path.join(REPO, "completions", "_mxfb")


def complete(words, env=None, cword=None):
    """COMPREPLY of _mxfb for the command line `words` (the last word is
    the one being completed)."""
    if cword is None:
        cword = len(words) - 1
    quoted = " ".join("'%s'" % w.replace("'", "'\\''") for w in words)
    script = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_mxfb\n'
              'printf "%%s\\n" "${COMPREPLY[@]}"\n' % (BASH_FILE, quoted, cword))
    e = dict(os.environ)
    e.pop("MXFB_CONFIG", None)
    e.update(env or {})
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                       timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    return [l for l in p.stdout.decode().splitlines() if l]


def test_bash_commands():
    assert sorted(complete(["mxfb", ""])) == sorted(commands())
    assert complete(["mxfb", "st"]) == ["status"]
    assert sorted(complete(["mxfb", "-C", "/etc/x.conf", "re"])) == \
        ["receive", "release"]
    assert set(complete(["mxfb", "-"])) >= {"-C", "-h", "-V"}


@pytest.mark.parametrize("cmd", commands())
def test_bash_options_from_code(cmd):
    """Every option the command's getopt string accepts is offered."""
    want = {"-" + o for o in command_options(cmd)}
    assert set(complete(["mxfb", cmd, "-"])) == want
    # The busybox-style name completes the same.
    assert set(complete(["mxfb-" + cmd, "-"])) == want


def test_bash_config_file_argument(tmp_path):
    (tmp_path / "mine.conf").write_text("")
    got = complete(["mxfb", "status", "-C", str(tmp_path / "mi")])
    assert got == [str(tmp_path / "mine.conf")]


def test_bash_queue_ids(mx, tmp_path):
    ids = [mx.inject("a@example.org", ["u@example.test"], b"Subject: x\n\ny\n")
           for _ in range(3)]
    env = {"MXFB_CONFIG": mx.conf}
    for cmd in ("hold", "release", "delete", "status", "flush", "bounce"):
        assert sorted(complete([MXFB, cmd, ""], env)) == sorted(ids), cmd
    assert complete([MXFB, "hold", ids[1][:-1]], env) == [ids[1]]
    assert complete([MXFB, "inject", ""], env) == []
    # -C on the command line is passed on to `status -j`.
    assert sorted(complete([MXFB, "-C", mx.conf, "delete", ""])) == sorted(ids)
    assert sorted(complete([MXFB, "delete", "-C", mx.conf, ""])) == sorted(ids)
    # mxfb-hold finds `mxfb` beside itself.
    os.symlink(MXFB, str(tmp_path / "mxfb"))
    os.symlink(MXFB, str(tmp_path / "mxfb-hold"))
    assert sorted(complete([str(tmp_path / "mxfb-hold"), ""], env)) == sorted(ids)


def test_bash_relay_domains(mx):
    mx.config("relay-domain other.test via [127.0.0.2]:2525")
    env = {"MXFB_CONFIG": mx.conf}
    assert sorted(complete(["mxfb", "probe", ""], env)) == ["example.test",
                                                         "other.test"]
    assert complete(["mxfb", "flush", "-d", "oth"], env) == ["other.test"]


def test_zsh_syntax():
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    p = subprocess.run(["zsh", "-n", ZSH_FILE], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()
    with open(ZSH_FILE) as f:
        first = f.readline().split()
    assert first[0] == "#compdef"
    assert set(first[1:]) == {"mxfb"} | {"mxfb-" + c for c in commands()}
