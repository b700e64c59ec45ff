"""Tasks and their data: text classification from a user's files, a folder, the hub, or the bundled subset."""

from ._tasks import FILE_TYPES, TASKS, DataError, DataSource, TaskData, TaskInfo, load_task, resolve_folder
from ._batches import Batcher, collate

__all__ = ["FILE_TYPES", "TASKS", "Batcher", "DataError", "DataSource", "TaskData", "TaskInfo", "collate", "load_task",
           "resolve_folder"]
