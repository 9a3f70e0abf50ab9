"""Exit codes of campaign runs, the way ``luigi`` itself computes them (``[retcode]``).

Luigi sorts a run's tasks into categories (failed, run by another worker, ...) and exits
with the highest code configured for a category that occurred, so cron can tell "another
run is on it" from "a window failed". rspy-batch does the same with the same category
names: a ``[retcode]`` section in the Luigi configuration (``luigi.cfg``,
``LUIGI_CONFIG_PATH``) sets the codes; where it is silent, these defaults apply (Luigi's
own defaults are 0 for most categories, which would hide failures from cron):

| category              | default | when                                                  |
|-----------------------|---------|-------------------------------------------------------|
| (success)             | 0       | every window done                                     |
| (rejected)            | 3       | done, but some entities, files or products rejected   |
| ``task_failed``       | 4       | a window's task failed                                |
| ``scheduling_error``  | 5       | a task's ``complete()`` or ``requires()`` raised      |
| ``not_run``           | 6       | the scheduler did not let a task run                  |
| ``already_running``   | 7       | another worker or run holds a window (skipped)        |
| ``missing_data``      | 8       | an external input is missing                          |
| ``unhandled_exception``| 9      | an error inside Luigi itself                          |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import luigi
from luigi.execution_summary import LuigiRunResult, _summary_dict

OK, REJECTED = 0, 3
DEFAULTS: Mapping[str, int] = {"task_failed": 4, "scheduling_error": 5, "not_run": 6,
                               "already_running": 7, "missing_data": 8,
                               "unhandled_exception": 9}

#: Luigi's summary categories behind each retcode category (``luigi.retcodes``).
_SUMMARY = {"missing_data": "still_pending_ext", "task_failed": "failed",
            "already_running": "run_by_other_worker", "scheduling_error": "scheduling_error",
            "not_run": "not_run"}


def codes() -> dict[str, int]:
    """The configured code of every category: ``[retcode]`` where set, else the defaults."""
    config = luigi.configuration.get_config()
    return {name: (config.getint("retcode", name) if config.has_option("retcode", name)
                   else default) for name, default in DEFAULTS.items()}


def categories(result: LuigiRunResult, roots: Sequence[luigi.Task]) -> set[str]:
    """The retcode categories that occurred in a run, counting only tasks still not
    complete at the end: on a shared ``luigid``, tasks another worker finished stay
    "pending" (hence "not run") in this worker's summary, though the catalog says done."""
    # The private summary is what luigi.retcodes.run_with_retcodes reads; the public
    # status collapses several categories into one.
    summary = _summary_dict(result.worker)
    found = {name for name, key in _SUMMARY.items()
             if any(not _complete(task) for task in summary.get(key, ()))}
    if not found and not all(_complete(task) for task in roots):
        found.add("not_run")
    return found


def _complete(task: luigi.Task) -> bool:
    try:
        return bool(task.complete())
    except Exception:  # a check that fails now is a scheduling error, reported as such
        return False


def exit_code(found: set[str], *, rejected: int = 0, table: Mapping[str, int] | None = None
              ) -> int:
    """Luigi's rule: the highest code among the categories found; else 3 when something
    was rejected, else 0."""
    table = table or codes()
    code = max((table[name] for name in found), default=0)
    return code or (REJECTED if rejected else OK)
