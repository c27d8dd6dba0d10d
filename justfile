# Recipes for working on csload. `just` alone lists them.
venv := ".venv"
py := venv / "bin/python"

default:
    @just --list

# Create the development environment (editable install with test and lint tools).
setup:
    test -x {{py}} || python3 -m venv {{venv}}
    {{py}} -m pip install -q -e '.[dev]'

# The test suite, exactly as CI runs it (.ci/run).
test *args:
    test -x {{py}} || python3 -m venv {{venv}}
    {{py}} -m pip install -q -e '.[test]'
    {{py}} -m pytest {{args}}

# ruff (lint + import order) and mypy --strict.
lint: setup
    {{venv}}/bin/ruff check csload tests benchmarks
    {{venv}}/bin/mypy

# End-to-end benchmark of `csload sync` vs DuckDB's own load (`just bench --quick`: ~1 min smoke).
bench *args: setup
    {{py}} benchmarks/bench_sync.py {{args}}

# The same for the lake of Delta tables: `csload sync --parquet` vs DuckDB's own COPY ... TO parquet.
bench-parquet *args: setup
    {{py}} benchmarks/bench_parquet.py {{args}}

# What a lake's ledger costs as it grows (1 k, 10 k, 100 k runs): a batch's commit, an open.
bench-ledger *args: setup
    {{py}} benchmarks/bench_ledger.py {{args}}

# A first sync of a year of daily jobs whose older runs expired: into a lake and a DuckDB file.
bench-history *args: setup
    {{py}} benchmarks/bench_history.py {{args}}

# The demo: an in-process simulator, its jobs and runs.
demo: setup
    {{venv}}/bin/csload demo

# Run the local Export API simulator (prints the settings to use).
simulate port="8765" days="3" seed="1": setup
    {{venv}}/bin/csload simulate --port {{port}} --days {{days}} --seed {{seed}}
