"""The package's layering: no module imports another that imports it back (directly or around a loop), and no
folder does either (mine -> scoring, never scoring -> mine), so that data flows one way: convert -> split -> embed ->
store -> mine -> train -> rank -> evaluate -> experiment -> cli. Read from the source, without importing it."""

import ast
from pathlib import Path

import haystack_hardneg

PACKAGE = Path(haystack_hardneg.__file__).parent
ROOT = "haystack_hardneg"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports (at its top or inside functions)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == ROOT}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == ROOT:
            for alias in node.names:  # `from package import module` names a module
                module = f"{node.module}.{alias.name}"
                found.add(module if module in MODULES else node.module)
    return {m for m in found if m in MODULES and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _folder(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


GRAPH = {name: imports(name) for name in MODULES}


def test_no_module_imports_the_package_root_or_a_loop():
    # The root imports the components for users; a module that imported it would import itself around.
    assert sorted(m for m, found in GRAPH.items() if ROOT in found and m.count(".") > 0) == []
    assert _cycle({m: found - {ROOT} for m, found in GRAPH.items()}) is None


def test_no_folder_imports_a_folder_that_imports_it_back():
    folders: dict[str, set[str]] = {}
    for module, found in GRAPH.items():
        if module == ROOT:
            continue
        folders.setdefault(_folder(module), set()).update(_folder(m) for m in found if m != ROOT)
    assert _cycle({f: targets - {f} for f, targets in folders.items()}) is None


def test_the_loop_finder_finds_a_loop():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
