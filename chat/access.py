"""One access rule per thing.

Every service, GraphQL ``get_queryset``, subscription and download asks these
functions. Something the user may not see answers exactly like something that
does not exist (``NotFound``), so IDs cannot be probed.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet, Value

from chat.errors import Forbidden, NotFound, Unauthenticated
from chat.models import Attachment, Ban, Block, Invite, Membership, Message, Mute, Notification, Report, Room, User


def require_user(user) -> User:
    """The acting user, or ``Unauthenticated`` for an anonymous caller."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise Unauthenticated()
    return user


def _is_member(user: User) -> Exists:
    return Exists(Membership.objects.filter(room=OuterRef("pk"), user=user))


def rooms_joined_by(user: User) -> QuerySet[Room]:
    """Live rooms the user is a member of."""
    return Room.objects.filter(deleted_at__isnull=True).filter(_is_member(user))


def rooms_visible_to(user: User) -> QuerySet[Room]:
    """Live rooms the user may see: public group rooms and the rooms they belong to."""
    if not user.is_authenticated:
        return Room.objects.none()
    return Room.objects.filter(deleted_at__isnull=True).filter(
        Q(kind=Room.Kind.GROUP, is_private=False) | _is_member(user)
    )


def access_room(user: User, room_id, *, member: bool = False, moderate: bool = False) -> Room:
    """The room with ``room_id`` if ``user`` may see it (and, with ``member``, belongs to it).

    With ``moderate``, staff reach every live room (they moderate rooms they are
    not in); everyone else gets the ordinary rule.
    """
    if moderate and user.is_authenticated and user.is_staff:
        qs = Room.objects.filter(deleted_at__isnull=True)
    else:
        qs = rooms_joined_by(user) if member else rooms_visible_to(user)
    try:
        return qs.get(pk=_room_pk(room_id))
    except Room.DoesNotExist:
        raise NotFound("Room not found.") from None


def access_room_as_member(user: User, room_id) -> tuple[Room, Membership]:
    """The room and the user's membership, for reading or writing its messages.

    A room the user cannot see is ``NotFound``; a public room they have not
    joined is ``Forbidden`` (it is no secret that it exists).
    """
    if user.is_authenticated:
        # A member sees the room: one query answers both (sends take this path each time).
        membership = _only_row(
            Membership.objects.select_related("room").filter(
                user_id=user.pk, room_id=_room_pk(room_id), room__deleted_at__isnull=True
            )
        )
        if membership is not None:
            return membership.room, membership
    access_room(user, room_id)  # NotFound for a room the user may not see
    raise Forbidden("Join the room first.")


def _only_row(queryset):
    """The row of a lookup by a unique key, or None: ``first()`` without the
    ``ORDER BY`` it adds, which Django compiles anew for every query."""
    return next(iter(queryset[:1]), None)


def _room_pk(room_id) -> int:
    try:
        return int(room_id)
    except (ValueError, TypeError):
        raise NotFound("Room not found.") from None


def membership_of(user: User, room_id) -> Membership | None:
    if not user.is_authenticated:
        return None
    return _only_row(Membership.objects.filter(room_id=room_id, user_id=user.pk))


def require_role(membership: Membership | None, *roles: str, user: User | None = None) -> None:
    """``Forbidden`` unless the membership has one of ``roles`` (staff always pass)."""
    if user is not None and user.is_staff:
        return
    if membership is None or membership.role not in roles:
        raise Forbidden()


def messages_visible_to(user: User) -> QuerySet[Message]:
    """Messages of the live rooms the user belongs to."""
    if not user.is_authenticated:
        return Message.objects.none()
    return Message.objects.filter(
        room__deleted_at__isnull=True,
        room__in=Membership.objects.filter(user=user).values("room_id"),
    )


def access_message(user: User, message_id, *, moderate: bool = False) -> Message:
    """The message with ``message_id`` if ``user`` may read it (with ``moderate``, staff reach any live room's)."""
    if moderate and user.is_authenticated and user.is_staff:
        qs = Message.objects.filter(room__deleted_at__isnull=True)
    else:
        qs = messages_visible_to(user)
    try:
        return qs.select_related("room").get(pk=int(message_id))
    except (Message.DoesNotExist, ValueError, TypeError):
        raise NotFound("Message not found.") from None


