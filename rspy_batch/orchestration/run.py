"""Running Luigi graphs from the CLI, and the exit codes that tell cron what happened.

| code | meaning                                                        |
|------|----------------------------------------------------------------|
| 0    | every window done, nothing rejected                            |
| 1    | configuration or usage error (nothing ran)                     |
| 3    | every window done, but some station entities were rejected     |
| 4    | at least one window failed (see ``rspy-batch status``)         |
| 5    | the scheduler could not schedule the graph                     |
| 6    | nothing ran (e.g. another run holds the tasks)                 |
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import luigi
from luigi.execution_summary import LuigiRunResult, LuigiStatusCode

from rspy_batch.redact import register_secret

OK, CONFIG_ERROR, REJECTED, TASK_FAILED, SCHEDULING_FAILED, NOT_RUN = 0, 1, 3, 4, 5, 6


def build(tasks: Sequence[luigi.Task], *, workers: int = 1, scheduler_url: str | None = None,
          quiet: bool = False) -> LuigiStatusCode:
    """Run ``tasks`` with Luigi's real scheduler: in-process, or ``luigid`` when given.
    ``quiet`` keeps Luigi's own log lines to warnings (the demo shows progress instead)."""
    return run_graph(tasks, workers=workers, scheduler_url=scheduler_url, quiet=quiet).status


def run_graph(tasks: Sequence[luigi.Task], *, workers: int = 1,
              scheduler_url: str | None = None, quiet: bool = False) -> LuigiRunResult:
    """:func:`build`, returning Luigi's whole result (its summary categories decide a
    campaign's exit code, see :mod:`rspy_batch.orchestration.retcodes`)."""
    kwargs: dict[str, object] = {"workers": workers, "detailed_summary": True}
    if quiet:
        kwargs["log_level"] = "WARNING"
    if scheduler_url:
        # Luigi names the URL in its warnings and errors; a password in it is a secret.
        register_secret(urlsplit(scheduler_url).password)
        kwargs["scheduler_url"] = scheduler_url
    else:
        kwargs["local_scheduler"] = True
    return luigi.build(list(tasks), **kwargs)


def exit_code(status: LuigiStatusCode, rejected: int = 0) -> int:
    if status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY):
        return REJECTED if rejected else OK
    if status in (LuigiStatusCode.FAILED, LuigiStatusCode.MISSING_EXT):
        return TASK_FAILED
    if status in (LuigiStatusCode.SCHEDULING_FAILED, LuigiStatusCode.FAILED_AND_SCHEDULING_FAILED):
        return SCHEDULING_FAILED
    return NOT_RUN
