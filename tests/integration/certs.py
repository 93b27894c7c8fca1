"""Test certificates made with the `openssl` command into a directory.

Certs(dir) makes a private CA (ca.pem); issue() signs server certificates
for test host names: valid, expired (-days -1: notAfter is yesterday),
expiring soon (-days 10), or for the wrong name.  Keys are written 0600,
as `receive` insists.  Each issued certificate also gets a chain file
(leaf then CA) and its DANE-EE(3) SPKI(1) SHA-256(1) TLSA digest.
"""

import hashlib
import os
import subprocess


def _run(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], p.stderr))
    return p.stdout


class Cert:
    def __init__(self, cert, key, chain, der_spki_sha256, der_cert_sha256):
        self.cert = cert            # leaf only
        self.key = key
        self.chain = chain          # leaf + CA
        self.spki_sha256 = der_spki_sha256
        self.cert_sha256 = der_cert_sha256


class Certs:
    def __init__(self, directory, ca_name="mxfb test CA"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.ca_key,
             "-out", self.ca, "-days", "30", "-subj", "/CN=" + ca_name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=self.dir)
        os.chmod(self.ca_key, 0o600)
        der = _run("x509", "-in", self.ca, "-outform", "PEM", cwd=self.dir)
        self.ca_sha256 = hashlib.sha256(_pem_to_der(der)).hexdigest()

    def issue(self, label, names, days=30):
        """A server certificate for names (the first is the CN)."""
        key = os.path.join(self.dir, label + ".key")
        csr = os.path.join(self.dir, label + ".csr")
        crt = os.path.join(self.dir, label + ".pem")
        ext = os.path.join(self.dir, label + ".ext")
        chain = os.path.join(self.dir, label + ".chain.pem")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", csr, "-subj",
             "/CN=" + names[0], cwd=self.dir)
        os.chmod(key, 0o600)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" %
                    ",".join("DNS:" + n for n in names))
            f.write("extendedKeyUsage=serverAuth\n")
        _run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
             self.ca_key, "-CAcreateserial", "-days", str(days), "-out", crt,
             "-extfile", ext, cwd=self.dir)
        with open(chain, "w") as out:
            for p in (crt, self.ca):
                with open(p) as f:
                    out.write(f.read())
        pub = subprocess.run(
            ["openssl", "x509", "-in", crt, "-noout", "-pubkey"],
            capture_output=True, check=True).stdout
        spki = subprocess.run(
            ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
            capture_output=True, check=True).stdout
        with open(crt) as f:
            cert_der = _pem_to_der(f.read())
        return Cert(crt, key, chain, hashlib.sha256(spki).hexdigest(),
                    hashlib.sha256(cert_der).hexdigest())

    def valid(self, *names):
        return self.issue("valid-" + names[0], list(names))

    def expired(self, *names):
        return self.issue("expired-" + names[0], list(names), days=-1)

    def expiring(self, *names, days=10):
        return self.issue("expiring-" + names[0], list(names), days=days)


def _pem_to_der(pem):
    import base64
    body = [l for l in pem.splitlines()
            if l and not l.startswith("-----")]
    return base64.b64decode("".join(body))