def attachments_visible_to(user: User) -> QuerySet[Attachment]:
    """Attached files of rooms the user belongs to, and the user's own unattached uploads."""
    if not user.is_authenticated:
        return Attachment.objects.none()
    return Attachment.objects.filter(
        Q(message__in=messages_visible_to(user).filter(deleted_at__isnull=True))
        | Q(message__isnull=True, uploader=user)
    )


def users_visible_to(user: User) -> QuerySet[User]:
    """Active users, for any signed-in user (anonymous callers see nobody)."""
    if not user.is_authenticated:
        return User.objects.none()
    return User.objects.filter(is_active=True)


def listed_memberships() -> QuerySet[Membership]:
    """Memberships that member lists and member counts show: those of active users.

    A deactivated account keeps its memberships (reactivating it gives its rooms
    back) but, like everywhere else users appear, it is not shown; listing it would
    name a user that ``users_visible_to`` hides.
    """
    return Membership.objects.filter(user__is_active=True)


def presence_rooms(user: User) -> QuerySet[Room]:
    """The rooms whose members see ``user``'s presence: the live rooms ``user`` belongs to.

    The presence rule, for every path: someone's presence (``isOnline``,
    ``lastSeenAt``, ``PresenceChanged``) is visible to themself and to the members
    of these rooms, nobody else. Live changes are published to these rooms'
    groups (chat/services/presence.py); queries ask ``presence_visible``.
    """
    return rooms_joined_by(user)


def presence_visible(viewer: User) -> Q | Value:
    """A condition on a ``User`` queryset: whether ``viewer`` may see that user's
    presence, i.e. is that user or a member of one of their ``presence_rooms``."""
    if not viewer.is_authenticated:
        return Value(False)
    shared = Membership.objects.filter(
        user=OuterRef("pk"),
        room__deleted_at__isnull=True,
        room__in=Membership.objects.filter(user=viewer).values("room_id"),
    )
    return Q(pk=viewer.pk) | Exists(shared)


def may_see_presence(viewer: User, user_id: int) -> bool:
    """``presence_visible`` for one user."""
    if not viewer.is_authenticated:
        return False
    return User.objects.filter(pk=user_id).filter(presence_visible(viewer)).exists()


def memberships_visible_to(user: User) -> QuerySet[Membership]:
    """Listed memberships (member lists) of the rooms the user may see."""
    if not user.is_authenticated:
        return Membership.objects.none()
    return listed_memberships().filter(room__in=rooms_visible_to(user).values("pk"))


def access_message_as_member(user: User, message_id) -> tuple[Message, Membership]:
    """A message of a room the user belongs to, with their membership, for acting on it
    (reacting, pinning). Staff get no exception: these are members' actions."""
    message = access_message(user, message_id)
    membership = membership_of(user, message.room_id)
    if membership is None:  # removed between the two reads
        raise NotFound("Message not found.")
    return message, membership


def require_pin_rights(room: Room, membership: Membership) -> None:
    """Who may pin and unpin: the owner and admins of a group room; either member of a direct chat."""
    if room.kind == Room.Kind.DIRECT:
        return
    require_role(membership, Membership.Role.OWNER, Membership.Role.ADMIN)


def users_who_see(user: User) -> QuerySet[User]:
    """Active users who may see ``user``: the mirror of ``users_visible_to``, used to
    decide who may be notified of what ``user`` does."""
    if not user.is_active:
        return User.objects.none()
    return User.objects.filter(is_active=True)


def notifications_visible_to(user: User) -> QuerySet[Notification]:
    """The user's own notifications, of live rooms they still belong to (leaving a
    room takes its notifications out of the inbox and the counts)."""
    if not user.is_authenticated:
        return Notification.objects.none()
    return Notification.objects.filter(user=user, room__in=rooms_joined_by(user).values("pk"))


def may_mention_everyone(membership: Membership | None, member_count: int) -> bool:
    """Whether ``@room`` and ``@here`` of this member notify anyone: any member's in
    rooms of at most ``MENTION_EVERYONE_MAX_MEMBERS``, only owners' and admins' in
    bigger ones (elsewhere the words stay plain text)."""
    if membership is None:
        return False
    if member_count <= settings.MENTION_EVERYONE_MAX_MEMBERS:
        return True
    return membership.role in (Membership.Role.OWNER, Membership.Role.ADMIN)


def avatar_visible_to(user: User, avatar_id: int) -> bool:
    """Whether ``user`` may see the avatar: it shows a user they may see or a room they may see."""
    return (
        users_visible_to(user).filter(avatar_id=avatar_id).exists()
        or rooms_visible_to(user).filter(avatar_id=avatar_id).exists()
    )


