"""Shell completions: the bash function is run in a real bash with
COMP_WORDS/COMP_CWORD set and its COMPREPLY checked (commands, options
derived from the code's getopt strings, queue IDs from `mxfb status -j`,
relay domains from the configuration, busybox-style names); the zsh file
is syntax-checked with `zsh -n` and, when zsh is installed, driven
through a pseudo-terminal (zpty) with compadd wrapped to print what the
completion offers."""
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


# Runs an interactive zsh in a zpty, loads compinit with our completions
# first in $fpath (and a dump file in $HOME, so that only the first run of
# a module pays for scanning the completion functions), wraps compadd to
# print every match, types the line and a TAB; prints the matches.
ZSH_CAPTURE = r"""
zmodload zsh/zpty || exit 1
zpty z zsh -f -i
local line
C=/usr/share/zsh/functions/Completion
zpty -w z "PROMPT=''; fpath=($1 $C/Base $C/Unix $C/Zsh $C \$fpath); autoload -U compinit; compinit -u -d $HOME/.zcompdump-mxfb"
zpty -w z 'bindkey "^I" complete-word; null-line () { echo -E - $'"'"'\0'"'"' }; compprefuncs=( null-line ); comppostfuncs=( null-line exit )'
zpty -w z 'zstyle ":completion:*" list-grouped false; zstyle ":completion:*" insert-tab false'
zpty -w z 'compadd () { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi; typeset -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do echo -E - "HIT:$h"; done }'
zpty -w z "$2"$'\t'
integer tog=0
while zpty -r z line; do
  line=${line%$'\r'}
  [[ $line == *$'\0'* ]] && { (( tog++ )) && break || continue }
  [[ $line == HIT:* ]] && print -r -- ${line#HIT:}
done
zpty -d z
"""


def zsh_complete(home, line, env=None):
    script = home / "capture.zsh"
    if not script.exists():
        script.write_text(ZSH_CAPTURE)
    e = dict(os.environ)
    e.pop("MXFB_CONFIG", None)
    e["HOME"] = str(home)
    e.update(env or {})
    p = subprocess.run(["zsh", "-f", str(script), os.path.dirname(ZSH_FILE),
                        line], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=e, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return [l for l in p.stdout.decode().splitlines() if l.strip()]


@pytest.fixture(scope="module")
def zsh_home(tmp_path_factory):
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    return tmp_path_factory.mktemp("zsh")


def test_zsh_commands_and_options(zsh_home):
    assert sorted(zsh_complete(zsh_home, "mxfb ")) == sorted(commands())
    assert zsh_complete(zsh_home, "mxfb st") == ["status"]
    assert set(zsh_complete(zsh_home, "mxfb -")) >= {"-C", "-h", "-V"}
    import concurrent.futures
    cmds = commands()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda c: zsh_complete(zsh_home, "mxfb %s -" % c),
                          cmds))
    for cmd, offered in zip(cmds, got):
        assert set(offered) == {"-" + o for o in command_options(cmd)}, cmd
    assert set(zsh_complete(zsh_home, "mxfb-status -")) == \
        {"-" + o for o in command_options("status")}


def test_zsh_queue_ids_and_domains(zsh_home, mx):
    ids = [mx.inject("a@example.org", ["u@example.test"], b"Subject: x\n\ny\n")
           for _ in range(2)]
    env = {"MXFB_CONFIG": mx.conf}
    for cmd in ("hold", "status", "delete"):
        assert sorted(zsh_complete(zsh_home, "%s %s " % (MXFB, cmd), env)) \
            == sorted(ids), cmd
    assert zsh_complete(zsh_home, "mxfb flush -d ", env) == ["example.test"]
