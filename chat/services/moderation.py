"""Moderation: bans, mutes, blocks, reports, slow mode and invite links.

The rules of who may do what live in ``chat.access``; each function here checks
them, validates, and writes under the room lock in one transaction with the
event members must see. Changes only moderators see (the ban list, invites,
reports) and blocks (private to the blocker) write no room event: every
member of the room would receive it.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import access, events, metrics, ratelimit
from chat.errors import BadUserInput, Forbidden, NotFound, RateLimited
from chat.models import Ban, Block, Event, Invite, Membership, Message, Mute, Report, Room, User
from chat.services.rooms import _ensure_room_has_space, _join, _remove, _require_group, parse_id

Role = Membership.Role
BAN_REASON_MAX = Ban._meta.get_field("reason").max_length
REPORT_COMMENT_MAX = 1000
SLOW_MODE_MAX = 3600
INVITE_CODE_MAX = Invite._meta.get_field("code").max_length
INVITE_MAX_USES = 1_000_000
INVITE_MAX_LIFETIME = 365 * 24 * 3600
INVITE_NOT_FOUND = "Invite not found."


def _target_user(user_id) -> User:
    pk = parse_id(user_id, "User")
    user = User.objects.filter(pk=pk, is_active=True).first()
    if user is None:
        raise NotFound("User not found.")
    return user


def _moderate(actor, room_id, user_id, verb: str) -> tuple[User, Room, User]:
    """The checks shared by bans and mutes, before the lock: the actor moderates the room,
    the target exists and is not the actor."""
    actor = access.require_user(actor)
    room, _ = access.access_room_as_moderator(actor, parse_id(room_id, "Room"))
    target = _target_user(user_id)
    if target.pk == actor.pk:
        raise BadUserInput(f"You cannot {verb} yourself.", fields={"userId": ["Choose another user."]})
    return actor, room, target


def _require_may_moderate(actor: User, room: Room, target_role: str | None) -> None:
    """Again under the room lock: roles may have changed since the first check."""
    mine = access.membership_of(actor, room.pk)
    if not access.is_moderator(actor, mine):
        raise Forbidden()
    if not access.may_moderate_target(actor, mine, target_role):
        raise Forbidden("You may not moderate this member.")


# --- Bans -----------------------------------------------------------------------------


def ban_member(actor, room_id, user_id, reason=None) -> Room:
    """Ban a user from a room: a member is removed (``MemberLeft`` with reason
    ``banned``, which ends their subscriptions of the room) and nobody brings
    them back while the ban stands. Banning a user who is not a member keeps
    them out. Banning again changes nothing (the first reason stays)."""
    actor, room, target = _moderate(actor, room_id, user_id, "ban")
    reason = (reason or "").strip()
    if len(reason) > BAN_REASON_MAX:
        raise BadUserInput(
            f"Reasons are at most {BAN_REASON_MAX} characters.",
            fields={"reason": [f"At most {BAN_REASON_MAX} characters."]},
        )
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        membership = Membership.objects.filter(room=room, user=target).select_related("user").first()
        _require_may_moderate(actor, room, membership.role if membership else None)
        if Ban.objects.filter(room=room, user=target).exists():
            return room
        Ban.objects.create(room=room, user=target, banned_by=actor, reason=reason)
        if membership is not None:
            _remove(room, membership, "banned", actor)
    return room


def unban_member(actor, room_id, user_id) -> Room:
    """Lift a ban (owners, admins, staff). The user may then join again; they are not added back."""
    actor, room, target = _moderate(actor, room_id, user_id, "unban")
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        _require_may_moderate(actor, room, None)
        Ban.objects.filter(room=room, user=target).delete()
    return room


# --- Mutes ----------------------------------------------------------------------------


def mute_member(actor, room_id, user_id, until=None) -> Room:
    """Mute a member until ``until`` (None: until unmuted). Muting again moves the end.

    Records ``MemberMuted`` (user, by, until) so that clients disable the
    composer; an end that passes writes no event (clients know ``until``)."""
    actor, room, target = _moderate(actor, room_id, user_id, "mute")
    if until is not None:
        if timezone.is_naive(until):
            raise BadUserInput("`until` needs a time zone.", fields={"until": ["Give a time zone offset."]})
        if until <= timezone.now():
            raise BadUserInput("`until` must be in the future.", fields={"until": ["Must be in the future."]})
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        membership = Membership.objects.filter(room=room, user=target).select_related("user").first()
        if membership is None:
            raise NotFound("This user is not a member of the room.")
        _require_may_moderate(actor, room, membership.role)
        mute = Mute.objects.filter(room=room, user=target).first()
        if mute is not None and mute.is_active() and mute.until == until:
            return room
        Mute.objects.update_or_create(
            room=room, user=target, defaults={"until": until, "muted_by": actor, "created_at": timezone.now()}
        )
        events.record_event(
            room,
            Event.Kind.MEMBER_MUTED,
            {
                "user": events.user_snapshot(target),
                "by": events.user_snapshot(actor),
                "until": until.isoformat() if until else None,
            },
            actor=actor,
        )
    return room


def unmute_member(actor, room_id, user_id) -> Room:
    """End a mute (``MemberUnmuted``). Unmuting a user who is not muted changes nothing; a
    muted user who left the room can be unmuted too (the mute would hold when they return)."""
    actor, room, target = _moderate(actor, room_id, user_id, "unmute")
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        membership = access.membership_of(target, room.pk)
        _require_may_moderate(actor, room, membership.role if membership else None)
        mute = Mute.objects.filter(room=room, user=target).first()
        if mute is None:
            return room
        mute.delete()
        if mute.is_active():
            events.record_event(
                room,
                Event.Kind.MEMBER_UNMUTED,
                {"user": events.user_snapshot(target), "by": events.user_snapshot(actor), "until": None},
                actor=actor,
            )
    return room


# --- Blocks ---------------------------------------------------------------------------


def block_user(actor, user_id) -> User:
    """Block a user: they cannot start or write into a direct chat with the actor,
    and their mentions do not notify the actor. Nobody is told. Idempotent."""
    actor = access.require_user(actor)
    target = _target_user(user_id)
    if target.pk == actor.pk:
        raise BadUserInput("You cannot block yourself.", fields={"userId": ["Choose another user."]})
    if Block.objects.filter(blocker=actor).count() >= settings.MAX_BLOCKED_USERS:
        if not Block.objects.filter(blocker=actor, blocked=target).exists():
            raise BadUserInput(f"You can block at most {settings.MAX_BLOCKED_USERS} users.")
    try:
        with transaction.atomic():
            Block.objects.get_or_create(blocker=actor, blocked=target)
    except IntegrityError:
        pass  # a concurrent request blocked them first: the same outcome
    return target


def unblock_user(actor, user_id) -> User:
    actor = access.require_user(actor)
    target = _target_user(user_id)
    if target.pk == actor.pk:
        raise BadUserInput("You cannot unblock yourself.", fields={"userId": ["Choose another user."]})
    Block.objects.filter(blocker=actor, blocked=target).delete()
    return target


# --- Reports --------------------------------------------------------------------------


def report_message(actor, message_id, reason, comment=None) -> Report:
    """Report a message of a room one belongs to, once per message.

    The report keeps the text as it was (what the moderators judge); deleting
    the message redacts that copy (``redact_reports``)."""
    actor = access.require_user(actor)
    message = access.access_message(actor, parse_id(message_id, "Message"))
    if reason not in Report.Reason.values:
        raise BadUserInput("Unknown reason.", fields={"reason": [f"Unknown reason {reason}."]})
    comment = (comment or "").strip()
    if len(comment) > REPORT_COMMENT_MAX:
        raise BadUserInput(
            f"Comments are at most {REPORT_COMMENT_MAX} characters.",
            fields={"comment": [f"At most {REPORT_COMMENT_MAX} characters."]},
        )
    if message.sender_id == actor.pk:
        raise BadUserInput("You cannot report your own message.", fields={"id": ["Your own message."]})
    ratelimit.throttle("report", actor)
    try:
        with transaction.atomic():
            events.lock_room(message.room_id)
            message = Message.objects.select_for_update(of=("self",)).get(pk=message.pk)
            if message.is_deleted:
                raise BadUserInput("A deleted message cannot be reported.", fields={"id": ["Deleted."]})
            if Report.objects.filter(message=message, reporter=actor).exists():
                raise BadUserInput("You have already reported this message.", fields={"id": ["Already reported."]})
            return Report.objects.create(
                room_id=message.room_id,
                message=message,
                reporter=actor,
                reason=reason,
                comment=comment,
                text_snapshot=message.text,
            )
    except IntegrityError:
        raise BadUserInput("You have already reported this message.", fields={"id": ["Already reported."]}) from None


def resolve_report(actor, report_id) -> Report:
    """Close a report (the room's owner and admins, staff). Resolving twice changes nothing."""
    actor = access.require_user(actor)
    pk = parse_id(report_id, "Report")
    report = access.reports_visible_to(actor).filter(pk=pk).first()
    if report is None:
        raise NotFound("Report not found.")
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if report.resolved_at is None:
            report.resolved_at = timezone.now()
            report.resolved_by = actor
            report.save(update_fields=["resolved_at", "resolved_by"])
    return report


def redact_reports(message: Message) -> None:
    """Remove the reported copies of a deleted message's text (inside its transaction)."""
    Report.objects.filter(message=message).exclude(text_snapshot="").update(text_snapshot="")


# --- Slow mode ------------------------------------------------------------------------


def clean_slow_mode(seconds) -> int:
    if (
        seconds is None
        or isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not 0 <= seconds <= SLOW_MODE_MAX
    ):
        raise BadUserInput(
            f"slowModeSeconds must be between 0 and {SLOW_MODE_MAX}.",
            fields={"slowModeSeconds": [f"0 to {SLOW_MODE_MAX}."]},
        )
    return seconds


def check_slow_mode(room: Room, membership: Membership) -> None:
    """``RateLimited`` (with ``retryAfter``) if a plain member of a slow room sent
    within the interval. Called under the room lock, so two parallel sends cannot
    both pass; a retry with the same client id returns before this."""
    interval = room.slow_mode_seconds
    if not interval or membership.role in (Role.OWNER, Role.ADMIN):
        return
    since = timezone.now() - timedelta(seconds=interval)
    last = (
        Message.objects.filter(room=room, sender_id=membership.user_id, created_at__gt=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is not None:
        wait = max(1, math.ceil((last + timedelta(seconds=interval) - timezone.now()).total_seconds()))
        metrics.rate_limited("slow_mode")
        raise RateLimited(
            retry_after=wait,
            message=f"Slow mode: one message every {interval} seconds in this room; retry in {wait} seconds.",
        )


# --- Invite links ---------------------------------------------------------------------


def _optional_int(value, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadUserInput(f"`{name}` must be between {low} and {high}.", fields={name: [f"{low} to {high}."]})
    return value


def create_invite(actor, room_id, max_uses=None, expires_in=None) -> Invite:
    """A new invite link to a group room (owners, admins, staff; private rooms too)."""
    actor = access.require_user(actor)
    room, _ = access.access_room_as_moderator(actor, parse_id(room_id, "Room"))
    _require_group(room)
    max_uses = _optional_int(max_uses, "maxUses", 1, INVITE_MAX_USES)
    expires_in = _optional_int(expires_in, "expiresIn", 1, INVITE_MAX_LIFETIME)
    ratelimit.throttle("invite", actor)
    now = timezone.now()
    return Invite.objects.create(
        room=room,
        created_by=actor,
        created_at=now,
        max_uses=max_uses,
        expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
    )


def _invite(code) -> Invite | None:
    if not isinstance(code, str) or not 0 < len(code) <= INVITE_CODE_MAX:
        return None
    return Invite.objects.filter(code=code, room__deleted_at__isnull=True).select_related("room").first()


def revoke_invite(actor, code) -> Invite:
    """Revoke an invite (its room's owners and admins, staff). A code the actor
    may not manage answers like an unknown one. Revoking twice changes nothing."""
    actor = access.require_user(actor)
    invite = _invite(code)
    if invite is None or not access.rooms_moderated_by(actor).filter(pk=invite.room_id).exists():
        raise NotFound(INVITE_NOT_FOUND)
    ratelimit.throttle("invite", actor)
    if invite.revoked_at is None:
        Invite.objects.filter(pk=invite.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        invite.refresh_from_db()
    return invite


def join_by_invite(actor, code) -> Room:
    """Join the room of a usable invite. An expired, used-up, revoked or unknown
    code is the same ``NotFound``; a banned user is ``Forbidden``. A member
    already in the room uses nothing up."""
    actor = access.require_user(actor)
    invite = _invite(code)
    if invite is None:
        raise NotFound(INVITE_NOT_FOUND)
    ratelimit.throttle("membership", actor)
    with transaction.atomic():
        room = events.lock_room(invite.room_id)
        invite = Invite.objects.select_for_update().get(pk=invite.pk)
        if not invite.is_usable():
            raise NotFound(INVITE_NOT_FOUND)
        if Membership.objects.filter(room=room, user=actor).exists():
            return room
        access.require_not_banned(actor, room.pk)
        _ensure_room_has_space(room)
        _join(room, actor, Role.MEMBER, None)
        Invite.objects.filter(pk=invite.pk).update(uses=invite.uses + 1)
    return room


def invite_url(invite: Invite, base_url: str) -> str:
    """The link to share. The code is in the fragment, which browsers do not send
    to servers, so it stays out of access logs and Referer headers."""
    return f"{base_url.rstrip('/')}/#invite={invite.code}"
