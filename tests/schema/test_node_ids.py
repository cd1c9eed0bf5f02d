"""Node types resolve their ``id`` attribute once, not per resolved ID (schema/node_ids.py)."""

from __future__ import annotations

from strawberry import relay

from schema import schema
from schema.node_ids import _node_types, cache_node_id_attrs


def test_every_django_node_type_has_its_id_attribute_fixed():
    django_nodes = [cls for cls in _node_types(relay.Node) if hasattr(cls, "__strawberry_django_definition__")]
    assert {cls.__name__ for cls in django_nodes} >= {"UserType", "RoomType", "MessageType"}
    assert {cls.__name__: cls.__dict__.get("_id_attr") for cls in django_nodes} == {
        cls.__name__: "pk" for cls in django_nodes
    }
    assert schema is not None


def test_fixing_again_changes_nothing():
    assert cache_node_id_attrs() == []
