"""`first_error`: the error to report when a task group fails."""

from __future__ import annotations

import anyio


def first_error(error: BaseException) -> BaseException:
    """The error that failed a task group, out of its (nested) exception group.

    One task's failure cancels the others, so the group also holds their cancellations:
    report the first error that is not one.
    """
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if not isinstance(inner, anyio.get_cancelled_exc_class()):
                return first_error(inner)
    return error
