"""The contract's codes (section 8), typed in here, not read from csload's schemas/codes.toml:
what the tests check csload's decoded labels against."""

from __future__ import annotations

DEVICES = {-1: "all", 0: "unknown", 1: "desktop", 2: "mobile web", 3: "tablet web",
           4: "mobile app", 5: "tablet app"}
APP_EVENT_TYPES = {0: "start", 1: "show", 2: "hide"}
