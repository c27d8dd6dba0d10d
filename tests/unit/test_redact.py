from csload.https_rule import is_loopback_host
from csload.redact import redact_text, redact_url


def test_redact_url_drops_query_and_userinfo() -> None:
    url = "https://user:pw@storage.example.com:8443/bucket/part-1.gz?X-Amz-Signature=abc&x=1"
    safe = redact_url(url)
    assert safe == "https://storage.example.com:8443/bucket/part-1.gz?<redacted>"
    assert "abc" not in safe and "pw" not in safe


def test_a_url_without_a_scheme_is_shown_as_given_without_its_query() -> None:
    # CONTENTSQUARE_AUTH_URL=127.0.0.1:8765 was quoted back as "://127.0.0.1:8765".
    assert redact_url("127.0.0.1:8765") == "127.0.0.1:8765"
    assert redact_url("localhost:8000/x?Signature=abc") == "localhost:8000/x?<redacted>"


def test_redact_text_scrubs_tokens_and_signatures() -> None:
    text = ("Authorization: Bearer abc.def-123 failed for "
            "https://h/p?signature=deadbeef&expires=99 token eyJhbGci.eyJzdWIi.c2ln "
            '{"client_secret": "topsecret"}')
    scrubbed = redact_text(text)
    for secret in ("abc.def-123", "deadbeef", "eyJhbGci.eyJzdWIi.c2ln", "topsecret"):
        assert secret not in scrubbed
    assert "Bearer <redacted>" in scrubbed


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("127.9.9.9")
    assert is_loopback_host("::1")
    assert is_loopback_host("[::1]")
    assert is_loopback_host("LOCALHOST")
    assert not is_loopback_host("10.0.0.1")
    assert not is_loopback_host("example.com")
    assert not is_loopback_host(None)
