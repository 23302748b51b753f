"""Data flows one way: the core (digests/) never reaches into the Telegram side (bot/)."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "digests"
FORBIDDEN = ("bot", "telegram.ext")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(p for p in CORE.rglob("*.py") if "cli" not in p.parts),
                         ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_does_not_import_the_bot(path):
    bad = [n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
