"""The DuckDB memory caps of the load stage's writer (csload.load.duckdb).

Measured with benchmarks/bench_sync.py; each value says what it bought.
"""

from __future__ import annotations

# The writer's DuckDB memory cap; DuckDB spills to `<db>.tmp/` beyond it. DuckDB's default keeps
# up to 80% of RAM of written blocks in memory, so a sync's RSS grew with the data (630 MB at
# 2M rows); capped, it spills to disk and stays flat (~360 MB at 1M and 2M rows, same speed).
MEMORY_LIMIT = "256MB"
# The cap while one statement reads JSONL parts (csload.load.hooks: a target may decline it).
# Under MEMORY_LIMIT the JSON reader's buffers (~115 MB) and the transaction's row groups
# (~150 MB) leave DuckDB no headroom, and it hands freed memory back to the OS after nearly
# every eviction: at 2 M pageviews the sessions insert took 2.0 s instead of 1.7 s, with 2-3x
# the page faults. Peak RSS rose by 10-30 MB (360-371 MB at 1 M and 2 M pageviews, 390 MB at
# 4 M): the row groups are flushed one at a time (write_buffer_row_group_count = 1), and a
# statement reads at most JSON_STATEMENT_BYTES of parts, which bounds the written blocks it
# leaves cached; the cap goes back to MEMORY_LIMIT after the statement, which evicts them.
JSON_MEMORY_LIMIT = "512MB"
JSON_STATEMENT_BYTES = 256 << 20
