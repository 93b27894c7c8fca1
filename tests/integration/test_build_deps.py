"""The Makefile's dependency guard: plain `make` asks only for the
build's libraries, the test goals for cmocka too.  A pkg-config that
reports cmocka missing stands in for a build-only host; MAKE=false
stands in for `make deps`, so that nothing is ever installed here.
The default build links the system's shared libraries (security
updates); STATIC=1 and STATIC=full are options."""
import os
import re
import subprocess

import pytest

from conftest import MXFB, REPO


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


def link_line(p):
    """The command that links the binary, from `make -n` output."""
    lines = [l for l in p.stdout.decode().splitlines()
             if " -o " in l and "libmxfb.a" in l and " -c " not in l]
    assert len(lines) == 1, p.stdout.decode()
    return lines[0]


def test_default_links_shared_libraries(tmp_path):
    """Security updates reach mxfb: by default OpenSSL, ldns, libsodium
    and libbsd are the system's shared libraries; the static builds are
    options."""
    p = make(tmp_path)
    assert p.returncode == 0, p.stdout
    line = link_line(p)
    for lib in ("-lssl", "-lcrypto", "-lldns", "-lsodium", "-lbsd"):
        assert lib in line.split(), (lib, line)
    assert "-Bstatic" not in line and "-static" not in line.split(), line
    p = make(tmp_path, "STATIC=1")
    assert p.returncode == 0, p.stdout
    assert "-Wl,-Bstatic -lldns -lssl -lcrypto -lsodium -lbsd -lmd " \
        "-Wl,-Bdynamic" in link_line(p)
    p = make(tmp_path, "STATIC=full")
    assert p.returncode == 0, p.stdout
    assert "-static -no-pie" in link_line(p)


def test_binary_loads_system_libssl():
    """The binary under test, when built the default way (the Makefile
    says how it built it), loads libssl and the others from the system."""
    if os.environ.get("MXFB_BUILD_STATIC"):
        pytest.skip("built with STATIC=%s" % os.environ["MXFB_BUILD_STATIC"])
    p = subprocess.run(["readelf", "-d", MXFB], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        p.stdout.decode())
    for lib in ("libssl.so", "libcrypto.so", "libldns.so", "libsodium.so",
                "libbsd.so"):
        assert any(n.startswith(lib) for n in needed), (lib, needed)
