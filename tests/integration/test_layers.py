"""The include rule (HACKING): tests/layers.sh passes on the tree as it
is, and on a copy of it with one include from a higher layer it fails,
naming the file, the line, the header and both layers."""
import os
import shutil
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKER = os.path.join(REPO, "tests", "layers.sh")


def run(tree):
    return subprocess.run(["sh", CHECKER, tree], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def tree(tmp_path):
    """A copy of the sources the rule covers."""
    for d in ("core", "spool", "cmd"):
        shutil.copytree(os.path.join(REPO, d), tmp_path / d)
    return tmp_path


def add_include(path, header):
    """Put #include "header" after the file's first include line; its
    line number (1-based)."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    i = next(n for n, l in enumerate(lines) if l.startswith("#include"))
    lines.insert(i + 1, '#include "%s"\n' % header)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return i + 2


def test_tree_clean():
    r = run(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("path,header,above,below", [
    ("core/dsn.h", "spool/spool.h", "storage", "protocol"),
    ("core/mail/envelope.c", "core/config.h", "protocol", "model"),
    ("core/util.h", "core/mail/queue_id.h", "model", "base"),
    ("spool/spool.c", "cmd/cmd.h", "commands", "storage"),
    ("core/log.c", "cmd/cmd.h", "commands", "base"),
])
def test_violation_reported(tree, path, header, above, below):
    line = add_include(tree / path, header)
    r = run(str(tree))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout == "%s:%d: includes %s (layer %s above %s)\n" % (
        path, line, header, above, below)


@pytest.mark.parametrize("path,header", [
    ("core/dsn.h", "core/config.h"),        # same layer
    ("spool/spool.c", "core/mail/address.h"),  # lower
    ("cmd/main.c", "spool/spool.h"),        # lower
    ("core/mail/envelope.c", "core/log.h"),  # base
])
def test_allowed(tree, path, header):
    add_include(tree / path, header)
    r = run(str(tree))
    assert r.returncode == 0, r.stdout + r.stderr


def test_make_check_runs_it():
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        mk = f.read()
    assert "\nlayers:" in mk
    check = next(l for l in mk.splitlines() if l.startswith("check:"))
    assert "layers" in check.split()
