"""The committed schema.graphql is the schema the code serves."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from export_schema import SDL_PATH, current_sdl

from schema import schema


def test_committed_sdl_matches_the_code():
    committed = SDL_PATH.read_text()
    assert committed == current_sdl(), "schema.graphql is out of date: run `make schema` and commit it"


def test_the_contract_operations_are_served():
    graphql = schema._schema
    query = graphql.get_type("Query").fields
    mutation = graphql.get_type("Mutation").fields
    assert {"users", "user", "rooms", "room", "messages", "me", "node"} <= set(query)
    assert set(query["users"].args) == {"search", "first", "after", "last", "before"}
    assert set(query["rooms"].args) == {"search", "joined", "first", "after", "last", "before"}
    assert set(query["messages"].args) == {"roomId", "search", "first", "after", "last", "before"}
    assert {
        "createRoom",
        "updateRoom",
        "deleteRoom",
        "joinRoom",
        "leaveRoom",
        "addMember",
        "removeMember",
        "startDirectChat",
        "sendMessage",
        "editMessage",
        "deleteMessage",
        "markRead",
    } <= set(mutation)
    assert {"roomId", "text", "clientId", "replyToId", "attachmentIds"} <= set(
        graphql.get_type("SendMessageInput").fields
    )
    assert {"name", "topic", "isPrivate", "memberIds"} == set(graphql.get_type("CreateRoomInput").fields)


def test_every_type_and_field_of_the_chat_api_is_described():
    graphql = schema._schema
    undocumented = []
    for name in ("Room", "RoomMember", "Message", "Attachment", "User", "CreateRoomInput", "SendMessageInput"):
        type_ = graphql.get_type(name)
        if not type_.description:
            undocumented.append(name)
        for field_name, field in type_.fields.items():
            if not field.description:
                undocumented.append(f"{name}.{field_name}")
    assert undocumented == []
