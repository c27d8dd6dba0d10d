"""The response envelope and error bodies (csload.api.envelope)."""

from __future__ import annotations

import orjson
import pytest

from csload.api import envelope
from csload.errors import ApiError


def body(value: object) -> bytes:
    return orjson.dumps(value)


@pytest.mark.parametrize(
    "raw",
    [body({"success": True, "payload": {"jobId": 1}}), body({"jobId": 1}),
     body({"payload": {"jobId": 1}})],
)
def test_payload_with_or_without_envelope(raw: bytes) -> None:
    assert envelope.payload_object(raw, "job") == {"jobId": 1}


def test_list_payload_with_or_without_envelope() -> None:
    assert envelope.payload_list(body({"success": True, "payload": [1, 2]}), "x") == [1, 2]
    assert envelope.payload_list(body([1, 2]), "x") == [1, 2]
    assert envelope.payload_list(body({"success": True, "payload": None}), "x") == []


def test_wrong_shapes_are_api_errors() -> None:
    with pytest.raises(ApiError, match="expected a list"):
        envelope.payload_list(body({"success": True, "payload": {"a": 1}}), "jobs")
    with pytest.raises(ApiError, match="expected an object"):
        envelope.payload_object(body([1]), "job")
    with pytest.raises(ApiError, match="not JSON"):
        envelope.payload(b"<html>oops</html>", "job")
    with pytest.raises(ApiError, match="not JSON"):
        envelope.payload(b"", "job")


def test_success_false_with_200_is_an_error() -> None:
    raw = body({"success": False, "errorCode": "BAD", "errorMessage": "nope"})
    with pytest.raises(ApiError, match=r"BAD.*nope") as info:
        envelope.payload(raw, "job")
    assert info.value.error_code == "BAD"


def test_error_details() -> None:
    raw = body({"success": False, "errorMessage": "Auth token is expired.",
                "errorCode": "JWT_EXPIRED"})
    assert envelope.error_details(raw) == ("JWT_EXPIRED", "Auth token is expired.")
    assert envelope.error_details(b"") == (None, "")
    assert envelope.error_details(b"<html>\n <b>Bad   gateway</b>\n</html>") == (
        None, "<html> <b>Bad gateway</b> </html>")
    assert envelope.error_details(body({"message": "m", "code": 7})) == ("7", "m")


def test_error_message_is_redacted_and_bounded() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abcdef"
    raw = body({"errorCode": "X", "errorMessage": f"bad token {jwt} " + "x" * 1000})
    code, message = envelope.error_details(raw)
    assert code == "X"
    assert jwt not in message
    assert len(message) <= 303
