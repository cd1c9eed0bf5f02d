"""Resume cursors: a subscription's position in each of its rooms, as an opaque string.

``r1.<urlsafe base64 of "room:seq,room:seq">``, rooms in ascending order. A
cursor holds the whole position vector, so ``after`` resumes every room of an
all-rooms subscription exactly.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping

from chat.errors import BadUserInput

CURSOR_VERSION = "r1"
_CURSOR_BODY = re.compile(r"[A-Za-z0-9_-]*")


def encode_cursor(positions: Mapping[int, int]) -> str:
    """The cursor of ``{room: seq}``."""
    return _encode_positions(tuple(sorted(positions.items())))


def cursor_with(positions: Mapping[int, int], room: int, seq: int) -> str:
    """The cursor of ``positions`` with ``room`` moved to ``seq``: a subscription's
    cursor after an event, computed for each subscriber of a fan-out."""
    if len(positions) == 1 and room in positions:  # one room: most subscriptions
        return _encode_positions(((room, seq),))
    return encode_cursor({**positions, room: seq})


@functools.lru_cache(maxsize=4096)  # the subscribers of a room share their positions
def _encode_positions(positions: tuple[tuple[int, int], ...]) -> str:
    raw = ",".join(f"{room}:{seq}" for room, seq in positions)
    return f"{CURSOR_VERSION}.{base64.urlsafe_b64encode(raw.encode()).decode().rstrip('=')}"


def decode_cursor(cursor: str) -> dict[int, int]:
    """The position vector of a cursor; ``BadUserInput`` if it is not one of ours."""
    try:
        version, separator, body = cursor.partition(".")
        if version != CURSOR_VERSION or not separator or not _CURSOR_BODY.fullmatch(body):
            raise ValueError(version)
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        positions: dict[int, int] = {}
        for pair in filter(None, raw.split(",")):
            room, seq = pair.split(":")
            positions[int(room)] = int(seq)
            if positions[int(room)] < 0 or int(room) <= 0:
                raise ValueError(pair)
        return positions
    except (ValueError, UnicodeDecodeError, binascii.Error, AttributeError):
        raise BadUserInput("Invalid cursor.", fields={"after": ["Not a cursor of this server."]}) from None
