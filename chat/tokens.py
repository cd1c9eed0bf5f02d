"""Issuing and checking JWTs: the one place that knows about tokens.

The GraphQL context, the WebSocket consumer and the REST shim all call
``user_for_access_token`` (or ``user_from_authorization``) to learn who calls.

Access tokens follow RFC 8725: HS256 fixed on decode (the header's ``alg`` is
never trusted), required ``exp``/``iat``/``sub``/``jti``/``type`` claims, an
issuer, and the user's ``token_version`` so that a password change or "log out
everywhere" ends every token at once.

Refresh tokens are opaque random strings stored hashed (see below), never
JWTs: the two kinds cannot be mistaken for each other. Access tokens also carry
``type: "access"``, which decoding requires, so that any other JWT this key
might ever sign (say a signed download URL) is not accepted as one either.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import jwt
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chat import events
from chat.errors import Unauthenticated
from chat.models import RefreshToken, User

ACCESS = "access"
# Channel-layer message sent to ``REVOCATION_GROUP`` when every token of a user
# ends: the connections authenticated as that user close (4403).
AUTH_REVOKED_TYPE = "auth.revoked"
AUTHORIZATION_PREFIXES = ("JWT", "Bearer")


# The channel-layer group of every process with signed-in connections; a
# revocation message names its user (chat.realtime.Hub.watch_user).
REVOCATION_GROUP = "auth.revocations"


def user_revocation_group(user_id: int) -> str:
    """The per-user group in which server processes before ``REVOCATION_GROUP``
    listened for a user's revocation. A revocation goes there too, so that during
    a rolling upgrade the processes not yet upgraded close the user's sockets."""
    return f"auth.{user_id}"


def user_id_of(payload: dict) -> int:
    """The user id of a verified access token's payload."""
    try:
        return int(payload["sub"])
    except (KeyError, TypeError, ValueError):
        raise Unauthenticated("Invalid token.") from None


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
    return verify_access_token(token)[0]


def verify_access_token(token: str) -> tuple[User, dict]:
    """The user and payload of a valid, unrevoked access token, or ``Unauthenticated``."""
    payload = decode_access_token(token)
    return user_for_payload(payload), payload


def user_for_payload(payload: dict, defer: Iterable[str] = ()) -> User:
    """The active user of a decoded access token (``decode_access_token``) that has
    not been revoked since, or ``Unauthenticated``. ``defer``: fields loaded only
    when read (``QuerySet.defer``)."""
    try:
        user = User.objects.defer(*defer).get(pk=user_id_of(payload), is_active=True)
    except User.DoesNotExist:
        raise Unauthenticated("Invalid token.") from None
    if payload.get("ver") != user.token_version:
        raise Unauthenticated("Token has been revoked.")
    return user


def still_signed_in(user: User) -> bool:
    """Whether ``user``, signed in on a long-lived connection, may still act:
    active, and no revocation (password change, "log out everywhere",
    deactivation) since the token was checked. The revocation message that
    closes such connections goes over the channel layer, which may drop it;
    this check on each new operation does not depend on it."""
    return User.objects.filter(pk=user.pk, is_active=True, token_version=user.token_version).exists()


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


# --- Refresh tokens ---------------------------------------------------------------
#
# A refresh token is an opaque random string (256 bits, URL-safe), not a JWT.
# Only its SHA-256 lives in the database (``RefreshToken.token_hash``): a leaked
# database or backup holds no usable token, and a fast hash suffices because the
# secret has full entropy (no dictionary to try). Being opaque, a refresh token
# can never pass for an access token: it does not even parse as a JWT; and an
# access token can never pass for a refresh token: its hash is in no row.
#
# Tokens issued from one log-in form a family. Refreshing marks the presented
# token used and issues the next one in the same family (rotation). Presenting a
# used token again means two parties hold the family (a thief and the owner):
# the whole family is revoked, so the newer token dies too (RFC 6819 §5.2.2.3,
# OAuth 2.0 Security BCP §4.14).

REFRESH_TOKEN_BYTES = 32


