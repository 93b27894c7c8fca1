"""DKIM signing (issue 16 point 5), checked by an independent verifier.

core/dkim.c signs through tests/tools/dkim_sign, a helper the Makefile
builds for the tests only (the shipped binary has no switch for it), with
RSA and Ed25519 keys made here by openssl; dkimpy (Debian python3-dkim,
`dkim.verify` with the public key served by a DNS function) checks every
signature on a set of messages (multipart, folded headers, trailing blank
lines, empty body, no body at all, 8-bit, long lines, many recipients).
A body or a signed header changed after signing, or a second From added,
fails verification; an unsigned header added does not.  The README's own
commands make the keys and the TXT records that dkimpy checks against,
and its `dkim` lines pick the keys by the From domain.  Bad `dkim` lines
stop the real binary with file:line, exit 78; a process not started as
root that is denied a key (the flush ETRN starts) still runs."""
import os
import re
import subprocess

import dkim
import pytest

from conftest import MXFB, REPO, USER, give_to_user, reachable

T = 1767225600   # t= of every signature here


def signer():
    """The helper: $MXFB_DKIM_SIGN (make integration sets it), else the
    one beside the binary's build, (re)made in the default build."""
    path = os.environ.get("MXFB_DKIM_SIGN")
    if path:
        return path
    bindir = os.path.dirname(os.path.abspath(MXFB))
    if bindir == REPO:
        subprocess.run(["make", "-s", "build/tests/dkim_sign"], cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL, timeout=300)
        return os.path.join(REPO, "build", "tests", "dkim_sign")
    path = os.path.join(bindir, "tests", "dkim_sign")
    assert os.access(path, os.X_OK), \
        "%s missing: make O=%s %s" % (path, bindir, path)
    return path


SIGN = signer()


