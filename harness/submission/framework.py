"""Which framework a single-file submission is for, read from what it imports.

A folder says it by its file names (``jax_submission.py``, ``pytorch_submission.py``);
a single AlgoPerf-style ``.py`` file says it only by its imports. The file is
parsed with ``ast``, never imported: deciding must not run the submission, and
importing a PyTorch file to find that out would pull in torch for a JAX user.

Every import in the file counts, also those inside functions or ``try``: a
file that reaches for torch anywhere needs torch to run. A file importing both
frameworks, or neither (its code may live in a sibling module), is ambiguous:
the user says which with ``--framework``. An explicit ``--framework`` is
checked against the file: a file importing only JAX cannot run as PyTorch.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from harness.errors import UserInputError
from harness.spec import FRAMEWORKS

#: Top-level packages that tie a file to a framework. ``algoperf``'s framework
#: helpers count too: AlgoPerf's own submissions import them.
FRAMEWORK_PACKAGES: Dict[str, Tuple[str, ...]] = {
    'jax': ('jax', 'jaxlib', 'flax', 'optax', 'chex', 'orbax', 'algoperf.jax_sharding_utils',
            'algoperf.jax_utils'),
    'pytorch': ('torch', 'torchvision', 'torchaudio', 'algoperf.pytorch_utils'),
}


@dataclasses.dataclass(frozen=True)
class Detection:
    """What one file imports of each framework: framework -> [(module, line)]."""

    file: Path
    found: Dict[str, List[Tuple[str, int]]]

    @property
    def frameworks(self) -> List[str]:
        return [fw for fw in FRAMEWORKS if self.found.get(fw)]

    @property
    def framework(self) -> Optional[str]:
        """The one framework the file imports, or None (both, or neither)."""
        found = self.frameworks
        return found[0] if len(found) == 1 else None

    def evidence(self, framework: str) -> str:
        """``torch at line 3, algoperf.pytorch_utils at line 9``: what ties it to ``framework``."""
        seen: Dict[str, int] = {}
        for module, line in self.found.get(framework, []):
            seen.setdefault(module, line)
        return ', '.join(f'{m} at line {n}' for m, n in seen.items())


def _matches(module: str, package: str) -> bool:
    return module == package or module.startswith(package + '.')


def _imported_modules(tree: ast.AST) -> List[Tuple[str, int]]:
    """Every absolute module name the source imports, with its line (``from a import b``
    gives ``a.b`` as well, so ``from algoperf import jax_sharding_utils`` is seen)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, node.lineno))
            out.extend((f'{node.module}.{alias.name}', node.lineno) for alias in node.names)
    return out


def detect(file: Path) -> Detection:
    """Read ``file``'s imports; raise UserInputError if it cannot be parsed."""
    file = Path(file)
    try:
        tree = ast.parse(file.read_text(encoding='utf-8'), filename=str(file))
    except OSError as e:
        raise UserInputError(f'Cannot read submission {file}: {e.strerror}.') from None
    except (SyntaxError, UnicodeDecodeError) as e:
        where = f'{file}:{e.lineno}' if getattr(e, 'lineno', None) else str(file)
        raise UserInputError(f'{where}: the submission is not valid Python: {e}') from None
    found: Dict[str, List[Tuple[str, int]]] = {fw: [] for fw in FRAMEWORKS}
    for module, line in _imported_modules(tree):
        for fw, packages in FRAMEWORK_PACKAGES.items():
            hit = next((p for p in packages if _matches(module, p)), None)
            if hit is not None:
                # Name the package, not every submodule: `torch at line 3`, not torch.nn.
                found[fw].append((hit, line))
    return Detection(file, found)


def _fix() -> str:
    return ('Say which with --framework jax or --framework pytorch, or split it into a '
            'folder with jax_submission.py and pytorch_submission.py.')


def file_framework(file: Path, requested: Optional[str] = None) -> Tuple[str, str]:
    """The framework a single-file submission runs under, and how that was decided.

    Returns ``(framework, how)``; ``how`` is ``detected from its imports: torch at
    line 3`` or ``--framework``. Raises UserInputError when the imports do not
    decide and nothing was requested, or when the request contradicts them.
    """
    d = detect(file)
    if requested is not None:
        if requested not in FRAMEWORKS:
            raise UserInputError(f'--framework must be one of {", ".join(FRAMEWORKS)}, '
                                 f'got {requested!r}.')
        if d.framework is not None and d.framework != requested:
            raise UserInputError(
                f'{file} is a {d.framework} submission (it imports {d.evidence(d.framework)} '
                f'and no {requested} package): it cannot run under --framework {requested}. '
                f'Leave out --framework (it is detected), or give --framework {d.framework}; '
                f'in a suite file, give the submission `frameworks: [{d.framework}]`.')
        return requested, '--framework'
    if d.framework is not None:
        return d.framework, f'detected from its imports: {d.evidence(d.framework)}'
    if d.frameworks:
        both = ' and '.join(f'{fw} ({d.evidence(fw)})' for fw in d.frameworks)
        raise UserInputError(f'{file} imports both {both}, so its framework is ambiguous. '
                             + _fix())
    packages = ', '.join(p.split('.')[0] for p in FRAMEWORK_PACKAGES['jax'][:3])
    raise UserInputError(
        f'{file} imports neither torch nor {packages}, so its framework cannot be '
        'told from its imports (they may be in a module it imports). ' + _fix())
