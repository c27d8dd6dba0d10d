"""A user id no account on the test machine has: "someone else" for the shared-host tests.

The tests run as root, so they can give a folder or file to this id (chown) and check that
csload leaves it alone or refuses it.
"""

OTHER_UID = 4242
