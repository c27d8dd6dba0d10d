"""The transfer stage: a run's parts from the storage host to private staging files.

    stage      stage_run: every part of one run downloaded (URLs refreshed when they expire),
               or none of it; RunExpired when storage no longer has the run
    host       StorageHost: the storage host, through the API client's pool, never its token
    storage    one part's download: streamed, retried, capped, verified (the module's rules)
    guard      the caps on one download: bytes of a part, the minimum rate
    gzipcheck  a gzip stream verified while it streams
    slots      download slots taken in plan order
    staged     StagedRun, StagedPart: the hand-off to the load stage; the parts cap
"""
