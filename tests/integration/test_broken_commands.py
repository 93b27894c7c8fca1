"""A broken command fails its tests instead of skipping them (issue 12).
The integration tests once carried helpers that skipped a test when a
command said "not built yet" (the placeholders of the first issues), and
test_surgery skipped its held-message tests whenever `flush -h` or
`bounce -h` did not exit 0.  Here the tests themselves are run against a
binary whose flush, bounce and status are broken in just that way, and
must fail; and no test file keeps such an escape or cites a document
that is not in the tree."""
import os
import re
import subprocess
import sys

from conftest import MXFB, REPO

HERE = os.path.dirname(os.path.abspath(__file__))

# Each of these once turned a broken command into a skip.
ONCE_SKIPPED = [
    ("test_surgery.py", "test_held_message_never_flushed"),
    ("test_surgery.py", "test_held_message_never_bounced"),
    ("test_config.py", "test_bad_log_value"),
    ("test_config.py", "test_missing_config_file"),
    ("test_bounce_flush.py", "test_dsn_via_smarthost_with_8bitmime"),
]


def broken_binary(tmp_path):
    """mxfb, except that flush, bounce and status say what the old
    placeholders said and fail."""
    path = tmp_path / "mxfb-broken"
    path.write_text(
        "#!/bin/sh\n"
        "for a in \"$@\"; do\n"
        "    case $a in\n"
        "    flush|bounce|status)\n"
        "        echo \"mxfb: $a: not built yet\" >&2\n"
        "        exit 70;;\n"
        "    esac\n"
        "done\n"
        "exec '%s' \"$@\"\n" % MXFB)
    path.chmod(0o755)
    return str(path)


def test_broken_command_fails_its_tests(tmp_path):
    names = {t for _, t in ONCE_SKIPPED}
    for name in names:
        found = [f for f, t in ONCE_SKIPPED if t == name]
        src = open(os.path.join(HERE, found[0])).read()
        assert "def %s(" % name in src, (found[0], name)
    env = dict(os.environ, MXFB_BIN=broken_binary(tmp_path))
    files = sorted({f for f, _ in ONCE_SKIPPED})
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p",
         "no:cacheprovider", "-k", " or ".join(sorted(names))] + files,
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=300)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 1, out
    summary = out.strip().splitlines()[-1]
    assert re.search(r"\b%d failed\b" % len(ONCE_SKIPPED), summary), out
    assert "skipped" not in summary and "passed" not in summary, out


def test_no_placeholder_escape_left():
    """No test skips on a command's "not built yet" or cites the
    SPEC file that never was in the tree."""
    me = os.path.basename(__file__)
    for d in ("tests/integration", "tests/unit"):
        for f in sorted(os.listdir(os.path.join(REPO, d))):
            if f == me or not f.endswith((".py", ".c")):
                continue
            text = open(os.path.join(REPO, d, f),
                        errors="replace").read()
            assert "not built yet" not in text, f
            assert not re.search(r"\bSPEC\b", text), f
