"""What the test suites share, imported as `from tests.support.<module> import ...`.

Oracles (what csload's result is checked against, computed without csload's code):
    syncref           the simulator's truth, applied run by run (syncs)
    bfref             a backfill's expected result
    lakeref           the truth as a lake should hold it
    supersede_oracle  the supersede rules in plain Python, and a scenario that exercises them
    exportfmt         an independent decoder of the export file formats
    hard_values       rows with the values hardest to load exactly
    contract_codes    the contract's codes (section 8), typed in, not read from csload

Writers and data:
    partgen           an independent writer of export part files
    load_crash_data, lake_crash_data   the runs of the store and lake crash tests

Crash children (run with `python -m`, started through `children`) and their harness:
    children          the command and environment of a child process
    sync_child, lake_sync_child, load_crash_child, lake_crash_child
    crash_harness     seeded crash points, counting seams, a broken part, a full disk

Servers, clients and time:
    simenv            reaching a simulator on 127.0.0.1 (settings, environment, child env)
    simhttp           a raw HTTP client of the simulator
    s3server          moto's S3 server on 127.0.0.1
    proxy             a forwarding HTTP proxy, and the simulator over TLS
    api_fakes         fakes shared by the API client's tests, and their aioresponses helpers
    virtual_time      an event loop on virtual time; bfclock: the backfill tests' clock

Suite kits: relkit, lakekit, targets (reliability), lakeutil (lake), doctorkit (doctor).
"""
