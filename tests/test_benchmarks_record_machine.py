"""Every benchmark script that writes a JSON result records the machine it ran on, with
``haystack_hardneg.experiment.environment.machine()``. Read from the scripts' source: nothing is imported or run."""

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
ENVIRONMENT = "haystack_hardneg.experiment.environment"
WRITERS = {"atomic_write_text", "write_text"}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _is_json_dumps(node: ast.AST, dumps_names: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    return _dotted(node.func) == "json.dumps" or (isinstance(node.func, ast.Name) and node.func.id in dumps_names)


def writes_json(tree: ast.AST) -> bool:
    """A call to ``atomic_write_text(...)`` or ``<path>.write_text(...)`` whose arguments hold ``json.dumps(...)``
    (directly, or through a name assigned from it)."""
    dumps_names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "json"
                   for a in n.names if a.name == "dumps"}

    def holds_dumps(node: ast.AST) -> bool:
        return any(_is_json_dumps(n, dumps_names) for n in ast.walk(node))

    json_texts = {target.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value
                  and holds_dumps(n.value)
                  for target in (n.targets if isinstance(n, ast.Assign) else [n.target])
                  if isinstance(target, ast.Name)}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
        if name not in WRITERS:
            continue
        for argument in [*call.args, *(k.value for k in call.keywords)]:
            if holds_dumps(argument) or any(isinstance(n, ast.Name) and n.id in json_texts
                                            for n in ast.walk(argument)):
                return True
    return False


def calls_machine(tree: ast.AST) -> bool:
    """A call to ``machine()`` imported from haystack_hardneg.experiment.environment (by name, or on the module)."""
    functions, modules = set(), {ENVIRONMENT}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == ENVIRONMENT:
            functions |= {a.asname or a.name for a in node.names if a.name == "machine"}
        elif isinstance(node, ast.ImportFrom) and node.module == ENVIRONMENT.rsplit(".", 1)[0]:
            modules |= {a.asname or a.name for a in node.names if a.name == "environment"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == ENVIRONMENT and a.asname}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Name) and call.func.id in functions:
            return True
        if isinstance(call.func, ast.Attribute) and call.func.attr == "machine" and _dotted(call.func.value) in modules:
            return True
    return False


def _offenders(sources: dict[str, str]) -> list[str]:
    trees = {name: ast.parse(source, filename=name) for name, source in sources.items()}
    return sorted(name for name, tree in trees.items() if writes_json(tree) and not calls_machine(tree))


def test_every_benchmark_writing_json_records_the_machine():
    sources = {path.name: path.read_text(encoding="utf-8") for path in sorted(BENCHMARKS.glob("*.py"))}
    writers = [name for name, source in sources.items() if writes_json(ast.parse(source))]
    assert writers, f"no benchmark script under {BENCHMARKS} found writing JSON: is the detection broken?"
    offenders = _offenders(sources)
    assert not offenders, (f"{len(offenders)} benchmark script(s) write a JSON result without recording "
                           f"machine() from {ENVIRONMENT}: {', '.join(offenders)}")


RECORDS = 'import json\nfrom haystack_hardneg.experiment.environment import machine\n'


@pytest.mark.parametrize(("source", "offends"), [
    (RECORDS + 'atomic_write_text(out, json.dumps({"machine": machine()}))\n', False),
    ('import json\nfrom haystack_hardneg.experiment import environment as env\n'
     'out.write_text(json.dumps({"machine": env.machine()}))\n', False),
    ('import json\natomic_write_text(out, json.dumps({}))\n', True),
    ('import json\n(out / "a.json").write_text(json.dumps({}, indent=2) + "\\n", encoding="utf-8")\n', True),
    ('import json\ntext = json.dumps({})\nout.write_text(text)\n', True),
    ('import json\nfrom haystack_hardneg.machine import cpu\natomic_write_text(out, json.dumps({"cpu": cpu()}))\n',
     True),
    (RECORDS + 'out.write_text(json.dumps({}))\n', True),  # imported, never called
    ('import json\nprint(json.dumps({}))\nout.write_text(pipeline.dumps())\n', False),  # no JSON written
])
def test_the_check_tells_scripts_apart(source, offends):
    assert _offenders({"script.py": source}) == (["script.py"] if offends else [])
