"""tests/funclen.sh, the function-length check `make funclen` runs over
cmd/, core/ and spool/ (issue 12 point 3: no function over 120 lines),
finds what it should: a KNF function body from a `{` in column 0 to a `}`
in column 0, named by the line before that starts with an identifier and
`(`; braces that are not in column 0 (blocks, struct and array
initializers) neither start nor end one."""
import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FUNCLEN = os.path.join(REPO, "tests", "funclen.sh")


def function(name, body_lines, args="void"):
    body = ["\tx++;"] * body_lines
    return "static int\n%s(%s)\n{\n%s\n}\n" % (name, args, "\n".join(body))


def run(tmp_path, text, *opts):
    src = tmp_path / "f.c"
    src.write_text(text)
    return subprocess.run(["sh", FUNCLEN] + list(opts) + [str(src)],
                          capture_output=True, text=True, timeout=30)


def test_at_the_limit_passes(tmp_path):
    p = run(tmp_path, function("short", 1) + function("long", 120))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == ""


def test_over_the_limit_is_named(tmp_path):
    text = "/* header */\n#include <x.h>\n\n" + function("ok", 3) + \
        function("too_long", 121, "int a,\n    int b")
    p = run(tmp_path, text)
    assert p.returncode == 1
    # The line of the opening brace: 3 + 7 (ok) + 3 (type, name, args).
    assert p.stdout == "%s:14: too_long: 121 lines (most 120)\n" % \
        (tmp_path / "f.c"), p.stdout


def test_inner_braces_do_not_count(tmp_path):
    # A table and a block inside the body, braces not in column 0.
    text = ("static const int t[] = {\n\t1,\n\t2\n};\n\n" +
            "int\nf(void)\n{\n\tif (x) {\n" + "\t\tx++;\n" * 130 +
            "\t}\n}\n")
    p = run(tmp_path, text)
    assert p.returncode == 1
    assert ": f: 132 lines" in p.stdout, p.stdout


def test_limit_option(tmp_path):
    p = run(tmp_path, function("g", 11), "-m", "10")
    assert p.returncode == 1 and ": g: 11 lines (most 10)" in p.stdout
    p = run(tmp_path, function("g", 10), "-m", "10")
    assert p.returncode == 0


def test_usage_errors(tmp_path):
    assert run(tmp_path, "", "-m", "x").returncode == 2
    p = subprocess.run(["sh", FUNCLEN, str(tmp_path / "missing.c")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "cannot read" in p.stderr
