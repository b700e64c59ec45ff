"""Tasks and their data: GLUE-style text classification from the hub, a folder, or the bundled subset."""

from ._tasks import TASKS, TaskData, TaskInfo, load_task
from ._batches import Batcher, collate

__all__ = ["TASKS", "Batcher", "TaskData", "TaskInfo", "collate", "load_task"]
