"""The public surface is deliberate: changing it must be a conscious act."""

import csload

EXPECTED = {
    "ApiError", "ApiRequestError", "ApiUnavailable", "AuthError", "ConfigError",
    "CredentialsRejected", "CsloadError", "DownloadError", "IncompleteDownload",
    "InsecureUrlError", "Limits", "PartError", "PartParseError", "PartUrlExpired",
    "RetryPolicy", "Settings", "StoreError", "StoreLockedError", "__version__", "load_settings",
    "RunOutcome", "RunStatus", "StoreStatus", "SyncReport", "connect", "read_status",
    "read_target_status", "sync",
    "sync_async", "backfill", "backfill_async", "BackfillReport",
    "run_doctor", "run_doctor_async", "DoctorReport",
}


def test_all_is_locked() -> None:
    assert set(csload.__all__) == EXPECTED
    for name in csload.__all__:
        assert hasattr(csload, name)


def test_every_error_derives_from_the_root() -> None:
    for name in csload.__all__:
        value = getattr(csload, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, csload.CsloadError)
