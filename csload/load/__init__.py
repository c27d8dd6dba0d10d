"""The load stage: staged runs into DuckDB, exactly once, with the ledger in the same commit.

    duckdb          DuckDBStore: batches of staged runs applied in one transaction; connect
    hooks           what a target adds to the store's steps (the lake's interface)
    batch           a batch's pending runs and the reader calls that read their parts
    batch_sql       the statements of a batch's transaction: table, run map, inserts, counts
    supersede_sql   the key rule and the window rule, in SQL, inside that transaction
    failures        a run that fails inside a batch; damaged downloads told from bad data
    outcome         AppliedRun: what the store did with one run
    memory          the writer's DuckDB memory caps
    parts, limits   reading a staged part (CSV or JSONL) and the caps on its shape
    columns, sql    a job's columns and the SQL that loads them (names quoted, never pasted)
    supersede       the key rule and the window rule (which rows a later run replaces)
    lookups         the codes.* lookup tables and column comments
    placement       which table each job loads into (one field set per table)
    ledger          _csload.runs, parts and jobs: what was loaded, failed or expired
    backfill_ledger the backfill's jobs and the daily coverage gaps
    status          StoreStatus: what a ledger says, for `csload status`
    holder          who holds a database that is locked
"""
