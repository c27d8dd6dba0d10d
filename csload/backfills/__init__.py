"""Backfills: past days loaded through `once` jobs (at most 7 days each), or the gaps filled.

    plan       the arguments checked, the days cut into windows, each window's job spec
    engine     backfill / backfill_async: create or reuse each window's job, wait for its run,
               load it through the pipeline; resumable
    report     BackfillReport and its events
"""
