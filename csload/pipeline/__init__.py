"""The pipeline: one `csload sync`, from the plan to the report.

    sync       sync / sync_async: open the target, plan, download and load in bounded streams
    plan       what is new for each selected job, by the ledger; each job's table
    discover   the selection (jobs, days) and the order runs are loaded in
    batching   staged runs grouped into the writer's batches
    dry_run    the plan described without downloading (sizes probed, expiries predicted)
    report     SyncReport, RunOutcome, the events the CLI shows
"""
