"""Rooms: creating, changing, joining, leaving, members and direct chats.

Every function checks access through ``chat.access``, validates, and writes in
one transaction together with the event others must see (under the room lock,
so per-room sequence numbers follow commit order).
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import access, events, ratelimit
from chat.errors import BadUserInput, Forbidden, NotFound, RoomFull
from chat.models import Event, Membership, Notification, Room, User
from chat.services import avatars
from chat.services.notifications import notify

Role = Membership.Role
NAME_MAX = Room._meta.get_field("name").max_length
TOPIC_MAX = Room._meta.get_field("topic").max_length


def parse_id(value, what: str = "Object") -> int:
    """A database id from an int or a numeric string; ``NotFound`` for anything else."""
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise NotFound(f"{what} not found.") from None
    if not 0 < pk < 2**63:
        raise NotFound(f"{what} not found.")
    return pk


def _clean_name(name) -> str:
    name = (name or "").strip()
    if not name:
        raise BadUserInput("A room needs a name.", fields={"name": ["This field is required."]})
    if len(name) > NAME_MAX:
        raise BadUserInput(
            f"Room names are at most {NAME_MAX} characters.",
            fields={"name": [f"At most {NAME_MAX} characters."]},
        )
    return name


def _clean_topic(topic) -> str:
    topic = (topic or "").strip()
    if len(topic) > TOPIC_MAX:
        raise BadUserInput(
            f"Topics are at most {TOPIC_MAX} characters.",
            fields={"topic": [f"At most {TOPIC_MAX} characters."]},
        )
    return topic


def _active_user(user_id) -> User:
    pk = parse_id(user_id, "User")
    user = User.objects.filter(pk=pk, is_active=True).first()
    if user is None:
        raise NotFound("User not found.")
    return user


def _join(room: Room, user: User, role: str, by: User | None) -> Membership:
    """Add ``user`` to the locked ``room`` and record their ``MemberJoined`` event."""
    membership = Membership.objects.create(room=room, user=user, role=role)
    event = events.record_event(
        room,
        Event.Kind.MEMBER_JOINED,
        {"user": events.user_snapshot(user), "role": role, "by": events.user_snapshot(by)},
        actor=by or user,
        also_notify=[user.pk],
    )
    membership.joined_seq = event.seq
    Membership.objects.filter(pk=membership.pk).update(joined_seq=event.seq)
    return membership


PUBLIC_NAME_TAKEN = "A public room with this name already exists."


def _ensure_public_name_free(name: str, is_private: bool, exclude_pk: int | None = None) -> None:
    """Public group room names are unique case-insensitively among live rooms, so
    that a second "general" cannot pass for the first. The database constraint
    ``room_public_name_ci_unique`` settles races; this gives the clear error."""
    if is_private:
        return
    taken = Room.objects.filter(kind=Room.Kind.GROUP, is_private=False, deleted_at__isnull=True, name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise BadUserInput(PUBLIC_NAME_TAKEN, fields={"name": [PUBLIC_NAME_TAKEN]})


def _is_public_name_clash(error: IntegrityError) -> bool:
    return "room_public_name_ci_unique" in str(error)


def _ensure_room_has_space(room: Room, adding: int = 1) -> None:
    # Called with the room row locked: concurrent joins wait for each other, so
    # the count cannot go stale between this check and the insert.
    if Membership.objects.filter(room=room).count() + adding > settings.MAX_USERS_IN_ROOM:
        raise RoomFull(f"This room is full ({settings.MAX_USERS_IN_ROOM} members at most).")


def _require_group(room: Room) -> None:
    if room.kind == Room.Kind.DIRECT:
        raise Forbidden("Direct chats have exactly two members and cannot be changed.")


def create_room(actor, name, topic="", is_private=False, member_ids=()) -> Room:
    """Create a group room owned by ``actor`` with the given initial members."""
    actor = access.require_user(actor)
    if settings.ROOM_CREATION_STAFF_ONLY and not actor.is_staff:
        raise Forbidden("Only staff may create rooms on this server.")
    name = _clean_name(name)
    topic = _clean_topic(topic)
    ids = []
    for raw in member_ids or ():
        try:
            pk = parse_id(raw, "User")
        except NotFound:
            raise BadUserInput("Unknown user in memberIds.", fields={"memberIds": [f"Unknown user {raw}."]}) from None
        if pk != actor.pk and pk not in ids:
            ids.append(pk)
    members = {u.pk: u for u in User.objects.filter(pk__in=ids, is_active=True)}
    missing = [pk for pk in ids if pk not in members]
    if missing:
        raise BadUserInput("Unknown user in memberIds.", fields={"memberIds": [f"Unknown user {missing[0]}."]})
    if 1 + len(ids) > settings.MAX_USERS_IN_ROOM:
        raise RoomFull(f"A room has {settings.MAX_USERS_IN_ROOM} members at most.")
    _ensure_public_name_free(name, bool(is_private))
    ratelimit.throttle("create_room", actor)

    try:
        with transaction.atomic():
            created = Room.objects.create(name=name, topic=topic, is_private=bool(is_private), created_by=actor)
            room = events.lock_room(created.pk)
            _join(room, actor, Role.OWNER, None)
            for pk in ids:
                _join(room, members[pk], Role.MEMBER, actor)
            notify(ids, Notification.Kind.ADDED_TO_ROOM, room, actor)
    except IntegrityError as error:
        if not _is_public_name_clash(error):
            raise
        raise BadUserInput(PUBLIC_NAME_TAKEN, fields={"name": [PUBLIC_NAME_TAKEN]}) from None
    return room


def update_room(
    actor, room_id, *, name=None, topic=None, is_private=None, avatar_id=avatars.KEEP, slow_mode_seconds=None
) -> Room:
    """Change a group room's name, topic, privacy, picture or slow mode (owner, admin or staff).

    ``avatar_id``: an upload of the actor's to use as the room's picture, ``None`` to
    clear it, ``KEEP`` (left out) to leave it."""
    actor = access.require_user(actor)
    room = access.access_room(actor, parse_id(room_id, "Room"), moderate=True)
    access.require_role(access.membership_of(actor, room.pk), Role.OWNER, Role.ADMIN, user=actor)
    _require_group(room)
    changes = {}
    if name is not None:
        changes["name"] = _clean_name(name)
    if topic is not None:
        changes["topic"] = _clean_topic(topic)
    if is_private is not None:
        changes["is_private"] = bool(is_private)
    if slow_mode_seconds is not None:
        from chat.services.moderation import clean_slow_mode

        changes["slow_mode_seconds"] = clean_slow_mode(slow_mode_seconds)
    ratelimit.throttle("manage_room", actor)
    prepared = avatars.prepare(actor, avatar_id) if avatar_id is not avatars.KEEP else None
    try:
        with transaction.atomic():
            room = events.lock_room(room.pk)
            changes = {k: v for k, v in changes.items() if getattr(room, k) != v}
            if "name" in changes or "is_private" in changes:
                _ensure_public_name_free(
                    changes.get("name", room.name), changes.get("is_private", room.is_private), exclude_pk=room.pk
                )
            if avatar_id is not avatars.KEEP and (prepared is not None or room.avatar_id is not None):
                previous = room.avatar_id
                changes["avatar"] = avatars.store(actor, prepared)
                avatars.discard(previous)
            if not changes:
                return room
            for key, value in changes.items():
                setattr(room, key, value)
            room.save(update_fields=[*changes, "updated_at"])
            events.record_event(room, Event.Kind.ROOM_UPDATED, {"room": events.room_snapshot(room)}, actor=actor)
    except IntegrityError as error:
        if not _is_public_name_clash(error):
            raise
        raise BadUserInput(PUBLIC_NAME_TAKEN, fields={"name": [PUBLIC_NAME_TAKEN]}) from None
    return room


def delete_room(actor, room_id) -> Room:
    """Soft-delete a room (its owner, or staff). Every member is told."""
    actor = access.require_user(actor)
    room = access.access_room(actor, parse_id(room_id, "Room"), moderate=True)
    access.require_role(access.membership_of(actor, room.pk), Role.OWNER, user=actor)
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        member_ids = list(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        events.record_event(
            room, Event.Kind.ROOM_DELETED, {"room": events.room_snapshot(room)}, actor=actor, also_notify=member_ids
        )
        room.deleted_at = timezone.now()
        # A deleted direct chat frees its pair: the two may start a new one.
        room.direct_key = None
        room.save(update_fields=["deleted_at", "direct_key", "updated_at"])
    return room


def join_room(actor, room_id) -> Room:
    """Join a public group room. Joining a room one is in already changes nothing."""
    actor = access.require_user(actor)
    room = access.access_room(actor, parse_id(room_id, "Room"))
    ratelimit.throttle("membership", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        if Membership.objects.filter(room=room, user=actor).exists():
            return room
        _require_group(room)
        if room.is_private:  # visible only to members, so unreachable unless a member left meanwhile
            raise NotFound("Room not found.")
        access.require_not_banned(actor, room.pk)
        _ensure_room_has_space(room)
        _join(room, actor, Role.MEMBER, None)
    return room


def _remove(room: Room, membership: Membership, reason: str, by: User | None) -> None:
    """Delete ``membership`` from the locked ``room``; an owner hands over ownership."""
    membership.delete()
    if membership.role == Role.OWNER:
        # The longest-standing admin, else the longest-standing member, becomes owner.
        others = Membership.objects.filter(room=room).order_by("joined_at", "pk")
        heir = others.filter(role=Role.ADMIN).first() or others.filter(role=Role.MEMBER).first()
        if heir is not None:
            Membership.objects.filter(pk=heir.pk).update(role=Role.OWNER)
    events.record_event(
        room,
        Event.Kind.MEMBER_LEFT,
        {"user": events.user_snapshot(membership.user), "reason": reason, "by": events.user_snapshot(by)},
        actor=by or membership.user,
        also_notify=[membership.user_id],
    )


def leave_all_rooms(user: User, reason: str = "left") -> list[int]:
    """Take ``user`` out of every live room they are in (the caller's transaction,
    deleting the account, is expected around it); returns the room ids.

    Each room goes through ``_remove`` like ``leave_room`` (an owner hands over
    ownership, a ``MemberLeft`` is recorded); direct chats too, so that the
    partner learns it. Rooms are locked in id order, like any multi-room writer should.
    """
    left = []
    room_ids = (
        Membership.objects.filter(user=user, room__deleted_at__isnull=True)
        .order_by("room_id")
        .values_list("room_id", flat=True)
    )
    for room_id in list(room_ids):
        room = events.lock_room(room_id)
        membership = Membership.objects.filter(room=room, user=user).select_related("user").first()
        if membership is not None:
            _remove(room, membership, reason, None)
            left.append(room_id)
    return left


def leave_room(actor, room_id) -> Room:
    """Leave a group room. The last one out leaves an empty room behind (staff may delete it)."""
    actor = access.require_user(actor)
    room, _ = access.access_room_as_member(actor, parse_id(room_id, "Room"))
    _require_group(room)
    ratelimit.throttle("membership", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        membership = Membership.objects.filter(room=room, user=actor).select_related("user").first()
        if membership is None:
            raise NotFound("Room not found.")
        _remove(room, membership, "left", None)
    return room


def add_member(actor, room_id, user_id) -> Room:
    """Add a user to a group room (owner, admin or staff). This is how private rooms are joined."""
    actor = access.require_user(actor)
    room = access.access_room(actor, parse_id(room_id, "Room"), moderate=True)
    access.require_role(access.membership_of(actor, room.pk), Role.OWNER, Role.ADMIN, user=actor)
    _require_group(room)
    user = _active_user(user_id)
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        if Membership.objects.filter(room=room, user=user).exists():
            return room
        access.require_not_banned(user, room.pk)
        _ensure_room_has_space(room)
        _join(room, user, Role.MEMBER, actor)
        notify([user.pk], Notification.Kind.ADDED_TO_ROOM, room, actor)
    return room


def remove_member(actor, room_id, user_id) -> Room:
    """Remove a member from a group room.

    Owners remove admins and members, admins remove members, staff anyone but
    the owner. Nobody removes the owner: ownership moves when the owner leaves.
    Removing oneself is leaving.
    """
    actor = access.require_user(actor)
    room = access.access_room(actor, parse_id(room_id, "Room"), moderate=True)
    mine = access.membership_of(actor, room.pk)
    access.require_role(mine, Role.OWNER, Role.ADMIN, user=actor)
    _require_group(room)
    target_id = parse_id(user_id, "User")
    if target_id == actor.pk:
        return leave_room(actor, room.pk)
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        target = Membership.objects.filter(room=room, user_id=target_id).select_related("user").first()
        if target is None:
            raise NotFound("This user is not a member of the room.")
        allowed = {Role.OWNER: {Role.ADMIN, Role.MEMBER}, Role.ADMIN: {Role.MEMBER}}
        if actor.is_staff and (mine is None or mine.role != Role.OWNER):
            may_remove = {Role.ADMIN, Role.MEMBER}
        else:
            may_remove = allowed.get(mine.role if mine else None, set())
        if target.role not in may_remove:
            raise Forbidden("You may not remove this member.")
        _remove(room, target, "removed", actor)
    return room


def set_member_role(actor, room_id, user_id, role) -> Room:
    """Change a member's role in a group room.

    The owner (or staff) makes a member an admin or an admin a member. Only the
    owner hands over ownership (``role`` owner): the previous owner becomes an
    admin in the same transaction, and both changes are recorded. Nobody changes
    their own role (``BadUserInput``); the owner's role changes only through a
    handover. Setting the role a member has already changes nothing.
    """
    actor = access.require_user(actor)
    room = access.access_room(actor, parse_id(room_id, "Room"), moderate=True)
    access.require_role(access.membership_of(actor, room.pk), Role.OWNER, user=actor)
    _require_group(room)
    if role not in Role.values:
        raise BadUserInput("Unknown role.", fields={"role": [f"Unknown role {role}."]})
    target_id = parse_id(user_id, "User")
    if target_id == actor.pk:
        raise BadUserInput("You cannot change your own role.", fields={"userId": ["Choose another member."]})
    ratelimit.throttle("manage_room", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        mine = access.membership_of(actor, room.pk)
        access.require_role(mine, Role.OWNER, user=actor)  # again, under the lock
        target = Membership.objects.filter(room=room, user_id=target_id).select_related("user").first()
        if target is None:
            raise NotFound("This user is not a member of the room.")
        if target.role == Role.OWNER:
            raise Forbidden("The owner's role changes only when they hand over ownership.")
        if role == Role.OWNER and (mine is None or mine.role != Role.OWNER):
            raise Forbidden("Only the owner may hand over ownership.")
        if target.role == role:
            return room
        changes = [(target, role)]
        if role == Role.OWNER:
            mine.user = actor
            changes.append((mine, Role.ADMIN))
        for membership, new_role in changes:
            Membership.objects.filter(pk=membership.pk).update(role=new_role)
            events.record_event(
                room,
                Event.Kind.MEMBER_ROLE_CHANGED,
                {"user": events.user_snapshot(membership.user), "role": new_role, "by": events.user_snapshot(actor)},
                actor=actor,
            )
    return room


def start_direct_chat(actor, user_id) -> Room:
    """The direct chat between ``actor`` and the user, created if there is none yet.

    Concurrent calls for the same pair return the same room: the unique
    ``direct_key`` constraint lets one insert win; the loser reads the winner's.
    """
    actor = access.require_user(actor)
    partner = _active_user(user_id)
    if partner.pk == actor.pk:
        raise BadUserInput("A direct chat needs another user.", fields={"userId": ["Choose someone else."]})
    access.require_may_start_direct_chat(actor, partner)
    key = Room.direct_key_for(actor.pk, partner.pk)
    existing = Room.objects.filter(direct_key=key, deleted_at__isnull=True).first()
    if existing is not None:
        # Staff may have banned one of the two from their chat: it stays closed to them.
        access.require_not_banned(actor, existing.pk)
        return existing
    ratelimit.throttle("create_room", actor)
    try:
        with transaction.atomic():
            name = f"{actor.username}, {partner.username}"[:NAME_MAX]
            created = Room.objects.create(
                name=name, kind=Room.Kind.DIRECT, is_private=True, direct_key=key, created_by=actor
            )
            room = events.lock_room(created.pk)
            _join(room, actor, Role.MEMBER, None)
            _join(room, partner, Role.MEMBER, actor)
            notify([partner.pk], Notification.Kind.DIRECT_CHAT_STARTED, room, actor)
    except IntegrityError:
        # Another request created the pair's room between our check and insert.
        return Room.objects.get(direct_key=key, deleted_at__isnull=True)
    return room
