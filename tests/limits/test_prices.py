"""Prices: the configuration's from their date, else the built-in table matched by the model's names,
else none (and a budget refuses the model); costs in micro-USD, rounded up."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.config.model import Model, Price, Target
from shared.limits.prices import PriceBook, Rate

ROOT = Path(__file__).resolve().parents[2]


def at(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() + 3600


def model(name: str, *deployments: str) -> Model:
    return Model(name=name, targets=tuple(Target(account="a", deployment=d) for d in deployments))


PRICES = (Price(model="gpt-4o", input=3.0, output=12.0, cached_input=1.0, effective="2026-03-01"),
          Price(model="house", input=0.5, output=1.0))
MODELS = (model("gpt-4o", "gpt-4o-eu"), model("chat", "gpt-4o-mini-prod", "gpt-4o-mini"),
          model("mixed", "gpt-4o-mini", "gpt-4o"), model("house", "whatever"),
          model("mystery", "my-own-finetune"), model("embed", "text-embedding-3-small"))


@pytest.mark.parametrize(("name", "day", "expected"), [
    # the configuration's price, from its date on; before it, the built-in one
    ("gpt-4o", "2026-03-01", Rate(3.0, 12.0, 1.0)),
    ("gpt-4o", "2026-02-28", Rate(2.5, 10.0, 1.25)),
    ("house", "2020-01-01", Rate(0.5, 1.0, None)),
    # the built-in price by a deployment's name when the gateway's name says nothing
    ("chat", "2026-01-01", Rate(0.15, 0.6, 0.075)),
    # several names: each member the highest of them
    ("mixed", "2026-01-01", Rate(2.5, 10.0, 1.25)),
    # a model the configuration does not list, priced by its own name
    ("gpt-4.1", "2026-01-01", Rate(2.0, 8.0, 0.5)),
    # an embeddings model has no output price
    ("embed", "2026-01-01", Rate(0.02, 0.0, None)),
    # the library's own dated prices, a tiered price at its highest tier
    ("gpt-5.6-terra", "2026-07-01", Rate(5.0, 22.5, 0.5)),
    ("gpt-5.6-terra", "2026-08-01", Rate(4.0, 18.0, 0.4)),
    # nothing matches
    ("mystery", "2026-01-01", None),
])
def test_the_price_of_a_model(name: str, day: str, expected: Rate | None) -> None:
    assert PriceBook(PRICES, MODELS).rate(name, now=at(day)) == expected


@pytest.mark.parametrize(("rate", "prompt", "output", "cached", "micro_usd"), [
    (Rate(2.5, 10.0, 1.25), 1_000, 500, 0, 7_500),            # 1000 x 2.5 + 500 x 10
    (Rate(2.5, 10.0, 1.25), 1_000, 500, 400, 7_000),          # 600 x 2.5 + 400 x 1.25 + 500 x 10
    (Rate(2.5, 10.0, None), 1_000, 0, 400, 2_500),            # no cached price: the input price
    (Rate(2.5, 10.0, 1.25), 10, 0, 50, 13),                   # cached beyond the prompt: all cached
    (Rate(0.15, 0.6, 0.075), 1, 1, 0, 1),                     # 0.75 micro-USD rounds up
    (Rate(0.02, 0.0, None), 3, 0, 0, 1),                      # 0.06 rounds up: never under-charged
    (Rate(0.0, 0.0, None), 100, 100, 0, 0),
])
def test_cost_in_micro_usd(rate: Rate, prompt: int, output: int, cached: int, micro_usd: int) -> None:
    assert PriceBook.micro_usd(rate, prompt, output, cached) == micro_usd


def test_prices_need_no_network(tmp_path: Path) -> None:
    guard = ("import socket\n"
             "def _refuse(*a, **k):\n    raise OSError('network use refused by the test')\n"
             "socket.socket.connect = socket.getaddrinfo = socket.create_connection = _refuse\n")
    code = ("from shared.limits.prices import PriceBook\n"
            "print(PriceBook(()).rate('gpt-4o-mini', now=1767225600.0))")
    done = subprocess.run([sys.executable, "-c", guard + code], cwd=ROOT, text=True, capture_output=True,
                          env={**os.environ, "HOME": str(tmp_path)}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Rate(input=0.15, output=0.6, cached_input=0.075)"
