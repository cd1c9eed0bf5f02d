"""The floor: a bare Channels consumer, no GraphQL.

It joins ``room.<id>`` on the project's channel layer and forwards every event
the real services publish there as one text frame. The frame is serialized once
per event and process (a small cache keyed by room and sequence), which is the
least work any subscriber path can do: the GraphQL path is measured against it.
Events skip Channels' per-message database-connection cleanup (a thread hop per
message; this consumer never touches the database), as Strawberry's consumer
does for the messages it queues for subscriptions.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from channels.generic.websocket import AsyncWebsocketConsumer

from chat.events import room_group

_FRAMES: OrderedDict[tuple, str] = OrderedDict()
_FRAMES_MAX = 4096


def frame_for(message: dict) -> str:
    key = (message.get("room"), message.get("seq"), message.get("kind"))
    if key[1] is None:  # ephemeral events carry no sequence: serialize each time
        return json.dumps(message)
    frame = _FRAMES.get(key)
    if frame is None:
        frame = _FRAMES[key] = json.dumps(message)
        if len(_FRAMES) > _FRAMES_MAX:
            _FRAMES.popitem(last=False)
    return frame


class BaselineConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = room_group(int(self.scope["url_route"]["kwargs"]["room_id"]))
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def dispatch(self, message):
        # Events go straight out, without Channels' handler lookup and its per-message
        # database-connection cleanup (see the module docstring).
        if message["type"] in ("chat.event", "chat.ephemeral"):
            await self.send(text_data=frame_for(message))
            return
        await super().dispatch(message)
