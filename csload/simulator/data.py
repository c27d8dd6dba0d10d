"""Seeded, deterministic rows of one day: sessions, and the pageviews that belong to them.

A day's data depends only on (seed, day, revision, sessions_per_day, project_id). Revision 0 is
what a day's first run exports; a higher revision (a re-run) changes some values, drops a few
sessions and adds a few, over the same keys otherwise.

Hard cases are placed by row position (not only by chance) so that every few dozen rows hold:
UInt64 ids above 2^63, unicode, commas, quotes and line breaks in strings, nulls, arrays with
quotes and commas inside, timestamps inside arrays, and empty arrays.

Every session and view lies inside its UTC day, so a day window holds whole sessions.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from csload.simulator import vocab
from csload.simulator.hashing import derive_seed, mix64

Row = dict[str, Any]

HIGH_BIT = 1 << 63
# Sessions start before 23:00 and last under an hour, so they end inside their day.
_LATEST_START = 23 * 3600
_MAX_VIEWS = 25
_MAX_VIEW_MSEC = 120_000

_DEVICES = tuple(vocab.DEVICE_WEIGHTS)
_DEVICE_CUM = tuple(itertools.accumulate(vocab.DEVICE_WEIGHTS.values()))
_GEO_CUM = tuple(itertools.accumulate(vocab.GEOGRAPHY_WEIGHTS))


@dataclass(frozen=True, slots=True)
class DayData:
    """One day's rows, typed (int, float, str, date, naive-UTC datetime, lists, None).

    Shared by a cache: never mutate the rows.
    """

    day: date
    revision: int
    sessions: tuple[Row, ...]
    views: tuple[Row, ...]


@dataclass(slots=True)
class _Session:
    row: Row
    views: list[Row]


class _DayGenerator:
    def __init__(self, seed: int, day: date, sessions_per_day: int, project_id: int) -> None:
        self.seed = seed
        self.day = day
        self.midnight = datetime(day.year, day.month, day.day)
        self.project_id = project_id
        self.user_pool = max(50, sessions_per_day * 2)
        self.user_seed = derive_seed("users", seed)
        # A running view counter places the views' hard cases independently of sessions.
        self.view_index = 0

    def user_id(self, u: int) -> int:
        uid = mix64(self.user_seed ^ u) & (HIGH_BIT - 1)
        # A third of the users have ids above 2^63; the rest stay below, so both occur.
        return uid | HIGH_BIT if u % 3 == 0 else max(uid, 1)

    def session(self, rng: random.Random, i: int, start: datetime) -> _Session:
        sid = rng.getrandbits(64)
        sid = sid | HIGH_BIT if i % 4 == 0 else max(sid, 1)
        u = rng.randrange(self.user_pool)
        device = rng.choices(_DEVICES, cum_weights=_DEVICE_CUM)[0]
        if i % 7 == 2:
            device = 5 if i % 14 == 9 else 4
        is_app = device in vocab.APP_DEVICES
        country, language, cities = rng.choices(vocab.GEOGRAPHY, cum_weights=_GEO_CUM)[0]
        browser, browser_versions = rng.choice(vocab.BROWSERS)
        browser_version = "" if is_app else rng.choice(browser_versions)
        platform, platform_versions = rng.choice(vocab.PLATFORMS[device])
        platform_version = rng.choice(platform_versions)
        screen_h, screen_w = rng.choice(vocab.SCREENS[device])
        model, manufacturer = rng.choice(vocab.MODELS[device])
        if i % 9 == 4:
            unhashed = vocab.HARD_STRINGS[(i // 9) % len(vocab.HARD_STRINGS)]
        else:
            unhashed = rng.choice(vocab.UNHASHED_IDS).format(u=u)

        row: Row = {
            "project_id": self.project_id,
            "session_id": sid,
            "user_id": self.user_id(u),
            "user_id_unhashed": unhashed,
            "session_number": 1 + int(rng.expovariate(0.2)) % 400,
            "session_date": self.day,
            "session_time": start,
            "device_id": device,
            "language": language,
            "country_code": country,
            "city": rng.choice(cities),
            "referer_url": rng.choice(vocab.REFERERS),
            "browser_name": "" if is_app else browser,
            "browser_version": browser_version,
            "platform_name": platform,
            "platform_version": platform_version,
            "browser_major_version": int(browser_version.split(".")[0]) if browser_version else 0,
            "os_version": platform_version,
            "app_version": rng.choice(vocab.APP_VERSIONS) if is_app else "",
            "model": model,
            "manufacturer": manufacturer,
            "screen_height": screen_h,
            "screen_width": screen_w,
            "density": rng.choice(vocab.DENSITIES),
            "is_excludable": 1 if rng.random() < 0.02 else 0,
        }
        views = self.views(rng, row, is_app)
        n_views = len(views)
        duration = sum(v["view_duration_msec"] for v in views)
        row["session_number_of_views"] = n_views
        row["session_duration_msec"] = duration
        span = max(1, duration // 1000)

        def moment() -> datetime:
            return start + timedelta(seconds=rng.randrange(span))

        self.app_events(rng, row, is_app, n_views, moment)
        self.transactions(rng, row, i, n_views, moment)
        return _Session(row, views)

    def app_events(self, rng: random.Random, row: Row, is_app: bool, n_views: int,
                   moment: Callable[[], datetime]) -> None:
        events = []
        if is_app:
            for _ in range(rng.randint(1, 6)):
                events.append((moment(), rng.choice((0, 1, 2)),
                               rng.choice(vocab.EVENT_NAMES), rng.randint(1, n_views)))
            events.sort(key=lambda e: e[0])
        row["app_events.event_type"] = [e[1] for e in events]
        row["app_events.event_time"] = [e[0] for e in events]
        row["app_events.event_name"] = [e[2] for e in events]
        row["app_events.view_number"] = [e[3] for e in events]

    def transactions(self, rng: random.Random, row: Row, i: int, n_views: int,
                     moment: Callable[[], datetime]) -> None:
        items: list[tuple[Any, ...]] = []
        n_tx = 0
        if i % 11 == 3 or rng.random() < 0.05:
            n_tx = rng.randint(1, 2)
            for t in range(n_tx):
                when = moment()
                view = rng.randint(1, n_views)
                for k in range(rng.randint(1, 3)):
                    quantity = rng.randint(1, 3)
                    product = rng.getrandbits(64)
                    product = product | HIGH_BIT if k % 2 == 0 else max(product, 1)
                    items.append((
                        f"T{self.day:%Y%m%d}-{row['session_id'] % 100000}-{t}",
                        rng.choice(vocab.SKUS), product, quantity * rng.randint(199, 25_999),
                        quantity, rng.randint(1, 5000), view, when,
                    ))
        row["session_number_of_transactions"] = n_tx
        row["session_transactions_revenue_cents"] = sum(item[3] for item in items)
        row["session_transaction_items.id"] = [item[0] for item in items]
        row["session_transaction_items.sku"] = [item[1] for item in items]
        row["session_transaction_items.product_id_hashed"] = [item[2] for item in items]
        row["session_transaction_items.revenue_cents"] = [item[3] for item in items]
        row["session_transaction_items.quantity"] = [item[4] for item in items]
        row["session_transaction_items.catalog_id"] = [item[5] for item in items]
        row["session_transaction_items.transaction_view_number"] = [item[6] for item in items]
        row["session_transaction_items.transaction_time"] = [item[7] for item in items]

        carts: list[tuple[Any, ...]] = []
        if items or rng.random() < 0.15:
            for k in range(rng.randint(1, 4)):
                product = rng.getrandbits(64)
                product = product | HIGH_BIT if k % 2 else max(product, 1)
                in_tx = 1 if items and rng.random() < 0.5 else 0
                carts.append((rng.choice(vocab.SKUS), rng.randint(1, 5000),
                              rng.randint(1, n_views), product, in_tx, moment()))
            carts.sort(key=lambda c: c[5])
        row["session_add_to_cart_items.sku"] = [c[0] for c in carts]
        row["session_add_to_cart_items.catalog_id"] = [c[1] for c in carts]
        row["session_add_to_cart_items.add_to_cart_view_number"] = [c[2] for c in carts]
        row["session_add_to_cart_items.product_id_hashed"] = [c[3] for c in carts]
        row["session_add_to_cart_items.is_in_transaction"] = [c[4] for c in carts]
        row["session_add_to_cart_items.add_to_cart_time"] = [c[5] for c in carts]

    def views(self, rng: random.Random, session: Row, is_app: bool) -> list[Row]:
        n = min(1 + int(rng.expovariate(0.25)), _MAX_VIEWS)
        start: datetime = session["session_time"]
        device = session["device_id"]
        screen_h, screen_w = session["screen_height"], session["screen_width"]
        out: list[Row] = []
        elapsed_ms = 0
        for number in range(1, n + 1):
            j = self.view_index
            self.view_index += 1
            duration = rng.randint(2_000, _MAX_VIEW_MSEC)
            when = start + timedelta(seconds=elapsed_ms // 1000)
            elapsed_ms += duration
            path = rng.choice(vocab.PATHS).format(n=rng.randint(1, 99_999))
            query = rng.choice(vocab.QUERIES)
            prefix = f"https://{vocab.SITE_HOST}"
            screen = rng.choice(vocab.SCREEN_NAMES) if is_app else ""
            if j % 13 == 5:
                hard = vocab.HARD_SCREEN_NAMES + vocab.HARD_STRINGS
                screen = hard[(j // 13) % len(hard)]
            if j % 6 == 1:
                query = vocab.QUERIES[5 + (j // 6) % 3]
            window_h = max(200, screen_h - rng.randint(0, 160))
            no_timing = is_app or j % 19 == 7 or rng.random() < 0.12
            row: Row = {
                "project_id": session["project_id"],
                "session_id": session["session_id"],
                "user_id": session["user_id"],
                "session_number": session["session_number"],
                "device_id": device,
                "view_number": number,
                "view_time": when,
                "url": prefix + path + ("?" + query if query else ""),
                "url_no_query_param": prefix + path,
                "scheme": "https",
                "prefix": prefix,
                "path": path,
                "query": query,
                "screen_name": screen,
                "view_duration_msec": duration,
                "page_interaction_time_msec": rng.randint(0, duration),
                # Quarters and eighths are exact in Float32 and print short.
                "scroll_rate": (None if is_app or j % 17 == 3 or rng.random() < 0.08
                                else rng.randint(0, 400) / 4),
                "frustration_score": (None if j % 5 == 2 or rng.random() < 0.25
                                      else rng.randint(0, 800) / 8),
                "is_first": 1 if number == 1 else 0,
                "is_last": 1 if number == n else 0,
                "window_height": window_h,
                "window_width": screen_w,
                "document_width": screen_w,
                "document_height": rng.randint(window_h, 12_000),
                "dom_interactive_after_msec": None if no_timing else rng.randint(80, 4_000),
                "fully_loaded": None if no_timing else rng.randint(500, 15_000),
                "start_render": None if no_timing else rng.randint(50, 3_000),
                "rage_click_all_targets_ind": 1 if rng.random() < 0.03 else 0,
                "multiple_button_interaction_ind": 1 if rng.random() < 0.05 else 0,
            }
            self.errors(rng, row, j, when, duration)
            out.append(row)
        return out

    def errors(self, rng: random.Random, row: Row, j: int, when: datetime,
               duration: int) -> None:
        errors: list[tuple[Any, ...]] = []
        if j % 10 == 7 or rng.random() < 0.06:
            for k in range(rng.randint(1, 3)):
                errors.append((
                    vocab.ERROR_TYPES[(j + k) % len(vocab.ERROR_TYPES)],
                    rng.choice(vocab.ERROR_MESSAGES),
                    rng.choice(vocab.ERROR_FILES),
                    when + timedelta(seconds=rng.randrange(max(1, duration // 1000))),
                    rng.randint(1, 20_000),
                    rng.randint(1, 300),
                ))
            errors.sort(key=lambda e: e[3])
        types = {e[0] for e in errors}
        row["any_js_error_ind"] = 1 if "js" in types else 0
        row["any_api_error_ind"] = 1 if "api" in types else 0
        row["api_error_after_click_ind"] = 1 if "api" in types and j % 2 == 0 else 0
        row["errors.error_type"] = [e[0] for e in errors]
        row["errors.message"] = [e[1] for e in errors]
        row["errors.filename"] = [e[2] for e in errors]
        row["errors.error_time"] = [e[3] for e in errors]
        row["errors.line_number"] = [e[4] for e in errors]
        row["errors.col_number"] = [e[5] for e in errors]


def _apply_revision(gen: _DayGenerator, sessions: list[_Session], revision: int) -> list[_Session]:
    """A re-run's view of the day: some values differ, a few sessions vanish or appear."""
    rng = random.Random(derive_seed("revision", gen.seed, gen.day.toordinal(), revision))
    kept: list[_Session] = []
    for index, session in enumerate(sessions):
        if index > 0 and rng.random() < 0.03:
            continue
        if index == 0 or rng.random() < 0.25:
            row = session.row
            row["session_duration_msec"] += rng.randint(1, 5_000)
            row["city"] = rng.choice(rng.choice(vocab.GEOGRAPHY)[2])
            for view in session.views:
                view["frustration_score"] = rng.randint(0, 800) / 8
                view["page_interaction_time_msec"] = rng.randint(0, view["view_duration_msec"])
        kept.append(session)
    base = len(sessions)
    for extra in range(max(1, base // 50)):
        start = gen.midnight + timedelta(seconds=rng.randrange(_LATEST_START))
        kept.append(gen.session(rng, base + extra, start))
    kept.sort(key=lambda s: s.row["session_time"])
    return kept


# Two days: a run's day and the next; a day of 20 000 sessions takes ~250 MB as dicts.
@lru_cache(maxsize=2)
def generate_day(seed: int, day: date, revision: int, sessions_per_day: int,
                 project_id: int) -> DayData:
    """The rows of one UTC day at one revision (cached: the same call returns the same object)."""
    gen = _DayGenerator(seed, day, sessions_per_day, project_id)
    rng = random.Random(derive_seed("day", seed, day.toordinal()))
    spread = sessions_per_day // 10
    count = max(1, sessions_per_day + rng.randint(-spread, spread))
    starts = sorted(rng.randrange(_LATEST_START) for _ in range(count))
    sessions = [gen.session(rng, i, gen.midnight + timedelta(seconds=offset))
                for i, offset in enumerate(starts)]
    if revision > 0:
        sessions = _apply_revision(gen, sessions, revision)
    return DayData(
        day=day,
        revision=revision,
        sessions=tuple(s.row for s in sessions),
        views=tuple(v for s in sessions for v in s.views),
    )


__all__ = ["HIGH_BIT", "DayData", "Row", "generate_day"]
