"""Tasks and their data: text classification from a user's files, a folder, the hub, or the bundled subset.

Torch-free: examples are plain ``(text_a, text_b, class id)`` tuples; tokenised batches are the
training loop's (:mod:`earlyexit.training`).
"""

from ._tasks import (FILE_TYPES, TASKS, DataError, DataSource, TaskData, TaskInfo, default_text_column, folder_files,
                     load_task, resolve_folder)

__all__ = ["FILE_TYPES", "TASKS", "DataError", "DataSource", "TaskData", "TaskInfo", "default_text_column", "folder_files",
           "load_task", "resolve_folder"]
