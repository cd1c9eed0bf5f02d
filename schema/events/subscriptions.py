"""Subscriptions: room events (live, gap-free, resumable) and personal notifications."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from channels.db import database_sync_to_async
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat import access, realtime
from chat.models import Notification
from schema.context import signed_in_user
from schema.events.types import MessageAdded, RoomEvent, build_event
from schema.global_ids import decode_id
from schema.live.consumer import service_failures_close_the_socket
from schema.live.fast_path import FastPath
from schema.live.http_stream import HttpSubscription
from schema.notifications.types import NotificationType


def stored_notification(info: Info, user, pk) -> Notification | None:
    """The stored notification a live message announces, loaded for the subscription's selection."""
    if not isinstance(pk, int):
        return None
    return optimize(access.notifications_visible_to(user).filter(pk=pk), info).first()


async def _events(
    stream, sink: FastPath | HttpSubscription | None, http: HttpSubscription | None
) -> AsyncGenerator[RoomEvent, None]:
    """The events of ``stream`` through Strawberry's pipeline.

    Over WebSocket, once the subscription is live and idle, the engine takes it over
    (the sink delivers what comes next) and this generator, and with it Strawberry's
    operation, ends quietly. Over HTTP every stored event goes to the stream's sink
    (its frame carries the cursor); what it declines comes out of Strawberry's
    pipeline as over WebSocket."""
    async for delivery in stream:
        if isinstance(delivery, realtime.Idle):
            if isinstance(sink, FastPath) and sink.take_over(delivery):
                delivery.hand_over(stream)
                return
            delivery.decline()
            continue
        if http is not None and await http.deliver(delivery):
            continue
        yield await build_event(delivery)


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(
        description=(
            "Everything that happens in your rooms, live. With `roomId`: that room only (members only). "
            "Without it: every room you have joined, following your joins and leaves while it runs "
            "(after `joinRoom`, `addMember` or `startDirectChat` the new room's events arrive here; after "
            "`leaveRoom`, being removed or `deleteRoom`, your own `MemberLeft` or the `RoomDeleted` is that "
            "room's last event). Each room's stored events arrive exactly once and in order (`seq`). "
            "Pass the `cursor` of the last event you processed as `after` to resume after a disconnect: "
            "the events you missed are replayed first (from when you joined, for rooms joined since), then "
            "live ones follow, with no gap and no duplicate. Typing and presence are live only."
        )
    )
    async def room_events(
        self, info: Info, room_id: strawberry.ID | None = None, after: str | None = None
    ) -> AsyncGenerator[RoomEvent, None]:
        user = signed_in_user(info)
        room_pk = decode_id(room_id, "Room", "roomId") if room_id is not None else None
        http = HttpSubscription.for_operation(info)
        if http is not None:
            after = http.resume_after(after)
        sink = http or FastPath.for_operation(info)
        stream = realtime.room_events(user, room_id=room_pk, after=after, sink=sink)
        async with service_failures_close_the_socket(info):
            async for event in _events(stream, sink, http):
                yield event

    @strawberry.subscription(
        description=(
            "New messages only: of one room (`roomId`, members only) or of every room you have joined "
            "(following joins and leaves). Use `roomEvents` to also see edits, deletions and resume."
        )
    )
    async def message_added(
        self, info: Info, room_id: strawberry.ID | None = None
    ) -> AsyncGenerator[MessageAdded, None]:
        user = signed_in_user(info)
        room_pk = decode_id(room_id, "Room", "roomId") if room_id is not None else None
        http = HttpSubscription.for_operation(info)
        sink = http or FastPath.for_operation(info)
        stream = realtime.room_events(user, room_id=room_pk, kinds={"MessageAdded"}, ephemeral=False, sink=sink)
        async with service_failures_close_the_socket(info):
            async for event in _events(stream, sink, http):
                yield event

    @strawberry.subscription(
        description=(
            "Your notifications as they are stored (see the `notifications` query): mentions, messages of rooms "
            "set to ALL, being added to a room, direct chats started with you. Each carries its stored `id` for "
            "`markNotificationsRead`. Live only: what arrived while you were away is in the `notifications` query."
        )
    )
    async def notifications(self, info: Info) -> AsyncGenerator[NotificationType, None]:
        user = signed_in_user(info)
        HttpSubscription.for_operation(info)  # over HTTP: the stream starts (no cursor, no sink)
        async with service_failures_close_the_socket(info):
            async for message in realtime.notifications(user):
                notification = await database_sync_to_async(stored_notification)(info, user, message.get("id"))
                if notification is not None:  # deleted since (its message was deleted)
                    yield notification