@dataclass(frozen=True)
class IssuedTokens:
    """What a log-in or refresh hands to the client."""

    user: User
    token: str
    payload: dict
    refresh_token: str
    refresh_expires_at: datetime

    @property
    def refresh_expires_in(self) -> int:
        """django-graphql-jwt's ``refreshExpiresIn``: the refresh token's expiry as a Unix timestamp."""
        return int(self.refresh_expires_at.timestamp())


def hash_refresh_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_refresh_token(user: User, family: uuid.UUID | None = None) -> tuple[str, RefreshToken]:
    """A new refresh token for ``user`` (in ``family``, or a new one); returns the raw token and its row."""
    raw = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    now = timezone.now()
    row = RefreshToken.objects.create(
        user=user,
        token_hash=hash_refresh_token(raw),
        family=family or uuid.uuid4(),
        created_at=now,
        expires_at=now + settings.JWT_REFRESH_EXPIRATION,
    )
    return raw, row


def issue_tokens(user: User, family: uuid.UUID | None = None) -> IssuedTokens:
    """An access token and a refresh token for ``user`` (a new family unless given)."""
    token, payload = create_access_token(user)
    raw, row = create_refresh_token(user, family)
    return IssuedTokens(user, token, payload, raw, row.expires_at)


def _refresh_row(raw: str | None, *, lock: bool = False) -> RefreshToken:
    if not raw or not isinstance(raw, str):
        raise Unauthenticated("Invalid refresh token.")
    qs = RefreshToken.objects.select_related("user")
    if lock:
        qs = qs.select_for_update()
    try:
        return qs.get(token_hash=hash_refresh_token(raw))
    except RefreshToken.DoesNotExist:
        raise Unauthenticated("Invalid refresh token.") from None


def revoke_family(family: uuid.UUID) -> int:
    """Revoke every live token of a family; returns how many were revoked."""
    return RefreshToken.objects.filter(family=family, revoked_at__isnull=True).update(revoked_at=timezone.now())


def rotate_refresh_token(raw: str | None) -> IssuedTokens:
    """Exchange a refresh token for a new access token and the next refresh token.

    Single use: the presented token is marked used. A token presented after it
    was used (or revoked) revokes its whole family and is refused; the family's
    revocation commits even though the caller gets an error.
    """
    with transaction.atomic():
        # The row lock serializes two refreshes racing with the same token:
        # the second sees ``used_at`` set and is treated as a reuse.
        row = _refresh_row(raw, lock=True)
        now = timezone.now()
        if row.used_at is not None or row.revoked_at is not None:
            revoke_family(row.family)
        elif row.expires_at <= now:
            raise Unauthenticated("Refresh token has expired.")
        elif not row.user.is_active:
            raise Unauthenticated("Invalid refresh token.")
        else:
            row.used_at = now
            row.save(update_fields=["used_at"])
            return issue_tokens(row.user, family=row.family)
    # Only a reuse gets here, after the atomic block so that the revocation commits.
    raise Unauthenticated("Refresh token has already been used or revoked.")


def revoke_refresh_token(raw: str | None) -> datetime:
    """Revoke one refresh token (log out this device); returns when.

    Revoking a token that is already used or revoked is refused like an unknown
    token, so the mutation cannot be used to probe which tokens existed.
    """
    with transaction.atomic():
        row = _refresh_row(raw, lock=True)
        if row.used_at is not None or row.revoked_at is not None or row.expires_at <= timezone.now():
            raise Unauthenticated("Invalid refresh token.")
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        return row.revoked_at


def revoke_all_tokens(user: User) -> datetime:
    """End every token of ``user``: bump ``token_version`` (every access token
    carries the version it was issued under) and revoke all refresh tokens.
    Once committed, the user's open WebSocket connections are told to close."""
    now = timezone.now()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(token_version=F("token_version") + 1)
        RefreshToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
        events.publish_on_commit(
            [REVOCATION_GROUP, user_revocation_group(user.pk)], {"type": AUTH_REVOKED_TYPE, "user": user.pk}
        )
    user.refresh_from_db(fields=["token_version"])
    return now
