"""The autotuner: measurement, an XGBoost cost model, search and tuning jobs.

    tasks = tosac.tune.extract_tasks(graph, "host")
    reports = tosac.tune.tune(graph, "host", trials=64, log="model.jsonl")
    exe = tosac.compile(graph, "host", tuning_log="model.jsonl")

Tasks, the log format and the best-config lookup live in ``tosac.pipeline``
(``compile`` reads logs without the tuner); they are re-exported here because
tuning is where users meet them.
"""
from tosac.pipeline.tasks import Task, extract_tasks
from tosac.pipeline.tuned_configs import best_configs
from tosac.pipeline.tuning_log import ErrorCode, Record, TuningLog
from tosac.tune.job import TaskReport, tune, tune_task
from tosac.tune.measure import FakeRunner, LocalRunner, MeasurePolicy, MeasureResult, Runner
from tosac.tune.search import GridTuner, RandomTuner, XGBTuner

__all__ = ["TaskReport", "best_configs", "tune", "tune_task", "ErrorCode", "Record", "TuningLog", "FakeRunner",
           "LocalRunner", "MeasurePolicy", "MeasureResult", "Runner", "GridTuner", "RandomTuner", "XGBTuner",
           "Task", "extract_tasks"]
