"""Dependencies point one way: backend wires, schema translates, chat decides."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_chat_never_imports_schema_or_backend():
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in {"schema", "backend"}
        )
        for path in (ROOT / "chat").rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_layering_check_sees_imports():
    # Guards the test above against silently checking nothing.
    assert "schema.context" in imported_modules(ROOT / "schema" / "accounts" / "queries.py")
    assert len(list((ROOT / "chat").rglob("*.py"))) > 5


# What only the transport may know: consumer attributes (Channels', Strawberry's)
# and the libraries of the server stack. chat/ reaches a socket through the
# engine's port (chat.realtime.RealtimeSocket) and the layer through its public API.
TRANSPORT_LIBRARIES = {"strawberry", "daphne", "autobahn", "twisted", "channels_redis", "graphql"}
TRANSPORT_MODULES = {"channels.consumer", "channels.generic", "channels.routing", "channels.testing"}
CONSUMER_ATTRIBUTES = {
    "listen_queues",
    "message_queue",
    "base_send",
    "channel_receive",
    "channel_layer",
    "channel_name",
    "listen_to_channel_generator",
}
# Django's model metadata is documented API (the Model _meta API).
DOCUMENTED_PRIVATE = {"_meta"}


def _private_names_defined(tree: ast.AST) -> set[str]:
    """Private names a module defines itself: functions, class attributes, ``self._x``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if name.startswith("_")}


def internals_reached(paths) -> dict[str, list[str]]:
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in paths}
    own = set().union(*(_private_names_defined(tree) for tree in trees.values()))
    found: dict[str, list[str]] = {}
    for path, tree in trees.items():
        hits = []
        for module in imported_modules(path):
            if module.split(".")[0] in TRANSPORT_LIBRARIES or any(
                module == m or module.startswith(m + ".") for m in TRANSPORT_MODULES
            ):
                hits.append(f"import {module}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            private = name.startswith("_") and not name.startswith("__")
            if (
                isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
                and name not in CONSUMER_ATTRIBUTES
            ):
                continue
            if name in CONSUMER_ATTRIBUTES or (private and name not in own and name not in DOCUMENTED_PRIVATE):
                hits.append(f"line {node.lineno}: .{name}")
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    return found


def test_chat_touches_no_consumer_or_library_internals():
    assert internals_reached(list((ROOT / "chat").rglob("*.py"))) == {}


def test_the_internals_check_sees_them():
    # Guards the test above: the live package does reach these, by design.
    found = internals_reached(list((ROOT / "schema" / "live").glob("*_adapter.py")))
    reached = " ".join(hit for hits in found.values() for hit in hits)
    for expected in (".message_queue", "._raw_info", ".base_send"):
        assert expected in reached
    assert "import strawberry.schema.schema" in reached


def test_library_internals_only_in_adapter_modules():
    """Outside its adapters, the live package uses the libraries' public API."""
    live = [p for p in (ROOT / "schema" / "live").glob("*.py") if not p.name.endswith("_adapter.py")]
    found = internals_reached(live)
    library_private = {
        path: [h for h in hits if h.startswith("line") and h.split(".", 1)[1] in LIBRARY_PRIVATE]
        for path, hits in found.items()
    }
    assert {path: hits for path, hits in library_private.items() if hits} == {}


# The private names the adapters reach (kept in step with them by the test above).
LIBRARY_PRIVATE = {
    "message_queue",
    "_raw_info",
    "_ws_handler",
    "base_send",
    "_tempDataLen",
    "_appSendBuffer",
    "dataBuffer",
    "_clean_expired",
    "operations",
    "tasks",
}
