"""Converting a lake an older csload wrote (its own manifest format, before the lake's tables
were Delta tables) in place, on a sync's first open or by `csload lake upgrade ROOT`.

    csload/lake_upgrade/older_format.py   reading the older format, read-only, checked whole
                                          (its manifests, ledger snapshots, markers; the
                                          names of its lock files)
    csload/lake_upgrade/convert.py        the conversion, under the older csload's lock (so
                                          that no older sync writes meanwhile), and
                                          `open_store`, a sync's open that converts first

Kept apart from csload.lake, which knows only Delta tables: nothing in the lake itself reads a
manifest or takes a lock. Once no lake of the older format is left, this package goes.
"""
