"""Accounts: registration, log-in, password and profile changes, account deletion.

Every function here takes plain values (never a request): the client address
used for throttling is passed in as a string by the transport.

Log-in failures are throttled per name and client address, and per address, in
Django's cache (Redis in services mode, so the limits hold across processes);
an account's failures from everywhere slow it down, never lock it. An unknown
user answers exactly like a wrong password, so accounts cannot be enumerated
through ``tokenAuth``.
"""

from __future__ import annotations

import asyncio
import hashlib

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from chat import ratelimit, tokens
from chat.access import require_user
from chat.errors import BadUserInput, RateLimited
from chat.models import User
from chat.services import avatars, rooms

BAD_CREDENTIALS = "Please enter valid credentials."
REQUIRED = "This field is required."
USERNAME_TAKEN = "A user with that username already exists."
EMAIL_TAKEN = "A user with that email address already exists."
WRONG_PASSWORD = "Wrong password."

USERNAME_MAX_LENGTH = User._meta.get_field("username").max_length
EMAIL_MAX_LENGTH = User._meta.get_field("email").max_length
DISPLAY_NAME_MAX_LENGTH = User._meta.get_field("display_name").max_length
BIO_MAX_LENGTH = User._meta.get_field("bio").max_length


# --- Throttling -------------------------------------------------------------------
#
# Failures are counted per (name tried, client address) and per address, and a
# budget used up refuses further attempts from there before the password is
# checked. Nothing refuses an account as a whole: counting failures per account
# alone would let anyone lock the owner out by guessing wrong on purpose. What
# an account's failures from everywhere do is slow each attempt at it a little
# (``login_delay``), which costs a distributed guesser far more than its owner.
#
# Every key is built from the name as typed (lower-cased), never from the
# account it resolves to: a registered email and an unknown one are counted,
# refused and slowed exactly alike, so no answer tells whether an account
# exists. (A username and its email are two names, each with its own budget.)


def _digest(value: str) -> str:
    # Keys stay short and free of characters a cache backend may refuse.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _address_key(client_address: str | None) -> str:
    return f"login:addr:{_digest(client_address or 'unknown')}"


def _pair_key(identifier: str, client_address: str | None) -> str:
    return f"login:pair:{_digest(identifier.lower() + chr(0) + (client_address or 'unknown'))}"


def _failures_key(identifier: str) -> str:
    return f"login:failures:{_digest(identifier.lower())}"


def login_delay(identifier: str | None) -> float:
    """Seconds to wait before checking a password for ``identifier``: nothing up to
    ``LOGIN_SLOWDOWN_AFTER`` failures in the window from all addresses together,
    then ``LOGIN_SLOWDOWN_STEP`` more per failure, at most ``LOGIN_SLOWDOWN_MAX``."""
    identifier = _clean_text(identifier)
    if not identifier:
        return 0.0
    failures = ratelimit.count(_failures_key(identifier), settings.LOGIN_THROTTLE_WINDOW)
    excess = failures - settings.LOGIN_SLOWDOWN_AFTER
    return min(settings.LOGIN_SLOWDOWN_MAX, excess * settings.LOGIN_SLOWDOWN_STEP) if excess > 0 else 0.0


async def wait_login_delay(identifier: str | None) -> None:
    """Sleep ``login_delay`` without holding a worker thread (sync code shares one
    thread per process under ASGI, so a blocking sleep would stall everyone)."""
    delay = await sync_to_async(login_delay)(identifier)
    if delay > 0:
        await asyncio.sleep(delay)


def check_password_throttled(user: User | None, identifier: str, password: str, client_address: str | None) -> bool:
    """Whether ``password`` is ``user``'s (``None``: no such account), counting failures.

    ``RATE_LIMITED`` once this name from this address, or this address for any
    name, has used up its failures in the window, before the password is even
    checked (so guessing from there stops). Every attempt is counted up front (an
    atomic increment, so parallel guesses cannot all pass a check before any is
    counted) and a success is given back.
    """
    window = settings.LOGIN_THROTTLE_WINDOW
    pair_key = _pair_key(identifier, client_address)
    address_key = _address_key(client_address)
    ratelimit.hit(pair_key, settings.LOGIN_THROTTLE_ATTEMPTS, window)
    try:
        ratelimit.hit(address_key, settings.LOGIN_THROTTLE_ADDRESS_ATTEMPTS, window)
    except RateLimited:
        ratelimit.refund(pair_key, window)  # refused for the address: not this name's attempt
        raise
    if user is None:
        # Hash anyway: an unknown user takes as long as a wrong password.
        User().set_password(password)
        ok = False
    else:
        ok = user.check_password(password) and user.is_active  # hash first: inactive takes as long
    if ok:
        ratelimit.reset(pair_key, window)
        ratelimit.refund(address_key, window)
    else:
        ratelimit.count(_failures_key(identifier), window, add=1)
    return ok


