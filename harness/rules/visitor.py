"""The AST visitor behind ``harness.rules.check``: imports, internals, environment, threads.

The workload-name rules live in ``harness.rules.names`` (a mixin); the rules
themselves are listed in ``harness.rules.check``'s docstring.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Dict, Iterable, List, Optional, Sequence, Set

from harness.rules.names import STRING_TESTS, NameRules, helpers_of_name_functions, is_workload


@dataclasses.dataclass(frozen=True)
class Finding:
    file: str
    line: int
    col: int
    severity: str  # 'error' | 'warning'
    rule: str
    message: str

    def __str__(self) -> str:
        return f'{self.file}:{self.line}:{self.col}: {self.severity}: [{self.rule}] {self.message}'


#: What a submission may import of the harness: the contracts.
CONTRACT_MODULES = ('harness.spec', 'harness.spec_federated')

CONCURRENCY_MODULES = (
    'threading',
    '_thread',
    'multiprocessing',
    'concurrent',
    'subprocess',
    'torch.multiprocessing',
    'pty',
)
_OS_PROCESS_CALLS = re.compile(r'^(fork|forkpty|system|popen|spawn\w*|exec\w*|posix_spawn\w*)$')
_ENV_METHODS = frozenset(
    {'update', 'setdefault', 'pop', 'popitem', 'clear', '__setitem__', '__delitem__'}
)
_FRAME_CALLS = {
    ('sys', '_getframe'),
    ('inspect', 'currentframe'),
    ('inspect', 'stack'),
    ('inspect', 'getouterframes'),
    ('inspect', 'trace'),
    ('gc', 'get_objects'),
    ('gc', 'get_referrers'),
    ('gc', 'get_referents'),
}
#: Routes around the workload view that no object in the process can close (see
#: harness.submission.view): from a function to its module, closure or code; from an
#: exception, generator or coroutine to the frames behind it; from a class to every
#: subclass; an object's raw attribute lookup and pickling state. Refused wherever they
#: appear: as ``x.name``, or as a literal name given to getattr/hasattr/attrgetter.
INTROSPECTION_ATTRIBUTES = frozenset({
    '__globals__', '__closure__', '__code__', '__func__', '__self__', '__wrapped__',
    '__builtins__', '__subclasses__', '__getattribute__', '__reduce__', '__reduce_ex__',
    '__getstate__', '__traceback__', '__callback__', 'cell_contents', 'tb_frame', 'tb_next',
    'f_back',
    'f_locals', 'f_globals', 'f_builtins', 'gi_frame', 'cr_frame', 'ag_frame',
})
#: Functions that hand out frames, tracebacks, every live object or every attribute of an
#: object (``__globals__`` included), refused by name whatever module they come from.
FRAME_FUNCTIONS = frozenset({
    '_getframe', '_current_frames', '_current_exceptions', '_getframemodulename',
    'settrace', 'setprofile', 'exc_info', 'last_traceback', 'last_exc',
    'get_objects', 'get_referrers', 'get_referents', 'currentframe', 'getouterframes',
    'getinnerframes', 'getframeinfo', 'getargvalues', 'getclosurevars', 'getmembers',
    'getmembers_static', 'getattr_static', 'walk_tb', 'walk_stack', 'getweakrefs',
})
#: Modules that reach memory or the interpreter's internals directly.
RAW_ACCESS_MODULES = ('ctypes', '_ctypes', 'cffi')
#: What a submission may use of ``gc`` (the rest walks the object graph).
GC_ALLOWED = frozenset({'collect', 'isenabled', 'enable', 'disable'})
#: ``sys`` attributes that list every loaded module or hook into every call.
SYS_REFUSED = frozenset({'modules', 'monitoring'})
#: Workload entry points of the harness (evaluation, data): errors, not mere warnings.
_HARNESS_ATTRIBUTES = frozenset(
    {'eval_model', 'build_input_queue', 'validation_predictions', 'check_data', 'data_dir'}
)
_EVAL_FILE = re.compile(r'(^|[/_.-])(val|valid|validation|test|eval)([/_.-]|\.bin|$)', re.I)
_FILE_READERS = frozenset(
    {'open', 'load', 'memmap', 'fromfile', 'loadtxt', 'read_bytes', 'read_text', 'Path'}
)


def _dotted(node: ast.AST) -> Optional[str]:
    """'os.environ' for Attribute(Name('os'), 'environ'); None if not a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return '.'.join(reversed(parts))
    return None


def _workload_allowed_attributes() -> frozenset:
    from harness.submission.view import ALLOWED

    return ALLOWED


