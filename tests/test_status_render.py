"""`status` for people: times as ISO-8601 UTC, with how far they are from now."""

from __future__ import annotations

import re

from shared.status import render

NOW = 1_796_400_000.0   # 2026-12-04T16:00:00Z


def test_token_expiry_and_the_timer_run_are_iso_times() -> None:
    report = {"ok": True, "time": NOW, "configuration": {"version": "3"}, "identity_providers": {},
              "accounts": {"aoai": {"auth": "managed-identity", "expires_on": NOW + 3300}},
              "last_timer_run": {"started_at": NOW - 90, "ok": True}}
    shown = render(report)
    assert re.search(r"^aoai .* 2026-12-04T16:55:00Z \(in 55 min\)", shown, flags=re.M), shown
    assert "last timer run: 2026-12-04T15:58:30Z (90 s ago), ok" in shown
