"""Issuing and checking JWTs: the one place that knows about tokens.

The GraphQL context, the WebSocket consumer and the REST shim all call
``user_for_access_token`` (or ``user_from_authorization``) to learn who calls.

Access tokens follow RFC 8725: HS256 fixed on decode (the header's ``alg`` is
never trusted), required ``exp``/``iat``/``sub``/``jti``/``type`` claims, an
issuer, and the user's ``token_version`` so that a password change or "log out
everywhere" ends every token at once.
"""

from __future__ import annotations

import hashlib
import uuid

import jwt
from django.conf import settings
from django.utils import timezone

from chat.errors import Unauthenticated
from chat.models import User

ACCESS = "access"
AUTHORIZATION_PREFIXES = ("JWT", "Bearer")


def signing_key() -> str:
    if settings.JWT_SECRET_KEY:
        return settings.JWT_SECRET_KEY
    # Derived, so that a leaked JWT key is not the Django secret itself.
    return hashlib.sha256(f"jwt:{settings.SECRET_KEY}".encode()).hexdigest()


def create_access_token(user: User) -> tuple[str, dict]:
    """A signed access token for ``user`` and its payload."""
    now = timezone.now()
    payload = {
        "sub": str(user.pk),
        "username": user.get_username(),
        "iat": int(now.timestamp()),
        "exp": int((now + settings.JWT_EXPIRATION).timestamp()),
        "jti": uuid.uuid4().hex,
        "type": ACCESS,
        "ver": user.token_version,
        "iss": settings.JWT_ISSUER,
    }
    return jwt.encode(payload, signing_key(), algorithm=settings.JWT_ALGORITHM), payload


def decode_access_token(token: str) -> dict:
    """The verified payload of an access token, or ``Unauthenticated``."""
    try:
        payload = jwt.decode(
            token,
            signing_key(),
            algorithms=[settings.JWT_ALGORITHM],
            issuer=settings.JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "jti", "type", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("Token has expired.") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("Invalid token.") from None
    if payload.get("type") != ACCESS:
        raise Unauthenticated("Invalid token.")
    return payload


def user_for_access_token(token: str) -> User:
    """The active user an access token belongs to, or ``Unauthenticated``."""
    payload = decode_access_token(token)
    try:
        user = User.objects.get(pk=int(payload["sub"]), is_active=True)
    except (User.DoesNotExist, ValueError, TypeError):
        raise Unauthenticated("Invalid token.") from None
    if payload.get("ver") != user.token_version:
        raise Unauthenticated("Token has been revoked.")
    return user


def token_from_authorization(header: str | None) -> str | None:
    """The token of an ``Authorization: JWT <token>`` or ``Bearer <token>`` header."""
    if not header:
        return None
    prefix, _, token = header.strip().partition(" ")
    if prefix.lower() not in {p.lower() for p in AUTHORIZATION_PREFIXES} or not token.strip():
        raise Unauthenticated("Malformed Authorization header.")
    return token.strip()


def user_from_authorization(header: str | None) -> User | None:
    """The user of an Authorization header; ``None`` without one, ``Unauthenticated`` for a bad one."""
    token = token_from_authorization(header)
    return user_for_access_token(token) if token else None
