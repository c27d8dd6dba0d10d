"""The Export API's response envelope, in one place.

Success is `{"success": true, "payload": <data>}`; a body without the envelope is its own
payload (contract section 3). Errors are `{"success": false, "errorMessage", "errorCode"}`,
but a proxy or the token endpoint may answer with an empty body, plain text or HTML: every
form yields an (error code, message) pair, the message redacted and bounded.
"""

from __future__ import annotations

from typing import Any

import orjson

from csload.errors import ApiError
from csload.redact import redact_text

# An HTML error page from a proxy is noise beyond its first lines.
_MAX_MESSAGE = 300

_NOT_JSON = object()


def decode(raw: bytes) -> Any:
    """The JSON body, or a sentinel object when the body is empty or not JSON."""
    if not raw.strip():
        return _NOT_JSON
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def payload(raw: bytes, what: str) -> Any:
    """The payload of a successful response body."""
    body = decode(raw)
    if body is _NOT_JSON:
        raise ApiError(f"{what}: the API answered with a body that is not JSON")
    if isinstance(body, dict):
        if body.get("success") is False:
            code, message = error_details(raw)
            raise ApiError(f"{what}: the API reported a failure ({code or 'no code'}): {message}",
                           error_code=code)
        if "payload" in body:
            return body["payload"]
    return body


def payload_list(raw: bytes, what: str) -> list[Any]:
    """The payload of a list endpoint, which must be a JSON array."""
    data = payload(raw, what)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ApiError(f"{what}: expected a list, got {type(data).__name__}")
    return data


def payload_object(raw: bytes, what: str) -> dict[str, Any]:
    data = payload(raw, what)
    if not isinstance(data, dict):
        raise ApiError(f"{what}: expected an object, got {type(data).__name__}")
    return data


def error_details(raw: bytes) -> tuple[str | None, str]:
    """(errorCode, errorMessage) of an error body; the message is redacted and bounded."""
    body = decode(raw)
    code: str | None = None
    message = ""
    if isinstance(body, dict):
        raw_code = body.get("errorCode", body.get("code"))
        code = str(raw_code) if raw_code not in (None, "") else None
        raw_message = body.get("errorMessage", body.get("message", body.get("error")))
        message = "" if raw_message is None else str(raw_message)
    elif body is _NOT_JSON:
        message = " ".join(raw[:_MAX_MESSAGE * 2].decode("utf-8", "replace").split())
    else:
        message = str(body)
    message = redact_text(message)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return code, message
