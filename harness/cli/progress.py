"""A rich progress bar for a running trial: step, train loss, submission time, budget left."""

from __future__ import annotations

from typing import Any, Dict

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class TrialProgress:
    def __init__(self, console, label: str):
        self.progress = Progress(
            TextColumn('[bold]{task.description}'), BarColumn(),
            TextColumn('{task.fields[info]}'), TimeElapsedColumn(), console=console,
            transient=False, refresh_per_second=4)
        self.label = label
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task(self.label, total=1.0, info='starting')
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def on_event(self, kind: str, info: Dict[str, Any]) -> None:
        if kind == 'step':
            budget = info['budget_s']
            used = info['submission_time_s']
            loss = info.get('loss')
            loss_text = f' train_loss:{loss:.4f}' if loss is not None else ''
            self.progress.update(
                self.task, completed=min(used / budget, 1.0),
                info=f'step:{info["step"]}{loss_text} submission_time:{used:.1f}s '
                     f'budget_left:{max(budget - used, 0):.0f}s')
        elif kind == 'eval':
            metrics = ' '.join(f'{k}:{v:.4g}' for k, v in info.items()
                               if k.startswith('validation/'))
            self.progress.console.print(
                f'  eval step:{info["step"]} submission_time:{info["submission_time_s"]:.1f}s '
                f'{metrics}')
