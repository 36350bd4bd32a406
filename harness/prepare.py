"""Fetch or build a workload's data: ``timetrial prepare`` and the automatic step of ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from harness import paths, registry
from harness.spec import DataNotPreparedError


def prepare(workload: str, data_dir: Optional[str] = None, variant: Optional[str] = None,
            source: Optional[str] = None, log: Callable[[str], None] = print) -> Path:
    info = registry.validate_workload_choice(workload, None, variant)
    root = paths.resolve_data_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    registry.load_object(info.prepare)(str(root), variant=variant, source=source, log=log)
    return root


def ensure_prepared(workload_obj, name: str, variant: Optional[str], data_dir: Optional[str],
                    log: Callable[[str], None] = print) -> None:
    """Prepare the default data of a workload if it is missing (``timetrial run`` does this)."""
    root = str(paths.resolve_data_dir(data_dir))
    try:
        workload_obj.check_data(root)
        return
    except DataNotPreparedError:
        pass
    log(f'Data for {name}{"/" + variant if variant else ""} is not prepared in {root}: '
        'preparing it now (once; later runs reuse it).')
    prepare(name, root, variant=variant, log=log)
    workload_obj.check_data(root)
