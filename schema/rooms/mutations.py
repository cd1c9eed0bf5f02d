from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.types import Info

from chat.services import rooms
from schema.context import signed_in_user
from schema.global_ids import decode_id, encode_id, upload_id
from schema.rooms.queries import refetch_room
from schema.rooms.types import RoomRole, RoomType


@strawberry.input(description="A new group room.")
class CreateRoomInput:
    name: str = strawberry.field(description="1 to 100 characters.")
    topic: str = strawberry.field(default="", description="At most 500 characters.")
    is_private: bool = strawberry.field(
        default=False, description="Private rooms are hidden from non-members and joined through `addMember` only."
    )
    member_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Users to add right away (they get an ADDED_TO_ROOM notification)."
    )


@strawberry.input(description="Changes to a room; omitted fields stay as they are.")
class UpdateRoomInput:
    room_id: strawberry.ID = strawberry.field(description="The room to change.")
    name: str | None = strawberry.field(default=None, description="1 to 100 characters.")
    topic: str | None = strawberry.field(default=None, description="At most 500 characters.")
    is_private: bool | None = strawberry.field(default=None, description="Make the room private or public.")
    avatar_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "The room's picture: the ID of an image you uploaded and have not attached to a message (used up, "
            "cropped square and re-encoded). `null` removes it; leave it out to keep it. Members see the "
            "change as `RoomUpdated`."
        ),
    )
    slow_mode_seconds: int | None = strawberry.field(
        default=None,
        description=(
            "0 to 3600: members other than owners and admins may send one message per interval; 0 turns it off."
        ),
    )


def _user_ids(values: list[strawberry.ID]) -> list[int]:
    return [decode_id(value, "User", "memberIds") for value in values]


@strawberry.type
class RoomMutations:
    @strawberry_django.mutation(
        description=(
            "Create a group room; you become its owner. FORBIDDEN when the server allows only staff to create "
            "rooms; ROOM_FULL if the initial members exceed the room size limit; RATE_LIMITED when too frequent."
        )
    )
    def create_room(self, info: Info, input: CreateRoomInput) -> RoomType:
        room = rooms.create_room(
            signed_in_user(info),
            input.name,
            topic=input.topic,
            is_private=input.is_private,
            member_ids=_user_ids(input.member_ids),
        )
        return refetch_room(info, room.pk)

    @strawberry_django.mutation(
        description=(
            "Change a group room's name, topic, privacy or slow mode. Owners, admins and staff only (FORBIDDEN). "
            "A public room's name must not be another live public room's, ignoring case (BAD_USER_INPUT)."
        )
    )
    def update_room(self, info: Info, input: UpdateRoomInput) -> RoomType:
        room = rooms.update_room(
            signed_in_user(info),
            decode_id(input.room_id, "Room", "roomId"),
            name=input.name,
            topic=input.topic,
            is_private=input.is_private,
            **({} if input.avatar_id is strawberry.UNSET else {"avatar_id": upload_id(input.avatar_id)}),
            slow_mode_seconds=input.slow_mode_seconds,
        )
        return refetch_room(info, room.pk)

    @strawberry_django.mutation(
        description="Delete a room for everyone (its owner or staff). Returns the deleted room's ID."
    )
    def delete_room(self, info: Info, room_id: strawberry.ID) -> strawberry.ID:
        room = rooms.delete_room(signed_in_user(info), decode_id(room_id, "Room", "roomId"))
        return strawberry.ID(encode_id("Room", room.pk))

    @strawberry_django.mutation(
        description=(
            "Join a public group room (joining one you are in changes nothing). ROOM_FULL at the size limit; "
            "direct chats cannot be joined (FORBIDDEN); private rooms answer NOT_FOUND (ask for `addMember`)."
        )
    )
    def join_room(self, info: Info, room_id: strawberry.ID) -> RoomType:
        room = rooms.join_room(signed_in_user(info), decode_id(room_id, "Room", "roomId"))
        return refetch_room(info, room.pk)

    @strawberry_django.mutation(
        description=(
            "Leave a group room. An owner who leaves hands ownership to the longest-standing admin, "
            "else member. Direct chats cannot be left (FORBIDDEN). Returns the room's ID."
        )
    )
    def leave_room(self, info: Info, room_id: strawberry.ID) -> strawberry.ID:
        room = rooms.leave_room(signed_in_user(info), decode_id(room_id, "Room", "roomId"))
        return strawberry.ID(encode_id("Room", room.pk))

    @strawberry_django.mutation(
        description=(
            "Add a user to a group room (owners, admins and staff; the way into a private room). "
            "Adding a member again changes nothing. ROOM_FULL at the size limit."
        )
    )
    def add_member(self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID) -> RoomType:
        room = rooms.add_member(
            signed_in_user(info), decode_id(room_id, "Room", "roomId"), decode_id(user_id, "User", "userId")
        )
        return refetch_room(info, room.pk)

    @strawberry_django.mutation(
        description=(
            "Remove a member from a group room: owners remove admins and members, admins remove members, "
            "staff anyone but the owner. Removing yourself is `leaveRoom`."
        )
    )
    def remove_member(self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID) -> RoomType:
        user = signed_in_user(info)
        room = rooms.remove_member(user, decode_id(room_id, "Room", "roomId"), decode_id(user_id, "User", "userId"))
        return refetch_room(info, room.pk)

    @strawberry_django.mutation(
        description=(
            "Change a member's role in a group room: the owner or staff make a member an ADMIN or an admin a "
            "MEMBER. OWNER hands over ownership (the owner only; you become an ADMIN). Changing your own role is "
            "BAD_USER_INPUT (for those who may change roles); the owner's role, direct chats and other callers are "
            "FORBIDDEN; a user who is not a "
            "member is NOT_FOUND. Setting the role a member has changes nothing."
        )
    )
    def set_member_role(self, info: Info, room_id: strawberry.ID, user_id: strawberry.ID, role: RoomRole) -> RoomType:
        room = rooms.set_member_role(
            signed_in_user(info),
            decode_id(room_id, "Room", "roomId"),
            decode_id(user_id, "User", "userId"),
            role.value,
        )
        return refetch_room(info, room.pk)

    @strawberry_django.mutation(
        description=(
            "The one-to-one chat with a user, created (and the user notified) if there is none yet. "
            "Calling it again, or concurrently, returns the same room."
        )
    )
    def start_direct_chat(self, info: Info, user_id: strawberry.ID) -> RoomType:
        room = rooms.start_direct_chat(signed_in_user(info), decode_id(user_id, "User", "userId"))
        return refetch_room(info, room.pk)
