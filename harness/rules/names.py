"""The rules about the workload's name: per-workload logic only in get_batch_size.

``NameRules`` is a mixin of ``harness.rules.visitor.Checker`` (which supplies
``error``/``warn`` and the state set up in its ``__init__``): it knows which
expressions carry the workload's name (``workload.name``, ``workload_name``,
``type(workload)``, variables assigned from them) and reports decisions keyed on
them outside ``NAME_FUNCTIONS`` and the module-level helpers only they call.
"""

from __future__ import annotations

import ast
from typing import Dict, List, Sequence, Set

#: Contract functions that receive the workload name to choose a batch size / round config.
NAME_FUNCTIONS = frozenset({'get_batch_size', 'get_round_config'})
#: Contract functions that must not key on the name (never "helpers" of NAME_FUNCTIONS).
_CONTRACT = frozenset(
    {
        'init_optimizer_state',
        'update_params',
        'data_selection',
        'prepare_for_eval',
        'init_server_state',
        'client_update',
        'server_update',
    }
)
STRING_TESTS = frozenset(
    {'get', 'startswith', 'endswith', 'find', 'index', 'count', '__contains__', '__eq__'}
)


def is_workload(node: ast.AST) -> bool:
    """`workload`, `my_workload`, `self.workload`: what the contract hands in as the workload."""
    name = (
        node.id
        if isinstance(node, ast.Name)
        else node.attr
        if isinstance(node, ast.Attribute)
        else None
    )
    return name is not None and (name == 'workload' or name.endswith('_workload'))


def helpers_of_name_functions(tree: ast.Module) -> Set[str]:
    """NAME_FUNCTIONS plus the module-level functions reachable only through their calls."""
    calls: Dict[str, Set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            calls[node.name] = {
                c.func.id
                for c in ast.walk(node)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
            }
    allowed = set(NAME_FUNCTIONS)
    frontier = [n for n in NAME_FUNCTIONS if n in calls]
    while frontier:
        for callee in calls.get(frontier.pop(), ()):
            if callee in calls and callee not in allowed and callee not in _CONTRACT:
                allowed.add(callee)
                frontier.append(callee)
    return allowed


class NameRules:
    """Name-keyed logic: errors for decisions, warnings for other reads (see the module doc)."""

    def _in_name_function(self) -> bool:
        return any(f in self.name_functions for f in self.functions)

    def _where(self) -> str:
        return f'in {self.functions[-1]}()' if self.functions else 'at module level'

    def _is_name_expr(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id == 'workload_name' or any(node.id in a for a in self.aliases)
        if isinstance(node, ast.Attribute):
            if node.attr == 'workload_name':
                return True
            if node.attr == 'name' and is_workload(node.value):
                return True
            if node.attr in ('__class__', '__name__', '__qualname__'):
                return is_workload(node.value) or self._is_name_expr(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            if node.func.id == 'type' and is_workload(node.args[0]):
                return True
            if (
                node.func.id == 'getattr'
                and is_workload(node.args[0])
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == 'name'
            ):
                return True
        return False

    def _derives_from_name(self, node: ast.AST) -> bool:
        """`workload.name`, `workload.name.lower()`, `str(workload_name)`, ..."""
        if self._is_name_expr(node):
            return True
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                return self._derives_from_name(node.func.value)
            if isinstance(node.func, ast.Name) and node.func.id in ('str', 'repr') and node.args:
                return self._derives_from_name(node.args[0])
        if isinstance(node, ast.Subscript):
            return self._derives_from_name(node.value)
        return False

    def _name_exprs(self, node: ast.AST) -> List[ast.AST]:
        """Name expressions in node; isinstance/issubclass calls are their own rule."""
        found, todo = [], [node]
        while todo:
            n = todo.pop()
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name)
                and n.func.id in ('isinstance', 'issubclass')
            ):
                continue
            if self._is_name_expr(n):
                found.append(n)
            todo.extend(ast.iter_child_nodes(n))
        return found

    def _keyed(self, context: ast.AST, parts: Sequence[ast.AST], what: str) -> None:
        """An error if the workload name decides something in `parts` of `context`."""
        found = [
            n
            for p in parts
            if p is not None
            for n in self._name_exprs(p)
            if id(n) not in self.handled
        ]
        if not found:
            return
        self.handled.update(id(n) for n in found)
        if self._in_name_function():
            return
        self.error(
            context,
            'workload-name',
            f'{what} on the workload\'s name {self._where()}: per-workload logic is '
            'allowed only in get_batch_size (hyperparameters come from the search space). '
            'Make the behaviour depend on the workload\'s properties '
            '(param_shapes, step_hint, ...) instead',
        )

    def _visit_function(self, node) -> None:
        self.functions.append(node.name)
        self.aliases.append(set())
        self.generic_visit(node)
        self.aliases.pop()
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def track_alias(self, node: ast.Assign) -> None:
        """`n = workload.name.lower()` makes `n` carry the name in this scope."""
        if self._derives_from_name(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.aliases[-1].add(target.id)

    # ---- decisions keyed on the name ------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        keyed = any(self._name_exprs(op) for op in operands)
        self._keyed(node, operands, 'a comparison')
        for op in operands:
            if (
                isinstance(op, ast.Constant)
                and isinstance(op.value, str)
                and not keyed
                and op.value in self.workload_names
                and not self._in_name_function()
            ):
                self.warn(
                    node,
                    'workload-name',
                    f'compares with {op.value!r}, the name of a '
                    'workload: is this per-workload logic?',
                )
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        self._keyed(node, [node.test], 'a branch')
        self.generic_visit(node)

    visit_While = visit_IfExp = visit_Assert = visit_If

    def visit_Match(self, node) -> None:
        self._keyed(node, [node.subject], 'a match statement')
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._keyed(node, [node.slice], 'a lookup keyed')
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if (
            self._is_name_expr(node)
            and id(node) not in self.handled
            and not isinstance(node.ctx, (ast.Store, ast.Del))
            and not self._in_name_function()
        ):
            self.warn(
                node,
                'workload-name',
                f'uses the workload name ({node.id}) '
                f'{self._where()}: fine for logging, not for '
                'choosing behaviour',
            )
