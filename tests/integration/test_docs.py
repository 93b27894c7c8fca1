"""The documentation keeps up with the code: every command (from the
dispatcher's table), every option (from the getopt strings in cmd/*.c) and
every configuration key (from the key table in core/config.c) appears in
README and mxfb.1, and commands and options in both shell completions.
The lists are read from the sources, so adding an option or a key without
documenting it fails here."""
import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Files of cmd/ that are not commands: the dispatcher and shared glue.
NOT_COMMANDS = {"main.c", "common.c"}
# Options every command has, documented once for all.
COMMON_OPTIONS = {"C", "h"}


def read(*path):
    with open(os.path.join(REPO, *path), encoding="utf-8") as f:
        return f.read()


def commands():
    """Command names from the dispatcher's table in cmd/main.c."""
    names = re.findall(r'\{\s*"([a-z]+)",\s*cmd_\1\s*,', read("cmd", "main.c"))
    assert len(names) >= 9, names
    return names


def _optstrings(src):
    out = []
    for m in re.finditer(r'getopt(?:_long)?\s*\(\s*argc\s*,\s*argv\s*,\s*'
                         r'("(?:[^"\\]|\\.)*"|\w+)', src):
        arg = m.group(1)
        if not arg.startswith('"'):
            d = re.search(r'#define\s+%s\s+("[^"]*")' % arg, src) or \
                re.search(r'\b%s\s*\[\]\s*=\s*("[^"]*")' % arg, src)
            assert d, "cannot resolve getopt string %s" % arg
            arg = d.group(1)
        out.append(arg.strip('"').lstrip("+-:"))
    return out


def command_options(cmd):
    """Option letters of a command, from its getopt string(s), including
    those of shared helpers it calls (cmd/queue_ops.c for hold...)."""
    src = read("cmd", cmd + ".c")
    strings = _optstrings(src)
    names = set(commands())
    for f in sorted(os.listdir(os.path.join(REPO, "cmd"))):
        if not f.endswith(".c") or f in NOT_COMMANDS or f[:-2] in names:
            continue
        helper = read("cmd", f)
        # style(9): a function's name starts its line.
        funcs = re.findall(r"^([a-z_][a-z0-9_]*)\(", helper, re.M)
        if any(re.search(r"\b%s\s*\(" % fn, src) for fn in funcs):
            strings += _optstrings(helper)
    assert strings, "no getopt string found for %s" % cmd
    return sorted({c for s in strings for c in s if c.isalnum()})


def global_options():
    return sorted({c for s in _optstrings(read("cmd", "main.c"))
                   for c in s if c.isalnum()})


def config_keys():
    """Key names from the table in core/config.c."""
    src = read("core", "config.c")
    start = src.index("keys[] = {")
    table = src[start:src.index("};", start)]
    keys = re.findall(r'\{\s*"([a-z0-9-]+)"\s*,', table)
    assert len(keys) >= 15, keys
    return keys


def man_text():
    """mxfb.1 with roff escapes for '-' undone."""
    return read("mxfb.1").replace("\\-", "-")


def man_synopsis(cmd):
    """The SYNOPSIS lines of one command in mxfb.1 (roff source)."""
    src = man_text()
    syn = src[src.index(".SH SYNOPSIS"):src.index(".SH DESCRIPTION")]
    blocks = re.split(r"\n\.br\n|\n\.PP\n", syn)
    mine = [b for b in blocks if re.match(r"\.B mxfb %s\b" % cmd, b.strip())]
    assert mine, "no SYNOPSIS entry for %s in mxfb.1" % cmd
    return "\n".join(mine)


def readme_command_row(cmd):
    rows = [l for l in read("README").splitlines()
            if re.match(r"\|[^|]*`%s\b" % cmd, l)]
    assert rows, "README: no row for %s in the command table" % cmd
    return "\n".join(rows)


def case_arm(text, cmd, end):
    """The body of the shell `case` arm that names cmd (bash or zsh)."""
    m = re.search(r"^\s*(?:[\w|-]*\|)?%s(?:\|[\w|-]*)?\)\s*$" % cmd, text, re.M)
    assert m, "no case arm for %s" % cmd
    rest = text[m.end():]
    return rest[:rest.index(end)]


@pytest.mark.parametrize("cmd", commands())
def test_command_documented(cmd):
    assert re.search(r"^\.SS .*\b%s\b" % cmd, man_text(), re.M), \
        "mxfb.1: no section for %s" % cmd
    readme_command_row(cmd)
    for path in (("completions", "mxfb.bash"), ("completions", "_mxfb")):
        assert re.search(r"\bmxfb-%s\b" % cmd, read(*path)), (path, cmd)
        assert re.search(r"\b%s\b" % cmd, read(*path))


