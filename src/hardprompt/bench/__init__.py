"""The benchmark harness: tasks × methods × seeds at equal budget, with JSONL rows, a table and a plot."""

from .harness import Budget, run_suite
from .tasks import TASKS, Task, TaskInstance

__all__ = ["TASKS", "Budget", "Task", "TaskInstance", "run_suite"]
