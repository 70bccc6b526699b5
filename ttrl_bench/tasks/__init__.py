"""Task definitions: the schema of ``tasks/*.yaml`` and the registry that reads them."""
from ttrl_bench.tasks.registry import CHOICE_LETTERS, Task, get_task, load_task_file, load_tasks, tasks_directory, with_fields

__all__ = ["CHOICE_LETTERS", "Task", "get_task", "load_task_file", "load_tasks", "tasks_directory", "with_fields"]
