"""A real OpenID provider for the API tests: tests/oidc/provider.mjs (the npm package
oidc-provider) on loopback, with the signing keys made here (python3-cryptography).

    p = Provider(directory).start()
    p.issuer, p.audience          # what werklabd is configured with
    p.token("werklab-admin")      # a real access token: client credentials + resource indicator
    p.mint({"sub": "t-1"})        # a token signed with the provider's current key
    p.rotate()                    # a new signing key (new kid); the old one is still published
    p.stop()

Clients (each with claims the provider adds to its tokens): werklab-admin, werklab-staff,
werklab-partner (municipalities ["GM0297"]), werklab-trainer, werklab-norole (roles []).
"""

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from node_process import NodeProcess

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "..", "oidc")
AUDIENCE = "https://werklabd.test/api"
ROLE_MAP = "lsa-admin=admin,lsa-staff=staff,lsa-partner=partner,lsa-trainer=trainer"
MUNICIPALITIES_CLAIM = "municipalities"
CLIENTS = {
    "werklab-admin": {"roles": ["lsa-admin"]},
    "werklab-staff": {"roles": ["lsa-staff"]},
    "werklab-partner": {"roles": ["lsa-partner"], "municipalities": ["GM0297"]},
    "werklab-trainer": {"roles": ["lsa-trainer"]},  # sub is the client id
    "werklab-norole": {"roles": []},
}
DROP = object()  # a claim or header value that removes it from a minted token


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(private_key, kid, private=True):
    key = private_key if private else private_key.public_key()
    d = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    d.pop("key_ops", None)  # oidc-provider 8 will not sign with a key whose key_ops say "sign"
    d.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return d


def install():
    """npm ci of the harness when it is missing (scripts/test does it before pytest)."""
    out = subprocess.run([os.path.join(HARNESS, "install")], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"tests/oidc/install failed:\n{out.stdout}\n{out.stderr}")


class Provider:
    def __init__(self, directory, audience=AUDIENCE, name="oidc"):
        self.dir = directory
        self.audience = audience
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys = []  # [(kid, private key)], the signing one first
        self.keys_path = os.path.join(directory, f"{name}-{self.port}-keys.json")
        self.config_path = os.path.join(directory, f"{name}-{self.port}.json")
        self.log_path = os.path.join(directory, f"{name}-{self.port}.log")
        self.proc = None
        self._add_key()

    # -------------------------------------------------------------- process

    def start(self, timeout=30):
        install()
        with open(self.config_path, "w") as f:
            json.dump({"port": self.port, "issuer": self.issuer, "audience": self.audience,
                       "keys": self.keys_path,
                       "clients": [{"client_id": c, "client_secret": self._secret(c),
                                    "claims": claims} for c, claims in CLIENTS.items()]}, f)
        self._write_keys()
        self.proc = NodeProcess("the OpenID provider", os.path.join(HARNESS, "provider.mjs"),
                                self.config_path, self.log_path, HARNESS)
        self.proc.start(timeout)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
        self.proc = None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -------------------------------------------------------------- keys

    def _add_key(self):
        self.keys.insert(0, (f"k-{uuid.uuid4().hex[:12]}", new_key()))

    def _write_keys(self):
        tmp = self.keys_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"keys": [_jwk(k, kid) for kid, k in self.keys]}, f)
        os.replace(tmp, self.keys_path)

    @property
    def kid(self):
        return self.keys[0][0]

    @property
    def private_key(self):
        return self.keys[0][1]

    def public_jwks(self):
        """The published key set as text (what a JWKS file holds)."""
        return json.dumps({"keys": [_jwk(k, kid, private=False) for kid, k in self.keys]})

    def public_pem(self):
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_jwk_text(self):
        return json.dumps(_jwk(self.private_key, self.kid, private=False))

    def rotate(self):
        """The provider signs with a new key from now on; the old ones stay published."""
        self._add_key()
        self._write_keys()
        self.proc.send_signal(signal.SIGHUP)
        self.proc.expect("reloaded", 30, fail_on="reload failed")
        return self.kid

    # -------------------------------------------------------------- tokens

    @staticmethod
    def _secret(client_id):
        return f"secret-of-{client_id}"

    def token(self, client_id):
        """A real access token of client_id: client credentials with resource = audience."""
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id,
                                       "client_secret": self._secret(client_id),
                                       "resource": self.audience, "scope": "api"}).encode()
        req = urllib.request.Request(self.issuer + "/token", data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        token = answer["access_token"]
        assert token.count(".") == 2, f"not a JWT access token: {answer}"
        return token

    def mint(self, claims=None, *, header=None, key=None, **overrides):
        """A token signed with the provider's current key (or key, a private key of the test's),
        valid by default for a staff person: iss, aud, exp, iat, sub, client_id, roles
        ["lsa-staff"]; header alg RS256, typ at+jwt, kid of the current key. claims, header
        values and overrides replace those; DROP removes one."""
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + 300,
                   "sub": "werklab-minted", "client_id": "werklab-tests",
                   "jti": uuid.uuid4().hex, "roles": ["lsa-staff"]}
        payload.update(claims or {})
        payload.update(overrides)
        payload = {k: v for k, v in payload.items() if v is not DROP}
        head = {"typ": "at+jwt", "kid": self.kid if key is None else "foreign-key"}
        head.update(header or {})
        head = {k: v for k, v in head.items() if v is not DROP}
        return jwt.encode(payload, key or self.private_key, algorithm="RS256", headers=head)


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