# --- Moderation: bans, mutes, blocks, the moderators of a room -------------------------

BANNED_MESSAGE = "You are banned from this room."
MUTED_MESSAGE = "You are muted in this room."
# Neutral on purpose: a blocked user must not learn that they are blocked.
BLOCKED_MESSAGE = "You cannot message this user."


def is_banned(user: User, room_id) -> bool:
    return user.is_authenticated and Ban.objects.filter(room_id=room_id, user=user).exists()


def require_not_banned(user: User, room_id) -> None:
    """``Forbidden`` while ``user`` is banned from the room: no way in (join, add, invite, direct chat)."""
    if is_banned(user, room_id):
        raise Forbidden(BANNED_MESSAGE)


def active_mute(user: User, room_id) -> Mute | None:
    """The user's mute in the room if it still holds (an expired one is ignored)."""
    if not user.is_authenticated:
        return None
    mute = _only_row(Mute.objects.filter(room_id=room_id, user_id=user.pk))
    return mute if mute is not None and mute.is_active() else None


def has_blocked(blocker_id, blocked_id) -> bool:
    return Block.objects.filter(blocker_id=blocker_id, blocked_id=blocked_id).exists()


def blockers_of(user_id, among) -> set[int]:
    """Which of the users ``among`` have blocked ``user_id``."""
    return set(
        Block.objects.filter(blocked_id=user_id, blocker_id__in=list(among)).values_list("blocker_id", flat=True)
    )


def require_may_write(user: User, room: Room) -> None:
    """Whether a member may write into a room now (send, edit, react, type).

    A muted member reads but does not write; in a direct chat, a user whom the
    other member has blocked does not write either (with a neutral message).
    Precondition: ``user`` is a member of ``room``.
    """
    if active_mute(user, room.pk) is not None:
        raise Forbidden(MUTED_MESSAGE)
    if room.kind == Room.Kind.DIRECT:
        partner = Membership.objects.filter(room=room).exclude(user=user).values_list("user_id", flat=True).first()
        if partner is not None and has_blocked(partner, user.pk):
            raise Forbidden(BLOCKED_MESSAGE)


def require_may_start_direct_chat(user: User, partner: User) -> None:
    if has_blocked(partner.pk, user.pk):
        raise Forbidden(BLOCKED_MESSAGE)


def is_moderator(user: User, membership: Membership | None) -> bool:
    """Owners and admins moderate their room; staff moderate every room."""
    if user.is_authenticated and user.is_staff:
        return True
    return membership is not None and membership.role in (Membership.Role.OWNER, Membership.Role.ADMIN)


def access_room_as_moderator(user: User, room_id) -> tuple[Room, Membership | None]:
    """The room and the user's membership if they moderate it (owner, admin, staff).

    A room they cannot see is ``NotFound``; one they see but do not moderate is ``Forbidden``.
    """
    room = access_room(user, room_id, moderate=True)
    membership = membership_of(user, room.pk)
    if not is_moderator(user, membership):
        raise Forbidden()
    return room, membership


def may_moderate_target(user: User, mine: Membership | None, target_role: str | None) -> bool:
    """Whom a moderator may ban or mute: the owner anyone but themself, an admin
    members and non-members (``target_role`` None), staff anyone."""
    if user.is_staff:
        return True
    if mine is None:
        return False
    if mine.role == Membership.Role.OWNER:
        return target_role != Membership.Role.OWNER
    if mine.role == Membership.Role.ADMIN:
        return target_role in (None, Membership.Role.MEMBER)
    return False


def rooms_moderated_by(user: User) -> QuerySet[Room]:
    """Live rooms where the user is owner or admin (every live room for staff)."""
    if not user.is_authenticated:
        return Room.objects.none()
    live = Room.objects.filter(deleted_at__isnull=True)
    if user.is_staff:
        return live
    return live.filter(
        pk__in=Membership.objects.filter(user=user, role__in=(Membership.Role.OWNER, Membership.Role.ADMIN)).values(
            "room_id"
        )
    )


def bans_visible_to(user: User) -> QuerySet[Ban]:
    return Ban.objects.filter(room__in=rooms_moderated_by(user).values("pk"))


def reports_visible_to(user: User) -> QuerySet[Report]:
    return Report.objects.filter(room__in=rooms_moderated_by(user).values("pk"))


def invites_visible_to(user: User) -> QuerySet[Invite]:
    return Invite.objects.filter(room__in=rooms_moderated_by(user).values("pk"))
