"""Dependencies point one way: backend wires, schema translates, chat decides."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    return _imports(ast.parse(path.read_text(), filename=str(path)))


def _imports(tree: ast.AST) -> set[str]:
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
# engine's ports (chat.realtime's Sink, DrivingSink and SignedInConnection, which
# the transports implement) and the layer through its public API.
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
    "run_task",
}
# Django's model metadata is documented API (the Model _meta API).
DOCUMENTED_PRIVATE = {"_meta"}
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in {"self", "cls"}


def attribute_uses(tree: ast.AST):
    """``(line, name, on_self, stored)`` for each attribute a module reaches: ``obj.name``,
    and ``getattr``/``setattr``/``hasattr``/``delattr`` with a literal name. ``on_self``:
    on ``self``/``cls`` in a method of one of the module's classes (a module-level
    function patched onto a library class gets the library's object as ``self``)."""
    methods = {
        id(function)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for function in node.body
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
    }

    def visit(node: ast.AST, in_method: bool):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_method = in_method or id(node) in methods  # a closure in a method shares its self
        if isinstance(node, ast.Attribute):
            yield node.lineno, node.attr, in_method and _is_self(node.value), isinstance(node.ctx, ast.Store)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            yield node.lineno, node.args[1].value, in_method and _is_self(node.args[0]), node.func.id == "setattr"
        for child in ast.iter_child_nodes(node):
            yield from visit(child, in_method)

    yield from visit(tree, False)


def class_attributes(tree: ast.AST, *, set_in_init_only: bool = False) -> set[str]:
    """Attributes the module's classes define: names in a class body (assignments,
    methods), ``__slots__``, and what its methods store on ``self``/``cls`` (only
    ``__init__``'s with ``set_in_init_only``)."""
    names = set()
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        for statement in cls.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(statement.name)
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                names.add(statement.target.id)
            elif isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                        if target.id == "__slots__":
                            names.update(c.value for c in ast.walk(statement.value) if isinstance(c, ast.Constant))
        for method in cls.body:
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if set_in_init_only and method.name != "__init__":
                continue
            for node in ast.walk(method):
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
                    names.add(node.attr)
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "setattr"
                    and len(node.args) >= 2
                    and _is_self(node.args[0])
                    and isinstance(node.args[1], ast.Constant)
                ):
                    names.add(node.args[1].value)
    return names


def module_names(tree: ast.AST, *, nested: bool = True) -> set[str]:
    """Names a module defines: its globals, and its functions and classes (also
    nested ones, unless not ``nested``)."""
    names = set()
    for node in ast.walk(tree) if nested else tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    for statement in tree.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id)
        elif isinstance(statement, ast.Assign):
            names.update(t.id for t in statement.targets if isinstance(t, ast.Name))
    return names


def internals_in_sources(sources: dict[str, str]) -> dict[str, list[str]]:
    """What the modules ``sources`` (path: source, analysed together) reach of the
    transport: its libraries' imports, consumer attributes, and private attributes
    that none of them defines (a private attribute of a class of theirs, or a name
    of theirs, is their own)."""
    trees = {path: ast.parse(source, filename=path) for path, source in sources.items()}
    own = set().union(*(class_attributes(tree) | module_names(tree) for tree in trees.values()))
    found: dict[str, list[str]] = {}
    for path, tree in trees.items():
        hits = [
            f"import {module}"
            for module in sorted(_imports(tree))
            if module.split(".")[0] in TRANSPORT_LIBRARIES
            or any(module == m or module.startswith(m + ".") for m in TRANSPORT_MODULES)
        ]
        for line, name, on_self, _ in attribute_uses(tree):
            if on_self and name not in CONSUMER_ATTRIBUTES:
                continue
            if name in CONSUMER_ATTRIBUTES or (_private(name) and name not in own and name not in DOCUMENTED_PRIVATE):
                hits.append(f"line {line}: .{name}")
        if hits:
            found[path] = hits
    return found


def internals_reached(paths) -> dict[str, list[str]]:
    return internals_in_sources({str(path.relative_to(ROOT)): path.read_text() for path in paths})


def test_chat_touches_no_consumer_or_library_internals():
    chat = list((ROOT / "chat").rglob("*.py"))
    assert internals_reached(chat) == {}
    # Nor any name an adapter reaches (those without an underscore included).
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in chat}
    assert library_internals_in_sources(sources, library_internals()) == {}


# A chat/ module reaching a consumer's and the libraries' internals in each way the
# check must see: a store on another object, a store through a chain, a getattr
# with a literal name, a consumer attribute.
SCRATCH_CHAT_MODULE = """
def reach(consumer, handler):
    consumer._group_refs = None
    handler.view._ws_handler = 1
    info = getattr(consumer, "_raw_info")
    return consumer.run_task, info
"""


def test_the_internals_check_sees_each_way_of_reaching_them():
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in (ROOT / "chat").rglob("*.py")}
    sources["chat/scratch.py"] = SCRATCH_CHAT_MODULE
    assert internals_in_sources(sources) == {
        "chat/scratch.py": ["line 3: ._group_refs", "line 4: ._ws_handler", "line 5: ._raw_info", "line 6: .run_task"]
    }


def test_the_internals_check_sees_them():
    # Guards the test above: the live package does reach these, by design.
    found = internals_reached(ADAPTERS)
    reached = " ".join(hit for hits in found.values() for hit in hits)
    for expected in (".message_queue", "._raw_info", ".base_send", ".run_task", "._group_refs", "._perMessageCompress"):
        assert expected in reached
    assert "import strawberry.schema.schema" in reached


