"""Global IDs (relay) to database ids, with client-friendly errors."""

from __future__ import annotations

from strawberry import relay

from chat.errors import BadUserInput, NotFound


def decode_id(value, type_name: str, argument: str = "id") -> int:
    """The database id in a global ID of ``type_name``.

    A malformed ID answers ``BAD_USER_INPUT``; the ID of another type, or one
    that cannot exist, answers ``NOT_FOUND`` like a missing object.
    """
    try:
        gid = relay.GlobalID.from_id(str(value))
    except Exception:  # noqa: BLE001 - any decoding failure is the client's malformed input
        raise BadUserInput(f"Malformed ID in {argument}.", fields={argument: ["Malformed ID."]}) from None
    if gid.type_name != type_name:
        raise NotFound(f"{type_name} not found.")
    try:
        pk = int(gid.node_id)
    except ValueError:
        raise NotFound(f"{type_name} not found.") from None
    if not 0 < pk < 2**63:
        raise NotFound(f"{type_name} not found.")
    return pk


def encode_id(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def upload_id(value) -> int | None:
    """The database id of an upload named as ``avatarId`` (``None`` stays ``None``)."""
    return None if value is None else decode_id(value, "Attachment", "avatarId")
