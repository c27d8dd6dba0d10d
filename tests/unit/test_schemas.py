"""Every field of the contract's section 8 catalog is in schemas/, and every file is valid."""

import tomllib
from typing import Any

import pytest

from csload.api.schemas import duckdb_type_of, load_schema, parse_schema, schemas_dir
from csload.errors import ConfigError
from csload.load.lookups import parse_codes

SESSIONS_CATALOG = """
project_id UInt32|session_id UInt64|user_id UInt64|user_id_unhashed String|session_number UInt16|
session_date Date|session_time DateTime|device_id Int8|session_number_of_views UInt16|
session_duration_msec UInt32|language String|country_code String|city String|referer_url String|
browser_name String|browser_version String|platform_name String|platform_version String|
browser_major_version UInt16|os_version String|app_version String|model String|
manufacturer String|screen_height UInt16|screen_width UInt16|density Float32|
session_number_of_transactions UInt16|session_transactions_revenue_cents UInt64|
is_excludable UInt8|app_events.event_type Array(UInt8)|app_events.event_time Array(DateTime)|
app_events.event_name Array(String)|app_events.view_number Array(UInt32)|
session_transaction_items.id Array(String)|session_transaction_items.sku Array(String)|
session_transaction_items.product_id_hashed Array(UInt64)|
session_transaction_items.revenue_cents Array(UInt64)|
session_transaction_items.quantity Array(UInt16)|session_transaction_items.catalog_id Array(UInt32)|
session_transaction_items.transaction_view_number Array(UInt32)|
session_transaction_items.transaction_time Array(DateTime)|
session_add_to_cart_items.sku Array(String)|session_add_to_cart_items.catalog_id Array(UInt32)|
session_add_to_cart_items.add_to_cart_view_number Array(UInt32)|
session_add_to_cart_items.product_id_hashed Array(UInt64)|
session_add_to_cart_items.is_in_transaction Array(UInt8)|
session_add_to_cart_items.add_to_cart_time Array(DateTime)
"""

VIEWS_CATALOG = """
project_id UInt32|session_id UInt64|user_id UInt64|session_number UInt16|device_id Int8|
view_number UInt16|view_time DateTime|url String|url_no_query_param String|scheme String|
prefix String|path String|query String|screen_name String|view_duration_msec UInt32|
page_interaction_time_msec UInt32|scroll_rate Nullable(Float32)|
frustration_score Nullable(Float32)|is_first UInt8|is_last UInt8|window_height UInt16|
window_width UInt16|document_width UInt16|document_height UInt32|
dom_interactive_after_msec Nullable(UInt32)|fully_loaded Nullable(UInt32)|
start_render Nullable(UInt32)|rage_click_all_targets_ind UInt8|
multiple_button_interaction_ind UInt8|any_js_error_ind UInt8|any_api_error_ind UInt8|
api_error_after_click_ind UInt8|errors.error_type Array(String)|errors.message Array(String)|
errors.filename Array(String)|errors.error_time Array(DateTime)|
errors.line_number Array(UInt32)|errors.col_number Array(UInt32)
"""


def catalog(text: str) -> dict[str, str]:
    entries = [e.strip() for e in text.replace("\n", "").split("|") if e.strip()]
    return dict(entry.split(" ", 1) for entry in entries)


@pytest.mark.parametrize(("scope", "text"), [("sessions", SESSIONS_CATALOG),
                                              ("views", VIEWS_CATALOG)])
def test_every_catalog_field_present_with_its_source_type(scope: str, text: str) -> None:
    expected = catalog(text)
    schema = load_schema(scope)
    assert {f.name: f.source_type for f in schema.fields} == expected


def test_row_keys_and_date_fields() -> None:
    assert load_schema("sessions").row_key == ("session_id",)
    assert load_schema("sessions").date_field == "session_date"
    assert load_schema("views").row_key == ("session_id", "view_number")
    assert load_schema("views").date_field == "view_time"


def test_duckdb_types() -> None:
    views = load_schema("views")
    assert views.field("session_id").duckdb_type == "UBIGINT"
    assert views.field("view_time").duckdb_type == "TIMESTAMP"
    assert views.field("errors.error_time").duckdb_type == "TIMESTAMP[]"
    assert views.field("scroll_rate").duckdb_type == "FLOAT"
    assert views.field("scroll_rate").nullable
    assert views.field("is_first").flag
    assert views.field("is_first").duckdb_type == "BIGINT"
    sessions = load_schema("sessions")
    assert sessions.field("session_add_to_cart_items.is_in_transaction").flag
    assert sessions.field("device_id").duckdb_type == "BIGINT"
    # Narrow widths are guesses (contract section 9): every narrower integer loads as BIGINT.
    assert sessions.field("session_number").duckdb_type == "BIGINT"
    assert duckdb_type_of("Array(UInt16)") == "BIGINT[]"
    assert duckdb_type_of("Int64") == "BIGINT"
    assert set(sessions.families()) == {"app_events", "session_transaction_items",
                                        "session_add_to_cart_items"}
    assert duckdb_type_of("Array(Nullable(UInt64))") == "UBIGINT[]"


def test_every_file_valid() -> None:
    files = sorted(schemas_dir().glob("*.toml"))
    # codes.toml: the codes of coded fields (csload.load.lookups), checked by its own parser.
    assert [f.stem for f in files] == ["codes", "sessions", "views"]
    for path in files:
        parse = parse_codes if path.stem == "codes" else parse_schema
        parse(tomllib.loads(path.read_text()), str(path))


def _doc() -> dict[str, Any]:
    return {"scope": "views", "row_key": ["a"], "date_field": "d", "fields": [
        {"name": "a", "source_type": "UInt64", "duckdb_type": "UBIGINT"},
        {"name": "d", "source_type": "DateTime", "duckdb_type": "TIMESTAMP"},
    ]}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["fields"][0].update(duckdb_type="BIGINT"), "does not match"),
    (lambda d: d.update(row_key=["zzz"]), "row_key"),
    (lambda d: d.update(date_field="a"), "must be a Date or DateTime"),
    (lambda d: d.update(scope="clicks"), "scope must be one of"),
    (lambda d: d["fields"].append(dict(d["fields"][0])), "duplicate"),
    (lambda d: d["fields"][0].update(flag=True), "only UInt8"),
    (lambda d: d["fields"][0].update(colour="red"), "unknown keys"),
    (lambda d: d["fields"][0].update(source_type="Decimal", duckdb_type="X"), "unknown source"),
])
def test_invalid_documents_rejected(mutate: Any, message: str) -> None:
    doc = _doc()
    parse_schema(doc, "doc")
    mutate(doc)
    with pytest.raises(ConfigError, match=message):
        parse_schema(doc, "doc")


def test_unknown_scope() -> None:
    with pytest.raises(ConfigError, match="unknown scope"):
        load_schema("clicks")
