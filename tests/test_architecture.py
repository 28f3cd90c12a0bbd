"""The rooms' seams, read from the import graph: no private names across modules, the engine stays an engine."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "eagle_widgets"
# What each room may import from the others (by first package component below eagle_widgets).
ROOMS = {
    "core": set(),
    "display": {"core"},
    "storage": {"core"},
    "models": {"core", "storage"},
    "baselines": {"core", "models"},
    "widgets": {"core", "display", "storage"},
    "evaluation": {"core", "display", "models", "storage", "demo", "widgets"},
    "demo": {"core", "models", "storage"},
    "served": {"core", "models", "storage"},
}
ENGINE_FORBIDDEN = ("matplotlib", "transformers", "ipywidgets", "anywidget", "traitlets", "IPython", "ray")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text(), str(path))


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module, path, tree):
    """(imported module, names or None, line) for every import in the file, lazy ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            yield _absolute(module, path, node), [a.name for a in node.names], node.lineno


MODULES = list(_modules())


def test_the_graph_is_read():
    names = {m for m, _, _ in MODULES}
    assert {"eagle_widgets.core.search", "eagle_widgets.display.figures", "eagle_widgets.widgets.explorer"} <= names


def test_no_module_imports_another_modules_private_name():
    found = []
    for module, path, tree in MODULES:
        imported_modules = {}
        for target, names, line in _imports(module, path, tree):
            for name in names or []:
                if name.startswith("_") and name not in ("__version__",) and target != "__future__":
                    found.append(f"{module}:{line} imports {target}.{name}")
        for node in ast.walk(tree):  # `from . import x` or `import eagle_widgets.x as z`, then `z._private`
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("eagle_widgets"):
                        imported_modules[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom) and _absolute(module, path, node).startswith("eagle_widgets"):
                for alias in node.names:
                    imported_modules.setdefault(alias.asname or alias.name, alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in imported_modules
                    and node.value.id[0].islower()):
                found.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_rooms_import_only_the_rooms_below_them(room):
    wrong = []
    for module, path, tree in MODULES:
        parts = module.split(".")
        if len(parts) < 2 or parts[1] != room:
            continue
        for target, _, line in _imports(module, path, tree):
            tparts = target.split(".")
            if tparts[0] == "eagle_widgets" and len(tparts) > 1 and tparts[1] in ROOMS and tparts[1] != room:
                if tparts[1] not in ROOMS[room]:
                    wrong.append(f"{module}:{line} imports {target}")
            if room == "core" and tparts[0] in ENGINE_FORBIDDEN:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_engine_imports_neither_matplotlib_nor_transformers_when_run():
    import subprocess
    import sys

    code = ("import sys, eagle_widgets.core as c, numpy as np\n"
            "rs = c.RegionSet.grid((20, 20), rows=2, cols=2)\n"
            "r = c.attribute(c.LogisticScorer.random(rs.n, 1, seed=0), rs, mode='exact')\n"
            "r.save(sys.argv[1]); c.load_attribution(sys.argv[1]).pixel_map()\n"
            f"print(sorted(m for m in {ENGINE_FORBIDDEN!r} if m in sys.modules))")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", code, str(Path(tmp) / "r.eagle")], capture_output=True,
                             text=True, check=True).stdout
    assert out.strip() == "[]"