# --- Library internals only in their adapters ----------------------------------------------
#
# Each library's private attributes are reached in one adapter module,
# schema/live/<library>_adapter.py. The names are taken from the adapters
# themselves: every private attribute an adapter reaches that is not its own (or
# the project's: the consumer's ``_ws_handler``, which the handlers set on it),
# every private name it looks up by string (``getattr``, a ``__dict__`` key), and a
# name it overrides and calls through ``super()``. Libraries also keep internals
# under names without an underscore; those cannot be told apart from public API by
# their spelling and are listed below, each one checked to be reached by an adapter.

ADAPTERS = sorted((ROOT / "schema" / "live").glob("*_adapter.py"))
SCANNED = sorted(
    path for package in ("schema", "backend") for path in (ROOT / package).rglob("*.py") if path not in ADAPTERS
)

UNMARKED_INTERNALS = {
    "strawberry_adapter.py": {
        "message_queue",
        "listen_queues",
        "run_task",
        "operations",
        "tasks",
        "completed",
        "keep_alive_task",
    },
    "channels_adapter.py": {"base_send"},
    "channels_redis_adapter.py": {"hosts", "create_pool"},
    "daphne_adapter.py": {"application_queue"},
    "autobahn_adapter.py": {
        "send_queue",
        "trackedTimings",
        "trafficStats",
        "autoFragmentSize",
        "maskServerFrames",
        "maxMessagePayloadSize",
        "current_frame",
        "current_frame_masker",
        "sendCloseFrame",
    },
    "twisted_adapter.py": {"dataBuffer"},
}


def _super_calls(tree: ast.AST) -> set[str]:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "super"
    }


def _private_strings(tree: ast.AST) -> set[str]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier()
        if _private(node.value)
    }


def library_internals() -> dict[str, str]:
    """Each library-internal name an adapter reaches, with that adapter's file name."""
    project = set().union(
        *(class_attributes(ast.parse(path.read_text()), set_in_init_only=True) for path in SCANNED + ADAPTERS)
    )
    internals: dict[str, str] = {}
    for path in ADAPTERS:
        tree = ast.parse(path.read_text())
        overridden = _super_calls(tree)
        reached = {name for _, name, on_self, _ in attribute_uses(tree) if not on_self and _private(name)}
        reached |= _private_strings(tree)
        names = {name for name in reached if name not in project or name in overridden}
        names |= {name for name in overridden if _private(name)}
        names |= UNMARKED_INTERNALS.get(path.name, set())
        internals.update(dict.fromkeys(names - module_names(tree, nested=False), path.name))
    return internals


def library_internals_in_sources(sources: dict[str, str], internals: dict[str, str]) -> dict[str, list[str]]:
    """Where ``sources`` reach a name of ``internals``: an attribute on any object
    (``self`` included: the consumer is a Strawberry and Channels object) or a
    private name looked up by string."""
    found: dict[str, list[str]] = {}
    for path, source in sources.items():
        tree = ast.parse(source, filename=path)
        hits = [
            f"line {line}: .{name} (reach it through schema/live/{internals[name]})"
            for line, name, _, _ in attribute_uses(tree)
            if name in internals
        ]
        hits += [
            f"{name!r} (reach it through schema/live/{internals[name]})"
            for name in sorted(_private_strings(tree))
            if name in internals
        ]
        if hits:
            found[path] = hits
    return found


def test_library_internals_only_in_adapter_modules():
    """Outside its adapters, schema/ and backend/ use the libraries' public API."""
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in SCANNED}
    assert library_internals_in_sources(sources, library_internals()) == {}


def test_the_adapters_internals_are_found():
    # Guards the test above against checking too little (or everything).
    internals = library_internals()
    for name, adapter in {
        "_raw_info": "strawberry_adapter.py",
        "_group_refs": "strawberry_adapter.py",
        "_schema": "strawberry_adapter.py",
        "run_task": "strawberry_adapter.py",
        "listen_queues": "strawberry_adapter.py",
        "_clean_expired": "channels_adapter.py",
        "_perMessageCompress": "autobahn_adapter.py",
        "send_queue": "autobahn_adapter.py",
        "_tempDataLen": "twisted_adapter.py",
        "_appSendBuffer": "twisted_adapter.py",
        "_writeDisconnected": "twisted_adapter.py",
    }.items():
        assert internals.get(name) == adapter, name
    for ours in ("_ws_handler", "_quiet_completion", "_next_cleanup", "_protocol", "_STATE_OPEN", "_write"):
        assert ours not in internals, ours
    # The consumer would be seen reaching them on itself, as a subclass does.
    reaching = 'class C:\n    def f(self):\n        self.run_task = getattr(self, "_group_refs")\n'
    assert library_internals_in_sources({"c.py": reaching}, internals) == {
        "c.py": [
            "line 3: .run_task (reach it through schema/live/strawberry_adapter.py)",
            "line 3: ._group_refs (reach it through schema/live/strawberry_adapter.py)",
            "'_group_refs' (reach it through schema/live/strawberry_adapter.py)",
        ]
    }
    assert any(path.name == "consumer.py" for path in SCANNED) and any(p.parts[-2] == "backend" for p in SCANNED)


def test_each_unmarked_internal_is_reached_by_its_adapter():
    # The hand-written part of the list goes with the adapter's code.
    assert {path.name for path in ADAPTERS} >= set(UNMARKED_INTERNALS)
    for path in ADAPTERS:
        reached = {name for _, name, _, _ in attribute_uses(ast.parse(path.read_text()))}
        missing = UNMARKED_INTERNALS.get(path.name, set()) - reached
        assert not missing, f"{path.name} no longer reaches {sorted(missing)}: drop them from UNMARKED_INTERNALS"
