"""The packages are layers: each imports only from those below it (any import, also one
inside a function). Above all, the hub never imports the machine's code (ansible), and
the config model nothing of the hub's."""

import ast
import re
from pathlib import Path

import hubstead

PACKAGE = Path(hubstead.__file__).parent
# Layer: the layers it may import from (its own included).
MAY_IMPORT = {
    "core": {"core"},
    "config": {"core", "config"},
    "hub": {"core", "config", "hub"},
    "machine": {"core", "config", "machine"},
    "classroom": {"core", "config", "hub", "classroom"},
    "export": {"core", "config", "hub", "machine", "export"},
    "cli": {"core", "config", "hub", "machine", "classroom", "export", "cli"},
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "hubstead" and len(parts) > 1 and parts[1] in MAY_IMPORT else None


def _imported_layers(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {(_layer(n), node.lineno) for n in names if _layer(n)}
    return found


def test_every_module_sits_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "put each module in one of: " + ", ".join(MAY_IMPORT)


def test_each_layer_imports_only_from_the_layers_below_it():
    wrong = []
    for layer, allowed in MAY_IMPORT.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            wrong += [f"{path.relative_to(PACKAGE)}:{line} imports hubstead.{imported}"
                      for imported, line in sorted(_imported_layers(path)) if imported not in allowed]
    assert wrong == []


def test_relative_imports_are_not_used():
    # Absolute imports name the layer they come from, which this contract reads.
    relative = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(p.read_text())))]
    assert relative == []


def test_the_architecture_page_names_every_module_in_its_layer():
    page = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", page, re.M)}
    assert set(rows) == set(MAY_IMPORT)
    missing = [f"{layer}/{path.relative_to(PACKAGE / layer)}"
               for layer in MAY_IMPORT for path in (PACKAGE / layer).rglob("*.py")
               if path.stem != "__init__" and f"`{path.stem}`" not in rows[layer]]
    assert missing == [], "describe them in docs/architecture.md"
