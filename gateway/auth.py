"""Who may open a Converse stream: a bearer token in gRPC metadata, checked before any work starts.

Either credential is accepted where configured:

- a static API key, one per line of a file (blank lines and ``#`` comments ignored);
- a JWT signed by a key of a JWKS file (asymmetric algorithms only), its expiry required and
  its issuer and audience checked when configured.

A caller has a role: ``operator`` for a key of the admin key file, or a JWT whose role claim (``role``
by default; a string or a list) holds ``operator``; ``user`` otherwise. An operator reads every
caller's conversation records (docs/conversations.md); a user only its own.

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


USER, OPERATOR = "user", "operator"
DEFAULT_ROLE_CLAIM = "role"


@dataclass(frozen=True)
class Caller:
    name: str  # "key:<hash prefix>" or "jwt:<subject>", for logs; the owner of its conversations
    role: str = USER

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


#: Who calls when authentication is off: everyone is this one user, and sees every conversation made so.
ANONYMOUS = Caller("anonymous")


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
        self,
        api_keys: Iterable[str] = (),
        jwks: dict | None = None,
        *,
        issuer: str = "",
        audience: str = "",
        admin_keys: Iterable[str] = (),
        role_claim: str = DEFAULT_ROLE_CLAIM,
    ) -> None:
        self._keys = [key.encode() for key in api_keys]
        self._admin_keys = [key.encode() for key in admin_keys]
        self._jwks = jwt.PyJWKSet.from_dict(jwks) if jwks else None
        self._issuer = issuer or None
        self._audience = audience or None
        self._role_claim = role_claim or DEFAULT_ROLE_CLAIM
        if not self._keys and not self._admin_keys and self._jwks is None:
            raise ValueError("an Authenticator needs API keys, a JWKS, or both")

    @classmethod
    def from_files(
        cls, api_keys_file: str = "", jwks_file: str = "", *, admin_api_keys_file: str = "", **claims: str
    ) -> Authenticator | None:
        """None when no file is configured: authentication is off."""
        if not api_keys_file and not jwks_file and not admin_api_keys_file:
            return None
        keys = _keys_in(api_keys_file)
        admin_keys = _keys_in(admin_api_keys_file)
        jwks = json.loads(Path(jwks_file).read_text()) if jwks_file else None
        return cls(keys, jwks, admin_keys=admin_keys, **claims)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
        token = bearer_token(metadata)
        given = token.encode()
        # Compared with every key in constant time: no early exit tells which prefix matched.
        user, operator = _matches(given, self._keys), _matches(given, self._admin_keys)
        if user or operator:
            return Caller("key:" + hashlib.sha256(given).hexdigest()[:8], OPERATOR if operator else USER)
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
        roles = claims.get(self._role_claim)
        is_operator = roles == OPERATOR or (isinstance(roles, list) and OPERATOR in roles)
        return Caller("jwt:" + str(claims.get("sub", "?")), OPERATOR if is_operator else USER)


def _keys_in(path: str) -> list[str]:
    if not path:
        return []
    keys = read_api_keys(path)
    if not keys:
        raise ValueError(f"{path} holds no API key")
    return keys


def _matches(given: bytes, keys: list[bytes]) -> bool:
    return any([hmac.compare_digest(given, key) for key in keys])
