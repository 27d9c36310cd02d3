"""Who may open a Converse stream: a bearer token in gRPC metadata, checked before any work starts.

Either credential is accepted where configured:

- a static API key, one per line of a file (blank lines and ``#`` comments ignored);
- a JWT signed by a key of a JWKS file (asymmetric algorithms only), its expiry required and
  its issuer and audience checked when configured.

Tokens never reach a log or an error message: a caller is named by its JWT subject or by a
short hash of its key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt

from voice_agent.errors import Unauthenticated

# Never HS* (a public JWKS would be its secret) and never "none".
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class Caller:
    name: str  # "key:<hash prefix>" or "jwt:<subject>", for logs


def read_api_keys(path: str | Path) -> list[str]:
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
            return token.strip()
    raise Unauthenticated("missing credentials: send 'authorization: Bearer <token>' in the call's metadata")


class Authenticator:
    def __init__(
        self, api_keys: Iterable[str] = (), jwks: dict | None = None, *, issuer: str = "", audience: str = ""
    ) -> None:
        self._keys = [key.encode() for key in api_keys]
        self._jwks = jwt.PyJWKSet.from_dict(jwks) if jwks else None
        self._issuer = issuer or None
        self._audience = audience or None
        if not self._keys and self._jwks is None:
            raise ValueError("an Authenticator needs API keys, a JWKS, or both")

    @classmethod
    def from_files(cls, api_keys_file: str = "", jwks_file: str = "", **claims: str) -> Authenticator | None:
        """None when neither file is configured: authentication is off."""
        if not api_keys_file and not jwks_file:
            return None
        keys = read_api_keys(api_keys_file) if api_keys_file else []
        if api_keys_file and not keys:
            raise ValueError(f"{api_keys_file} holds no API key")
        jwks = json.loads(Path(jwks_file).read_text()) if jwks_file else None
        return cls(keys, jwks, **claims)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
        token = bearer_token(metadata)
        given = token.encode()
        # Compared with every key in constant time: no early exit tells which prefix matched.
        if any([hmac.compare_digest(given, key) for key in self._keys]):
            return Caller("key:" + hashlib.sha256(given).hexdigest()[:8])
        if self._jwks is not None and token.count(".") == 2:
            return self._verify_jwt(token)
        raise Unauthenticated("invalid credentials")

    def _verify_jwt(self, token: str) -> Caller:
        assert self._jwks is not None
        try:
            header = jwt.get_unverified_header(token)
            key = next((k for k in self._jwks.keys if k.key_id == header.get("kid")), None)
            if key is None and len(self._jwks.keys) == 1 and "kid" not in header:
                key = self._jwks.keys[0]
            if key is None:
                raise Unauthenticated("the token's signing key is not in the JWKS")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(JWT_ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as error:  # its messages name the failed check, never the token
            raise Unauthenticated(f"invalid token: {error}") from None
        return Caller("jwt:" + str(claims.get("sub", "?")))
