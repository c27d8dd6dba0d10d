"""Backfills: past days loaded through `once` jobs (at most 7 days each), or the gaps filled.

    plan       the arguments checked, the days cut into windows, each window's job spec
    engine     backfill / backfill_async: the arguments, the target, the plan; resumable
    work       each window's job checked, created or reused, waited for, its run loaded
               through the pipeline
    ledgers    where the backfill reads the target's ledgers and records its jobs
    report     BackfillReport and its events
"""
