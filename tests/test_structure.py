"""The project's structure: no import cycles (module-level or inside functions), the
layering the architecture page promises, and modules small enough to read in one sitting.

Read from the source with ``ast`` (nothing is imported), so a cycle hidden in a
function-level import fails here as a module-level one would.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('harness', 'workloads', 'submissions', 'scoring')
#: Split a module before it grows past this (STYLE: "split before ~500 lines").
MAX_MODULE_LINES = 550
#: The founding brief's documents: not in the repository, so nothing may cite them.
#: (Spelled in pieces so that this file does not cite them either.)
OUTSIDE_DOCUMENTS = ('DESIGN' + '.md', 'RESEARCH' + '.md', '..' + '/shared')


def _modules() -> Dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob('*.py'):
            parts = path.relative_to(ROOT).with_suffix('').parts
            name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
            found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split('.')
    while parts:
        candidate = '.'.join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(name: str, path: Path) -> Set[str]:
    """Every module of ours that ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    package = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(r for a in node.names if (r := _resolve(a.name)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            if module.split('.')[0] not in PACKAGES:
                continue
            for alias in node.names:
                full = f'{module}.{alias.name}'
                resolved = full if full in MODULES else _resolve(module)
                if resolved:
                    out.add(resolved)
    out.discard(name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_a_cycle_through_a_function_level_import():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _cycles(graph) == [['a', 'b', 'c']]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    where = ['; '.join(f'{m} -> {sorted(GRAPH[m] & set(c))}' for m in c) for c in cycles]
    assert cycles == [], 'import cycles: ' + ' | '.join(where)


def test_spec_and_results_depend_on_nothing_of_ours():
    assert GRAPH['harness.spec'] == set()
    assert GRAPH['harness.results'] == set()
    assert GRAPH['harness.errors'] <= {'harness.spec'}
    assert GRAPH['harness.spec_federated'] <= {'harness.spec'}


@pytest.mark.parametrize('package', ['workloads', 'submissions'])
def test_workloads_and_submissions_use_only_the_contracts_of_the_harness(package):
    # results: its atomic writers (stdlib only) write prepared data too.
    allowed = {'harness.spec', 'harness.spec_federated', 'harness.errors', 'harness.results'}
    leaks = {m: sorted(d for d in deps if d.startswith('harness') and d not in allowed)
             for m, deps in GRAPH.items() if m.startswith(package + '.')}
    leaks = {m: d for m, d in leaks.items() if d}
    assert leaks == {}


def test_workloads_do_not_import_submissions():
    leaks = {m: sorted(d for d in deps if d.startswith('submissions'))
             for m, deps in GRAPH.items() if m.startswith('workloads.')}
    assert {m: d for m, d in leaks.items() if d} == {}


def test_submissions_do_not_import_each_other():
    """Shared code lives in submissions/_lib, not in a sibling baseline."""
    def folder(module: str) -> str:
        return module.split('.')[1] if module.count('.') >= 1 else ''

    crossing = {m: sorted(d for d in deps if d.startswith('submissions.')
                          and folder(d) not in (folder(m), '_lib'))
                for m, deps in GRAPH.items() if m.startswith('submissions.')
                and folder(m) != '_lib'}
    assert {m: d for m, d in crossing.items() if d} == {}


def test_scoring_reads_results_without_the_rest_of_the_harness():
    # paths: where this machine's noise floors are recorded (stdlib only).
    allowed = {'harness.results', 'harness.errors', 'harness.spec', 'harness.paths'}
    leaks = {m: sorted(d for d in deps if d.startswith('harness') and d not in allowed)
             for m, deps in GRAPH.items() if m.startswith('scoring')}
    assert {m: d for m, d in leaks.items() if d} == {}


def test_modules_are_small_enough_to_read_in_one_sitting():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding='utf-8').splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f'split these by responsibility: {long}'


def test_no_file_cites_documents_outside_the_repository():
    cited = []
    for path in [*ROOT.glob('*.md'), *ROOT.rglob('docs/*.md'),
                 *(p for package in PACKAGES for p in (ROOT / package).rglob('*'))]:
        if path.suffix not in ('.py', '.md', '.yaml') or not path.is_file():
            continue
        text = path.read_text(encoding='utf-8')
        if any(name in text for name in OUTSIDE_DOCUMENTS):
            cited.append(str(path.relative_to(ROOT)))
    assert cited == []