def run(args, input=None, user=None):
    if user is not None:
        args = ["setpriv", "--reuid=%s" % user, "--regid=nogroup",
                "--clear-groups"] + args
    return subprocess.run(args, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def genkey(path, *args, mode=0o600):
    subprocess.run(["openssl", "genpkey", "-out", path] + list(args),
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    os.chmod(path, mode)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """{"rsa": (selector, path), "ed": ...} and the DNS records of both,
    as dkim_dns_record prints them."""
    d = tmp_path_factory.mktemp("keys")
    out = {"rsa": ("rsa2048", genkey(str(d / "rsa.key"), "-algorithm",
                                     "RSA", "-pkeyopt",
                                     "rsa_keygen_bits:2048")),
           "ed": ("ed1", genkey(str(d / "ed.key"), "-algorithm",
                                "ED25519"))}
    records = {}
    for sel, path in out.values():
        p = run([SIGN, "-r", "example.org", sel, path])
        assert p.returncode == 0, p.stderr
        rec, name = p.stdout.decode().splitlines()
        records[name + "."] = rec.encode()
    out["dns"] = records
    return out


def dnsfunc(records):
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name if name.endswith(".") else name + ".")
    return lookup


def sign(keys, kind, msg):
    sel, path = keys[kind]
    p = run([SIGN, "example.org", sel, path, str(T)], input=msg)
    assert p.returncode == 0, p.stderr
    return p.stdout


def verify_with(records, signed, idx=0):
    """dkimpy's verdict on signature idx (dkim.verify's, which checks the
    first only: a failure is False, not an exception)."""
    try:
        return dkim.DKIM(signed).verify(idx=idx, dnsfunc=dnsfunc(records))
    except dkim.DKIMException:
        return False


def verify(keys, signed, idx=0):
    return verify_with(keys["dns"], signed, idx)


HEAD = (b"From: Alice Example <alice@example.org>\r\n"
        b"To: bob@example.net\r\n"
        b"Subject: a test\r\n"
        b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        b"Message-ID: <1.2@example.org>\r\n")

MESSAGES = {
    "plain": HEAD + b"\r\nHello Bob,\r\n\r\nsee you.\r\n",
    "multipart": HEAD +
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    b"\r\nThis is MIME.\r\n--b1\r\nContent-Type: text/plain; "
    b"charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\nJ=C3=B6rg says hi  \r\n--b1\r\nContent-Type: application/"
    b"octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n--b1--\r\n",
    "folded": b"From: Alice\r\n <alice@example.org>\r\n"
    b"To: bob@example.net,\r\n\tcarol@example.net,\r\n   dave@example.net\r\n"
    b"Subject:   several\t\t spaces\r\n and  folding \r\n\tover lines  \r\n"
    b"Cc: e@example.net\r\n"
    b"\r\nbody  with \t inner   space \t\r\n\tand a tab line\r\n",
    "trailing_blank_lines": HEAD + b"\r\nlast words\r\n\r\n\r\n \r\n\t\r\n",
    "empty_body": HEAD + b"\r\n",
    "no_body_at_all": HEAD,
    "eight_bit": b"From: J\xc3\xb6rg <joerg@example.org>\r\n"
    b"To: b@example.net\r\nSubject: Gr\xc3\xbc\xc3\x9fe \xe2\x82\xac\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 \xff\xfe\r\n",
    "long_lines": HEAD.replace(b"a test", b"long " + b"s" * 900) +
    b"\r\n" + b"x" * 998 + b"\r\n" + (b"y " * 400) + b"\r\n",
    "many_headers": HEAD +
    b"To: second@example.net\r\nTo: third@example.net\r\n"
    b"Cc: c1@example.net\r\nReply-To: <r@example.org>\r\n"
    b"In-Reply-To: <0@example.net>\r\nReferences: <0@example.net>\r\n"
    b"X-Mailer: not signed\r\n\r\nbody\r\n",
    "no_final_crlf": HEAD + b"\r\nno line end at the end",
}


def tamper_body(msg):
    i = msg.find(b"\r\n\r\n")
    if i == -1:
        return msg + b"\r\nadded\r\n"
    m = re.search(rb"[A-Za-z]", msg[i + 4:])
    if m is None:
        return msg + b"added\r\n"
    j = i + 4 + m.start()
    return msg[:j] + msg[j:j + 1].swapcase() + msg[j + 1:]


def tamper_header(msg):
    if b"\r\nSubject:" in msg:
        return msg.replace(b"\r\nSubject:", b"\r\nSubject: Re:", 1)
    return msg.replace(b"From: ", b"From: X ", 1)


def second_from_below(msg):
    i = msg.find(b"\r\n\r\n")
    i = len(msg) - 2 if i == -1 else i
    return msg[:i + 2] + b"From: mallory@example.org\r\n" + msg[i + 2:]


@pytest.mark.parametrize("kind", ["rsa", "ed"])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_dkimpy_verifies(keys, kind, name):
    msg = MESSAGES[name]
    sig = sign(keys, kind, msg)
    assert sig.startswith(b"DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; "
                          b"d=example.org; s=%s;" % (
                              b"rsa-sha256" if kind == "rsa" else
                              b"ed25519-sha256", keys[kind][0].encode()))
    assert b" t=%d;" % T in sig.replace(b"\t", b" ")
    assert verify(keys, sig + msg), (name, sig)
    # What the signature covers cannot change...
    assert not verify(keys, sig + tamper_body(msg))
    assert not verify(keys, sig + tamper_header(msg))
    # ...nor can a second From be added, above or below (dkimpy adds a
    # From of its own when verifying, bug#644046, so the oversigning
    # itself is shown by h=: test_h_lists_every_instance).
    assert not verify(keys, b"From: mallory@example.org\r\n" + sig + msg)
    assert not verify(keys, sig + second_from_below(msg))
    # A header outside h= may be added in transit (Received, say).
    assert verify(keys, b"Received: from x by y; " + b"z\r\n" + sig + msg)


def test_h_lists_every_instance(keys):
    sig = sign(keys, "ed", MESSAGES["many_headers"])
    h = re.search(rb"h=([^;]*);", sig).group(1)
    h = re.sub(rb"\s", b"", h)
    assert h == (b"from:from:to:to:to:cc:subject:date:message-id:"
                 b"reply-to:in-reply-to:references"), h


def readme_dkim_blocks():
    with open(os.path.join(REPO, "README"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## DKIM\n", 1)[1].split("\n## ", 1)[0]
    blocks, cur = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("    "):
            cur.append(line[4:])
        elif cur:
            blocks.append("\n".join(cur) + "\n")
            cur = []
    return blocks


def test_readme_commands_make_keys_and_records(tmp_path):
    """The README's key creation and TXT record commands, run as they are
    (but in a temp dir for /etc/mxfb/), give records dkimpy checks mxfb's
    signatures against; the records are dkim_dns_record's; the README's
    dkim lines sign with both keys of the From domain, and nothing else."""
    blocks = readme_dkim_blocks()
    make = [b for b in blocks if "genpkey" in b]
    conf = [b for b in blocks if b.startswith("dkim ")]
    recs = [b for b in blocks if " TXT " in b]
    assert len(make) == 1 and len(conf) == 1 and len(recs) == 1, blocks
    here = str(tmp_path) + "/"
    script = (make[0] + recs[0]).replace("/etc/mxfb/", here)
    p = subprocess.run(["sh", "-e", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, p.stderr
    records = {}
    for line in p.stdout.decode().splitlines():
        m = re.fullmatch(r'(\S+) TXT "(v=DKIM1; k=(?:rsa|ed25519); '
                         r'p=[A-Za-z0-9+/=]+)"', line)
        assert m, line
        records[m.group(1) + "."] = m.group(2).encode()
    assert len(records) == 2, records
    lines = conf[0].replace("/etc/mxfb/", here).splitlines()
    for line in lines:
        _, domain, sel, path = line.split()
        assert os.stat(path).st_mode & 0o777 == 0o600
        p = run([SIGN, "-r", domain, sel, path])
        assert p.returncode == 0, p.stderr
        rec, name = p.stdout.decode().splitlines()
        assert records[name + "."] == rec.encode()
    cf = tmp_path / "mxfb.conf"
    cf.write_text("\n".join(lines) + "\n")
    msg = MESSAGES["multipart"]
    p = run([SIGN, "-c", str(cf), str(T)], input=msg)
    assert p.returncode == 0, p.stderr
    fields = p.stdout
    assert fields.count(b"DKIM-Signature:") == 2
    assert fields.index(b"a=ed25519-sha256") < fields.index(b"a=rsa-sha256")
    signed = fields + msg
    for idx in (0, 1):
        assert verify_with(records, signed, idx)
        assert not verify_with(records, tamper_body(signed), idx)
    # Another domain, two From fields, two addresses: not signed.
    for other in (msg.replace(b"@example.org>", b"@example.com>", 1),
                  b"From: a@example.org\r\n" + msg,
                  msg.replace(b"<alice@example.org>",
                              b"<alice@example.org>, b@example.org", 1)):
        p = run([SIGN, "-c", str(cf), str(T)], input=other)
        assert p.returncode == 0 and p.stdout == b"", (other, p)


@pytest.fixture
def badkeys(tmp_path_factory):
    d = tmp_path_factory.mktemp("badkeys")
    reachable(str(d))
    k = {}
    k["ed"] = genkey(str(d / "ed.key"), "-algorithm", "ED25519")
    k["ed640"] = genkey(str(d / "ed640.key"), "-algorithm", "ED25519",
                        mode=0o640)
    k["ed644"] = genkey(str(d / "ed644.key"), "-algorithm", "ED25519",
                        mode=0o644)
    k["ed660"] = genkey(str(d / "ed660.key"), "-algorithm", "ED25519",
                        mode=0o660)
    k["rsa768"] = genkey(str(d / "rsa768.key"), "-algorithm", "RSA",
                         "-pkeyopt", "rsa_keygen_bits:768")
    k["ec"] = genkey(str(d / "ec.key"), "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:P-256")
    k["secret"] = genkey(str(d / "secret.key"), "-algorithm", "ED25519",
                         "-aes256", "-pass", "pass:secret")
    junk = d / "junk.key"
    junk.write_text("not a key\n")
    os.chmod(str(junk), 0o600)
    k["junk"] = str(junk)
    k["dir"] = str(d)
    return k


BAD = [
    (["example.org s1 {ed644}"], "permissions 0644 are too open"),
    (["example.org s1 {ed660}"], "permissions 0660 are too open"),
    (["example.org s1 {dir}/missing.key"], "No such file or directory"),
    (["example.org s1 {dir}"], "not a regular file"),
    (["example.org s1 {junk}"], "no usable PEM private key"),
    (["example.org s1 {secret}"], "passphrase-protected"),
    (["example.org s1 {rsa768}"], "RSA key of 768 bits, fewer than 1024"),
    (["example.org s1 {ec}"], "neither an RSA nor an Ed25519"),
    (["example.org s1"], "dkim: expected DOMAIN SELECTOR KEYFILE"),
    (["example.org s1 {ed} extra"], "dkim: expected DOMAIN SELECTOR"),
    (["-bad.org s1 {ed}"], "invalid domain"),
    (["example.org a_b {ed}"], "invalid selector"),
    (["example.org s1 {ed}", "EXAMPLE.ORG S1 {ed640}"],
     "dkim: duplicate domain example.org selector s1 (first on line %d)"),
]


@pytest.mark.parametrize("lines,reason", BAD,
                         ids=[r for _, r in BAD])
def test_bad_dkim_lines_stop_commands(mx, badkeys, lines, reason):
    first = len(mx.base_lines()) + 1
    mx.config(*["dkim " + l.format(**badkeys) for l in lines])
    if "%d" in reason:
        reason = reason % first
    for cmd in (["status"], ["inject", "-f", "a@x.test", "u@example.test"]):
        p = mx.run(*cmd, input=b"Subject: x\r\n\r\nx\r\n")
        err = p.stderr.decode()
        assert p.returncode == 78, err
        assert "%s:%d: " % (mx.conf, first + len(lines) - 1) in err, err
        assert reason in err, err


def test_good_keys_load_before_the_switch(mx, badkeys):
    """Root-only keys (600 and 640 root:root) with `user nobody`: read
    before the switch, every command runs; one a second selector for the
    same domain, another domain with the same selector."""
    mx.config("dkim example.org s1 %s" % badkeys["ed"],
              "dkim example.org s2 %s" % badkeys["ed640"],
              "dkim other.test s1 %s" % badkeys["ed"])
    assert os.stat(badkeys["ed"]).st_uid == 0
    mx.inject("a@x.test", ["u@example.test"], "Subject: x\r\n\r\nx\r\n")
    p = mx.run("status")
    assert p.returncode == 0, p.stderr


def test_not_root_denied_key_still_runs(mx, badkeys):
    """Started as `user` (as the flush ETRN starts is), a command denied
    a root-only key loads the configuration; signing with that key is
    what fails.  A key the user may read but others too is still 78."""
    mx.config("dkim example.org s1 %s" % badkeys["ed"])
    mx.inject("a@x.test", ["u@example.test"], "Subject: x\r\n\r\nx\r\n")
    env = mx.env()
    p = subprocess.run(["setpriv", "--reuid=%s" % USER, "--regid=nogroup",
                        "--clear-groups", MXFB, "status"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    p = run([SIGN, "-c", mx.conf, str(T)], user=USER,
            input=b"From: a@other.test\r\n\r\nx\r\n")
    assert p.returncode == 0 and p.stdout == b"", p.stderr
    p = run([SIGN, "-c", mx.conf, str(T)], user=USER,
            input=b"From: a@example.org\r\n\r\nx\r\n")
    assert p.returncode == 1, p.stderr
    assert b"Permission denied (not started as root)" in p.stderr
    give_to_user(badkeys["ed644"])
    mx.config("dkim example.org s1 %s" % badkeys["ed644"])
    p = subprocess.run(["setpriv", "--reuid=%s" % USER, "--regid=nogroup",
                        "--clear-groups", MXFB, "status"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    assert p.returncode == 78, p.stderr
    assert b"permissions 0644 are too open" in p.stderr