class Checker(NameRules, ast.NodeVisitor):
    """Collects the findings of one file (``findings``); visit the module tree once."""

    def __init__(self, file: str, tree: ast.Module, workload_names: Iterable[str]):
        self.file = file
        self.findings: List[Finding] = []
        self.name_functions = helpers_of_name_functions(tree)
        self.workload_names = set(workload_names)
        self.functions: List[str] = []
        self.aliases: List[Set[str]] = [set()]
        self.handled: Set[int] = set()
        self.modules: Dict[str, str] = {}  # local name -> module it is bound to
        # Bind every import first: a function may use a module imported further down.
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._bind(node)

    # ---- reporting -----------------------------------------------------------------
    def _add(self, node: ast.AST, severity: str, rule: str, message: str) -> None:
        self.findings.append(
            Finding(
                self.file,
                getattr(node, 'lineno', 1),
                getattr(node, 'col_offset', 0) + 1,
                severity,
                rule,
                message,
            )
        )

    def error(self, node, rule, message):
        self._add(node, 'error', rule, message)

    def warn(self, node, rule, message):
        self._add(node, 'warning', rule, message)

    # ---- context -------------------------------------------------------------------
    def _module_of(self, node: ast.AST) -> Optional[str]:
        """The dotted module path an expression names, through import aliases."""
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition('.')
        if head in self.modules:
            return self.modules[head] + (f'.{rest}' if rest else '')
        return None

    # ---- imports -------------------------------------------------------------------
    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split('.')[0]
        if module == 'harness' or (top == 'harness' and module not in CONTRACT_MODULES):
            self.error(
                node,
                'internals',
                f'imports {module}: a submission may import only '
                f'{" and ".join(CONTRACT_MODULES)} (the contracts) from the harness',
            )
        elif top in ('workloads', 'scoring'):
            self.error(
                node,
                'internals',
                f'imports {module}: workload and scoring code are '
                'off limits; use the workload object you are handed',
            )
        elif module.startswith('algoperf.workloads'):
            self.error(node, 'internals', f'imports {module}: workload internals are off limits')
        elif top in RAW_ACCESS_MODULES:
            self.error(
                node,
                'internals',
                f'imports {module}: raw memory access reaches every object in the process, '
                'the harness\'s included',
            )
        for banned in CONCURRENCY_MODULES:
            if module == banned or module.startswith(banned + '.'):
                self.error(
                    node,
                    'concurrency',
                    f'imports {module}: submission code may not start threads or '
                    'processes (their work escapes the submission\'s clock)',
                )

    def _bind(self, node) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split('.')[0]
                self.modules[local] = alias.name if alias.asname else alias.name.split('.')[0]
        elif not node.level:  # relative imports: the submission's own modules
            for alias in node.names:
                self.modules[alias.asname or alias.name] = f'{node.module}.{alias.name}'

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            return
        module = node.module or ''
        for alias in node.names:
            if module == 'harness':
                full = f'{module}.{alias.name}'
                self._check_module(node, full)
            elif module == 'os' and _OS_PROCESS_CALLS.match(alias.name):
                self.error(
                    node,
                    'concurrency',
                    f'imports os.{alias.name}: submission code may not start processes',
                )
            elif module == 'os' and alias.name in ('putenv', 'unsetenv'):
                self.error(
                    node,
                    'environment',
                    f'imports os.{alias.name}: submission code may '
                    'not change environment variables',
                )
            elif alias.name in FRAME_FUNCTIONS or alias.name in INTROSPECTION_ATTRIBUTES:
                self._frame_route(node, f'{module}.{alias.name}')
            elif (module == 'gc' and alias.name not in GC_ALLOWED) or (
                module == 'sys' and alias.name in SYS_REFUSED
            ):
                self._frame_route(node, f'{module}.{alias.name}')
        if module != 'harness':
            self._check_module(node, module)

    # ---- assignments (aliases, environment, workload attributes) ----------------------
    def _is_environ(self, node: ast.AST) -> bool:
        return self._module_of(node) == 'os.environ'

    def _check_targets(self, node: ast.AST, targets: Sequence[ast.AST]) -> None:
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Subscript) and self._is_environ(t.value):
                    self.error(
                        node,
                        'environment',
                        'changes an environment variable (os.environ[...]): submissions may not',
                    )
                elif isinstance(t, ast.Attribute) and is_workload(t.value):
                    self.error(
                        node,
                        'internals',
                        f'sets workload.{t.attr}: the workload is read-only to submissions',
                    )

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_targets(node, node.targets)
        self.track_alias(node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._check_targets(node, node.targets)
        self.generic_visit(node)

    # ---- calls -----------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        module = self._module_of(func)
        if isinstance(func, ast.Attribute) and func.attr in STRING_TESTS:
            if self._derives_from_name(func.value):
                self._keyed(node, [func.value], f'a .{func.attr}() test')
            elif func.attr == 'get':
                self._keyed(node, node.args[:1], 'a lookup keyed')
        if name in ('isinstance', 'issubclass') and len(node.args) == 2:
            self._check_isinstance(node)
        if name in ('getattr', 'setattr', 'delattr', 'hasattr') and node.args:
            self._check_getattr(node, name)
        if name == 'vars' and node.args and is_workload(node.args[0]):
            self.error(node, 'internals', 'vars(workload) reads the workload\'s internals')
        if (
            isinstance(func, ast.Attribute)
            and self._is_environ(func.value)
            and func.attr in _ENV_METHODS
        ):
            self.error(
                node,
                'environment',
                f'os.environ.{func.attr}() changes environment variables: submissions may not',
            )
        if module in ('os.putenv', 'os.unsetenv'):
            self.error(
                node,
                'environment',
                f'{module}() changes an environment variable: submissions may not',
            )
        if name == 'open':
            self._check_file_read(node)
        self._check_call_module(node, module)
        if name in ('exec', 'eval', 'compile', '__import__'):
            self._check_dynamic(node, name)
        if (name == 'attrgetter' or module == 'operator.attrgetter') and node.args:
            for arg in node.args:
                self._check_attribute_name(node, arg, 'attrgetter')
        self.generic_visit(node)

    def _check_call_module(self, node: ast.Call, module: Optional[str]) -> None:
        if module is None:
            return
        head, _, attr = module.rpartition('.')
        if head == 'os' and _OS_PROCESS_CALLS.match(attr):
            self.error(
                node,
                'concurrency',
                f'{module}() starts a process: submission code may not start threads or processes',
            )
        elif (head, attr) in _FRAME_CALLS and attr not in FRAME_FUNCTIONS:
            self.error(
                node, 'internals', f'{module}() reaches into the harness\'s frames or objects'
            )
        elif module in (
            'jax.config.update',
            'torch.set_num_threads',
            'torch.set_num_interop_threads',
            'torch.set_default_dtype',
        ):
            self.warn(
                node,
                'environment',
                f'{module}() changes a process-wide setting the '
                'harness and evaluation share: a human must judge',
            )
        elif module == 'importlib.import_module':
            self._check_dynamic(node, module)
        elif attr == 'DataLoader':
            for kw in node.keywords:
                if kw.arg == 'num_workers' and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value == 0
                ):
                    self.warn(
                        node,
                        'concurrency',
                        'DataLoader(num_workers=...) starts worker processes: a human must judge',
                    )
        if attr in _FILE_READERS or module.split('.')[-1] in _FILE_READERS:
            self._check_file_read(node)

    def _check_isinstance(self, node: ast.Call) -> None:
        subject, classes = node.args
        elements = classes.elts if isinstance(classes, ast.Tuple) else [classes]
        names = [(_dotted(e) or '').split('.')[-1] for e in elements]
        workload_class = any(n.endswith('Workload') and n != 'Workload' for n in names)
        if workload_class or (is_workload(subject) and not all(n == 'Workload' for n in names)):
            self.error(
                node,
                'workload-class',
                f'{node.func.id}() against a workload class ({", ".join(names)}) '
                f'{self._where()}: per-workload logic is allowed only in get_batch_size',
            )

    def _check_getattr(self, node: ast.Call, name: str) -> None:
        if len(node.args) > 1:
            self._check_attribute_name(node, node.args[1], name)
        if not is_workload(node.args[0]):
            return
        if name in ('setattr', 'delattr'):
            self.error(
                node, 'internals', f'{name}() on the workload: it is read-only to submissions'
            )
            return
        if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            attr = node.args[1].value
            if isinstance(attr, str) and attr.startswith('_'):
                self.error(
                    node,
                    'internals',
                    f'{name}(workload, {attr!r}) reads a private attribute of the workload',
                )
            elif attr == 'name':
                self.handled.update(id(a) for a in node.args)
        elif len(node.args) > 1:
            self.warn(
                node,
                'internals',
                f'{name}() on the workload with a computed attribute '
                'name cannot be checked: a human must judge',
            )

    def _frame_route(self, node: ast.AST, what: str) -> None:
        self.error(
            node,
            'internals',
            f'{what} reaches objects behind the workload view (a function\'s module or '
            'closure, the caller\'s frames, every live object): no object can hide the '
            'harness from it, so submissions may not use it',
        )

    def _check_attribute_name(self, node: ast.Call, arg: ast.AST, func: str) -> None:
        """A literal attribute name that is a refused route, or a computed one built from
        a piece of one (``'__glob' + 'als__'``)."""
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if arg.value.split('.')[-1] in INTROSPECTION_ATTRIBUTES | FRAME_FUNCTIONS:
                self._frame_route(node, f'{func}(..., {arg.value!r})')
            return
        pieces = [
            n.value
            for n in ast.walk(arg)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value
        ]
        if any('__' in p or any(p in r for r in INTROSPECTION_ATTRIBUTES) for p in pieces):
            self._frame_route(node, f'{func}() with a name built from {pieces!r}')

    def _check_dynamic(self, node: ast.Call, name: str) -> None:
        arg = node.args[0] if node.args else None
        literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
        if name in ('__import__', 'importlib.import_module') and literal:
            self._check_module(node, arg.value)
            return
        if name in ('exec', 'eval', 'compile') and literal:
            # Code given as a literal is checked as if it were written here.
            try:
                inner = ast.parse(arg.value, mode='exec')
            except SyntaxError:
                return
            for child in ast.walk(inner):
                for field in ('lineno', 'end_lineno'):
                    if hasattr(child, field):
                        setattr(child, field, node.lineno)
                if hasattr(child, 'col_offset'):
                    child.col_offset = node.col_offset
            self.visit(inner)
            return
        self.error(
            node,
            'dynamic',
            f'{name}() of code or a module named at run time: it could build any route the '
            'rules refuse and cannot be checked statically; write the code or the import out',
        )

    def _check_file_read(self, node: ast.Call) -> None:
        for arg in node.args[:1]:
            for n in ast.walk(arg):
                if (
                    isinstance(n, ast.Constant)
                    and isinstance(n.value, str)
                    and _EVAL_FILE.search(n.value)
                ):
                    self.warn(
                        node,
                        'eval-data',
                        f'reads {n.value!r}, which looks like '
                        'evaluation data: training data must come '
                        'through the input queue',
                    )
                    return

    # ---- attributes and names ---------------------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self._is_name_expr(node) and id(node) not in self.handled:
            self.handled.add(id(node))
            self.handled.update(id(n) for n in ast.walk(node))
            if not self._in_name_function():
                self.warn(
                    node,
                    'workload-name',
                    f'reads the workload\'s name {self._where()}: '
                    'fine for logging, not for choosing behaviour',
                )
        elif is_workload(node.value) and not isinstance(node.ctx, ast.Store):
            attr = node.attr
            if attr in _HARNESS_ATTRIBUTES:
                self.error(
                    node,
                    'internals',
                    f'uses workload.{attr}: evaluation and data '
                    'loading are the harness\'s, off limits to '
                    'submissions',
                )
            elif attr == '__dict__' or (attr.startswith('_') and not attr.startswith('__')):
                self.error(
                    node,
                    'internals',
                    f'reads workload.{attr}: private attributes of '
                    'the workload are off limits (evaluation data '
                    'and harness state live there)',
                )
            elif not attr.startswith('__') and attr not in _workload_allowed_attributes():
                self.warn(
                    node,
                    'internals',
                    f'workload.{attr} is not in the submission\'s view of the workload '
                    '(harness/submission/view.py): it raises AttributeError at run time '
                    'unless the workload adds it',
                )
        elif node.attr.startswith('_') and not node.attr.startswith('__'):
            module = self._module_of(node.value)
            if module and module.split('.')[0] in ('harness', 'algoperf'):
                self.error(
                    node, 'internals', f'reads {module}.{node.attr}, a private name of the harness'
                )
        module = self._module_of(node)
        if node.attr in INTROSPECTION_ATTRIBUTES or node.attr in FRAME_FUNCTIONS:
            self._frame_route(node, f'.{node.attr}')
        elif module is not None and (
            (module.startswith('gc.') and node.attr not in GC_ALLOWED and module.count('.') == 1)
            or module in {f'sys.{a}' for a in SYS_REFUSED}
        ):
            self._frame_route(node, module)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if node.value == 'TIMETRIAL_DATA_DIR':
            self.warn(
                node,
                'eval-data',
                'looks up TIMETRIAL_DATA_DIR: training data must come through the input queue',
            )