@pytest.mark.parametrize("cmd", commands())
def test_options_documented(cmd):
    opts = command_options(cmd)
    assert set(opts) >= COMMON_OPTIONS, (cmd, opts)
    syn = man_synopsis(cmd)
    row = readme_command_row(cmd)
    bash = case_arm(read("completions", "mxfb.bash"), cmd, ";;")
    zsh = case_arm(read("completions", "_mxfb"), cmd, ";;")
    for o in opts:
        if o not in COMMON_OPTIONS:
            assert re.search(r"-%s\b" % o, syn), "mxfb.1 SYNOPSIS: %s -%s" % (cmd, o)
            assert re.search(r"^\.TP\n\.B[IR]? -%s\b" % o, man_text(), re.M), \
                "mxfb.1: no .TP entry for %s -%s" % (cmd, o)
            assert re.search(r"-%s\b" % o, row), "README: %s -%s" % (cmd, o)
        assert re.search(r"(^|[\s\"])-%s(\s|\")" % o, bash), \
            "bash completion: %s -%s" % (cmd, o)
        assert re.search(r"'(\([^)]*\))?-%s\[" % o, zsh + zsh_common()), \
            "zsh completion: %s -%s" % (cmd, o)


def zsh_common():
    src = read("completions", "_mxfb")
    m = re.search(r"common=\((.*?)\n\s*\)", src, re.S)
    return m.group(1) if m else ""


def test_global_options_documented():
    opts = global_options()
    assert set(opts) >= {"C", "h", "V"}
    man = man_text()
    readme = read("README")
    bash = read("completions", "mxfb.bash")
    zsh = read("completions", "_mxfb")
    for o in opts:
        assert re.search(r"^\.B[IR]? -%s\b" % o, man, re.M), "mxfb.1: -%s" % o
        assert "-%s" % o in readme, "README: -%s" % o
        assert re.search(r"-%s\b" % o, bash), "bash: -%s" % o
        assert re.search(r"-%s\b" % o, zsh), "zsh: -%s" % o


@pytest.mark.parametrize("key", config_keys())
def test_config_key_documented(key):
    assert re.search(r"^\|\s*`%s[ `]" % re.escape(key), read("README"), re.M), \
        "README: no row for configuration key %s" % key
    assert re.search(r"^\.B[IR]? %s\b" % re.escape(key), man_text(), re.M), \
        "mxfb.1: no entry for configuration key %s" % key


def test_json_fields_documented():
    """The status -j field names outside scripts rely on (the interface
    contract): each in mxfb.1 and README."""
    man = man_text()
    readme = read("README")
    for field in ("id", "size", "arrival", "sender", "held", "next_retry",
                  "recipients", "addr", "state", "attempts", "last_error",
                  "domain", "messages", "bytes", "oldest"):
        assert re.search(r"^\.B[IR]? %s\b" % field, man, re.M) or \
            ".BR %s ," % field in man, "mxfb.1: JSON field %s" % field
        assert '"%s"' % field in readme, "README: JSON field %s" % field


def test_readme_deployment_examples():
    readme = read("README")
    for needle in ("inetd.conf", "xinetd", "Accept=yes", "tcpserver",
                   "*/5 * * * *  mxfb flush", "mxfb bounce",
                   "mxfb probe -q -F", "ETRN", "make check", "make asan",
                   "make deps", "make demo"):
        assert needle.replace("  ", " ") in readme.replace("  ", " "), needle


def test_man_page_renders_without_warnings():
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    p = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(REPO, "mxfb.1")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    for sect in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "CONFIGURATION",
                 "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert re.search(r"^\.SH \"?%s\"?$" % sect, read("mxfb.1"), re.M), sect


def test_every_environment_variable_documented():
    """No hidden switches: every variable the sources read with getenv()
    has an entry in mxfb.1's ENVIRONMENT section."""
    names = set()
    for d in ("cmd", "core", "spool"):
        for f in os.listdir(os.path.join(REPO, d)):
            if f.endswith(".c"):
                names |= set(re.findall(r'getenv\s*\(\s*"(\w+)"',
                                        read(d, f)))
    assert "MXFB_CONFIG" in names and "TCPREMOTEIP" in names, names
    src = read("mxfb.1")
    env = src[src.index(".SH ENVIRONMENT"):src.index(".SH FILES")]
    heads = " ".join(re.findall(r"^\.BR? (.*)$", env, re.M))
    documented = set(re.findall(r"\b[A-Z][A-Z_]+\b", heads))
    missing = sorted(n for n in names if n not in documented)
    assert not missing, "not in mxfb.1 ENVIRONMENT: %s" % missing