# --- Validation ---------------------------------------------------------------------


def _clean_text(value: str | None) -> str:
    return (value or "").strip()


def _username_errors(username: str, *, exclude_pk: int | None = None) -> list[str]:
    if not username:
        return [REQUIRED]
    if len(username) > USERNAME_MAX_LENGTH:
        return [f"Ensure this value has at most {USERNAME_MAX_LENGTH} characters."]
    if "@" in username:
        # Log-in takes a username or an email: an "@" would make them ambiguous.
        return ["Usernames may contain only letters, digits and . + - _"]
    try:
        User.username_validator(username)
    except ValidationError as error:
        return list(error.messages)
    if User.objects.filter(username__iexact=username).exclude(pk=exclude_pk).exists():
        return [USERNAME_TAKEN]
    return []


def _email_errors(email: str, *, exclude_pk: int | None = None) -> list[str]:
    if not email:
        return [REQUIRED]
    if len(email) > EMAIL_MAX_LENGTH:
        return [f"Ensure this value has at most {EMAIL_MAX_LENGTH} characters."]
    try:
        validate_email(email)
    except ValidationError as error:
        return list(error.messages)
    if User.objects.filter(email__iexact=email).exclude(pk=exclude_pk).exists():
        return [EMAIL_TAKEN]
    return []


def _max_length_errors(value: str, limit: int) -> list[str]:
    return [f"Ensure this value has at most {limit} characters."] if len(value) > limit else []


def _password_errors(password: str | None, user: User) -> list[str]:
    if not password:
        return [REQUIRED]
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as error:
        return list(error.messages)
    return []


def _raise_if(fields: dict[str, list[str]]) -> None:
    fields = {name: messages for name, messages in fields.items() if messages}
    if fields:
        raise BadUserInput("Invalid input: " + ", ".join(sorted(fields)) + ".", fields=fields)


# --- Services -------------------------------------------------------------------------


def register_user(
    *,
    username: str | None,
    email: str | None,
    password: str | None,
    display_name: str | None = None,
    client_address: str | None = None,
) -> tokens.IssuedTokens:
    """Create an account and sign it in.

    Limited per client address (``RATE_LIMITS["register"]``), counting every
    attempt so that the "taken" answers cannot be used to list accounts quickly.
    Field errors are keyed by GraphQL argument name.
    """
    ratelimit.hit(f"register:{_digest(client_address or 'unknown')}", *settings.RATE_LIMITS["register"])
    username = _clean_text(username)
    email = User.objects.normalize_email(_clean_text(email))
    display_name = _clean_text(display_name)
    candidate = User(username=username, email=email, display_name=display_name)
    _raise_if(
        {
            "username": _username_errors(username),
            "email": _email_errors(email),
            "displayName": _max_length_errors(display_name, DISPLAY_NAME_MAX_LENGTH),
            "password": _password_errors(password, candidate),
        }
    )
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, email=email, password=password, display_name=display_name
            )
            return tokens.issue_tokens(user)
    except IntegrityError:
        # Someone registered the same name or email between the check and the insert.
        _raise_if({"username": _username_errors(username), "email": _email_errors(email)})
        raise


def find_account(identifier: str) -> User | None:
    """The account a log-in names: a username (any case), else an email address."""
    user = User.objects.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        user = User.objects.filter(email__iexact=identifier).first()
    return user


def obtain_tokens(
    *, username: str | None, password: str | None, client_address: str | None = None
) -> tokens.IssuedTokens:
    """Log in with a username or an email address and a password (``tokenAuth``).

    Unknown user, wrong password and inactive account all answer the same
    ``BAD_USER_INPUT``; missing fields are named in ``fields``.
    """
    identifier = _clean_text(username)
    _raise_if({"username": [REQUIRED] if not identifier else [], "password": [REQUIRED] if not password else []})
    user = find_account(identifier)
    if not check_password_throttled(user, identifier, password, client_address):
        raise BadUserInput(BAD_CREDENTIALS)
    return tokens.issue_tokens(user)


def verify_token(token: str | None) -> tuple[User, dict]:
    """The user and payload of a valid access token (``verifyToken``)."""
    if not token:
        raise BadUserInput(fields={"token": [REQUIRED]})
    return tokens.verify_access_token(token)


