"""What several benchmarks share."""

from __future__ import annotations

# The synthetic leads file's engagement counters (export-day counts since the activity log).
COUNTERS = ["web_visits", "pages_viewed", "content_downloads", "email_opens"]


def leads_own_columns(params: dict) -> dict:
    """`params` (the repository's params.yaml, as a dict) changed in place to read the leads
    file alone: no activity log, the file's own counters as inputs, as before the log existed.
    For speed benchmarks that stream leads-only files (they have no log to join)."""
    params["data"]["activities"] = {"path": None}
    params["features"]["numeric"] = ["employees", *COUNTERS, "demo_requested"]
    params["features"]["snapshot_columns"] = []
    return params


def in_process_scorer(params: dict):
    """The champion, its activity log and a `Scorer` as `leadq serve` holds them, in this
    process, with OpenMP at one thread as the service's worker sets it: (served, activity,
    scorer), for benchmarks that time a request's pieces without HTTP."""
    from threadpoolctl import threadpool_limits

    from leadq.pipelines.service.app import Scorer
    from leadq.pipelines.service.state import ActivityLog, ModelHolder

    holder = ModelHolder(params)
    served = holder.load()
    activity = ActivityLog(params)
    activity.refresh()
    scorer = Scorer(params, holder, activity)
    threadpool_limits(limits=1, user_api="openmp")
    return served, activity, scorer
