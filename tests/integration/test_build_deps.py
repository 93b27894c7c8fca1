"""The Makefile's dependency guard: plain `make` asks only for the
build's libraries, the test goals for cmocka too.  A pkg-config that
reports cmocka missing stands in for a build-only host; MAKE=false
stands in for `make deps`, so that nothing is ever installed here."""
import os
import subprocess

from conftest import REPO


def make(tmp_path, *goals):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "pkg-config"
    fake.write_text('#!/bin/sh\nfor a; do [ "$a" = cmocka ] && exit 1; done\n'
                    'exec /usr/bin/pkg-config "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    out = tmp_path / "o"
    return subprocess.run(
        ["make", "-n", "MAKE=false", "O=%s" % out, "BIN=%s" % (out / "mxfb")]
        + list(goals), cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=60)


def test_plain_make_needs_no_test_library(tmp_path):
    p = make(tmp_path)
    assert p.returncode == 0, p.stdout
    assert b"dependencies missing" not in p.stdout


def test_unit_tests_need_cmocka(tmp_path):
    p = make(tmp_path, "unit")
    assert p.returncode != 0
    assert b"dependencies missing" in p.stdout
    assert b"install the packages above" in p.stdout
