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
