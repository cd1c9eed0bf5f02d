from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat.errors import NotFound
from chat.models import User
from chat.services import moderation
from schema.accounts.types import UserType
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.moderation.types import InviteType, ReportReason, ReportType
from schema.rooms.queries import refetch_room
from schema.rooms.types import RoomType


def _refetch_user(info: Info, pk: int) -> User:
    user = optimize(User.objects.filter(pk=pk), info).first()
    if user is None:
        raise NotFound("User not found.")
    return user


def _moderate_member(action, info: Info, room_id: strawberry.ID, user_id: strawberry.ID, *args) -> RoomType:
    """Run a moderation ``action(actor, room, user, *args)`` on a member and answer the room."""
    room = action(
        signed_in_user(info), decode_id(room_id, "Room", "roomId"), decode_id(user_id, "User", "userId"), *args
    )
    return refetch_room(info, room.pk)


@strawberry.type
class ModerationMutations:
    @strawberry_django.mutation(
        description=(
            "Ban a user from a room (its owner and admins; staff anyone; an admin cannot ban the owner or "
            "another admin). A member is removed with `MemberLeft` (reason BANNED), the last event their "
            "subscriptions get from the room; while the ban stands `joinRoom`, `addMember`, invite links and "
            "`startDirectChat` answer FORBIDDEN. Banning again changes nothing."
        )
    )
    def ban_member(
        self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID, reason: str | None = None
    ) -> RoomType:
        return _moderate_member(moderation.ban_member, info, room_id, user_id, reason)

    @strawberry_django.mutation(
        description="Lift a ban (same rights as `banMember`). The user may join again; they are not added back."
    )
    def unban_member(self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID) -> RoomType:
        return _moderate_member(moderation.unban_member, info, room_id, user_id)

    @strawberry_django.mutation(
        description=(
            "Mute a member until `until` (null: until `unmuteMember`), with the rights of `banMember`. A muted "
            "member stays and reads, but `sendMessage`, `editMessage`, `addReaction` and `setTyping` answer "
            "FORBIDDEN. Writes a `MemberMuted` event; muting again moves the end. The mute outlives leaving "
            "and rejoining."
        )
    )
    def mute_member(
        self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID, until: datetime | None = None
    ) -> RoomType:
        return _moderate_member(moderation.mute_member, info, room_id, user_id, until)

    @strawberry_django.mutation(
        description="End a mute (`MemberUnmuted`). Unmuting a member who is not muted changes nothing."
    )
    def unmute_member(self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID) -> RoomType:
        return _moderate_member(moderation.unmute_member, info, room_id, user_id)

    @strawberry_django.mutation(
        description=(
            "Block a user: they cannot start a direct chat with you nor write into yours (they are told only "
            '"You cannot message this user."), and their mentions do not notify you. In shared rooms their '
            "messages still arrive with `senderBlocked: true`. Nobody is told. Returns the blocked user."
        )
    )
    def block_user(self, info: Info, user_id: strawberry.ID) -> UserType:
        user = moderation.block_user(signed_in_user(info), decode_id(user_id, "User", "userId"))
        return _refetch_user(info, user.pk)

    @strawberry_django.mutation(description="Unblock a user. Unblocking one you have not blocked changes nothing.")
    def unblock_user(self, info: Info, user_id: strawberry.ID) -> UserType:
        user = moderation.unblock_user(signed_in_user(info), decode_id(user_id, "User", "userId"))
        return _refetch_user(info, user.pk)

    @strawberry_django.mutation(
        description=(
            "Report a message of a room you belong to, once per message (again: BAD_USER_INPUT), not your own. "
            "The room's owner and admins see it in `Room.reports`, staff in the admin, with the text as it was."
        )
    )
    def report_message(self, info: Info, id: strawberry.ID, reason: ReportReason, comment: str | None = None) -> bool:
        moderation.report_message(signed_in_user(info), decode_id(id, "Message"), reason.value, comment)
        return True

    @strawberry_django.mutation(
        description="Close a report (the room's owner and admins, staff); it leaves `Room.reports`."
    )
    def resolve_report(self, info: Info, id: strawberry.ID) -> ReportType:
        report = moderation.resolve_report(signed_in_user(info), decode_id(id, "Report"))
        return optimize(ReportType.get_queryset(type(report).objects.filter(pk=report.pk), info), info).get()

    @strawberry_django.mutation(
        description=(
            "Make an invite link to a group room (owners, admins, staff; private rooms too). `maxUses`: how many "
            "may join with it (1 to 1000000; null: no limit); `expiresIn`: seconds until it stops working "
            "(1 to 31536000; null: never)."
        )
    )
    def create_invite(
        self, info: Info, room_id: strawberry.ID, max_uses: int | None = None, expires_in: int | None = None
    ) -> InviteType:
        invite = moderation.create_invite(
            signed_in_user(info), decode_id(room_id, "Room", "roomId"), max_uses=max_uses, expires_in=expires_in
        )
        return InviteType.from_model(invite)

    @strawberry_django.mutation(
        description="Revoke an invite link (its room's owners, admins, staff; NOT_FOUND for anyone else)."
    )
    def revoke_invite(self, info: Info, code: str) -> InviteType:
        return InviteType.from_model(moderation.revoke_invite(signed_in_user(info), code))

    @strawberry_django.mutation(
        description=(
            "Join a room with an invite code (private rooms too). An expired, used-up, revoked or unknown code "
            "answers NOT_FOUND alike; a banned user FORBIDDEN. Already a member: nothing is used up."
        )
    )
    def join_by_invite(self, info: Info, code: str) -> RoomType:
        room = moderation.join_by_invite(signed_in_user(info), code)
        return refetch_room(info, room.pk)
