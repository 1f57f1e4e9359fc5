"""The autotuner: tasks, measurement, an XGBoost cost model, search, and tuning logs.

    tasks = tosac.tune.extract_tasks(graph, "host")
    reports = tosac.tune.tune(graph, "host", trials=64, log="model.jsonl")
    exe = tosac.compile(graph, "host", tuning_log="model.jsonl")
"""
from tosac.tune.job import TaskReport, best_configs, tune, tune_task
from tosac.tune.log import ErrorCode, Record, TuningLog
from tosac.tune.measure import FakeRunner, LocalRunner, MeasurePolicy, MeasureResult, Runner
from tosac.tune.search import GridTuner, RandomTuner, XGBTuner
from tosac.tune.tasks import Task, extract_tasks

__all__ = ["TaskReport", "best_configs", "tune", "tune_task", "ErrorCode", "Record", "TuningLog", "FakeRunner",
           "LocalRunner", "MeasurePolicy", "MeasureResult", "Runner", "GridTuner", "RandomTuner", "XGBTuner",
           "Task", "extract_tasks"]