def refresh_tokens(refresh_token: str | None) -> tokens.IssuedTokens:
    """Rotate a refresh token (``refreshToken``); see ``chat.tokens.rotate_refresh_token``."""
    if not refresh_token:
        raise BadUserInput(fields={"refreshToken": [REQUIRED]})
    return tokens.rotate_refresh_token(refresh_token)


def revoke_token(refresh_token: str | None):
    """End one refresh token (``revokeToken``: log out this device); returns when."""
    if not refresh_token:
        raise BadUserInput(fields={"refreshToken": [REQUIRED]})
    return tokens.revoke_refresh_token(refresh_token)


def revoke_all_tokens(actor: User):
    """Log out everywhere: every access and refresh token of ``actor`` ends now."""
    actor = require_user(actor)
    return tokens.revoke_all_tokens(actor)


def _confirm_password(actor: User, password: str | None, field: str, client_address: str | None) -> None:
    """``BAD_USER_INPUT`` on ``field`` unless ``password`` is the actor's; failures
    count against the log-in throttle, so a stolen access token cannot be used to
    guess the password."""
    if not password:
        raise BadUserInput(fields={field: [REQUIRED]})
    if not check_password_throttled(actor, actor.username, password, client_address):
        raise BadUserInput(WRONG_PASSWORD, fields={field: [WRONG_PASSWORD]})


def change_password(
    actor: User, *, old_password: str | None, new_password: str | None, client_address: str | None = None
) -> tokens.IssuedTokens:
    """Change the actor's password. Every existing token (access and refresh, on
    every device) ends; the caller gets a fresh pair for this session."""
    actor = require_user(actor)
    _confirm_password(actor, old_password, "oldPassword", client_address)
    _raise_if({"newPassword": _password_errors(new_password, actor)})
    with transaction.atomic():
        actor.set_password(new_password)
        actor.save(update_fields=["password"])  # ends every token (User.save)
        return tokens.issue_tokens(actor)


def update_profile(
    actor: User,
    *,
    display_name: str | None = None,
    bio: str | None = None,
    email: str | None = None,
    avatar_id=avatars.KEEP,
) -> User:
    """Change the given profile fields of the actor (``None`` leaves a field as is;
    for ``avatar_id``, an upload of the actor's to use as their picture, ``None``
    to clear it, ``KEEP`` to leave it)."""
    actor = require_user(actor)
    changes: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    if display_name is not None:
        changes["display_name"] = _clean_text(display_name)
        errors["displayName"] = _max_length_errors(changes["display_name"], DISPLAY_NAME_MAX_LENGTH)
    if bio is not None:
        changes["bio"] = bio.strip()
        errors["bio"] = _max_length_errors(changes["bio"], BIO_MAX_LENGTH)
    if email is not None:
        changes["email"] = User.objects.normalize_email(_clean_text(email))
        errors["email"] = _email_errors(changes["email"], exclude_pk=actor.pk)
    _raise_if(errors)
    prepared = avatars.prepare(actor, avatar_id) if avatar_id is not avatars.KEEP else None
    if not changes and avatar_id is avatars.KEEP:
        return actor
    try:
        with transaction.atomic():
            if avatar_id is not avatars.KEEP:
                previous = User.objects.select_for_update().values_list("avatar_id", flat=True).get(pk=actor.pk)
                avatar = avatars.store(actor, prepared)
                changes["avatar"] = avatar
                avatars.discard(previous)
            User.objects.filter(pk=actor.pk).update(**changes)
    except IntegrityError:
        _raise_if({"email": [EMAIL_TAKEN]})
    actor.refresh_from_db()
    return actor


def delete_account(actor: User, *, password: str | None, client_address: str | None = None) -> int:
    """Delete the actor's account after confirming the password; returns its former id.

    First the user leaves every live room through the rooms service (a
    ``MemberLeft`` with reason "deleted" in each, group rooms and direct chats
    alike; an owner hands over ownership as on ``leaveRoom``). Then the user row
    goes (tokens and refresh tokens with it); messages stay, with ``sender`` set
    to NULL, and read as "from a deleted user". All in one transaction.
    """
    actor = require_user(actor)
    _confirm_password(actor, password, "password", client_address)
    user_id = actor.pk
    with transaction.atomic():
        tokens.revoke_all_tokens(actor)  # closes the user's open sockets once committed
        rooms.leave_all_rooms(actor, reason="deleted")
        User.objects.filter(pk=user_id).delete()
    return user_id
