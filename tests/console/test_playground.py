"""The playground: an answer streamed through the gateway, stopped on demand, with usage; the Code tab's
snippets never hold the token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import World


def playground(page: Page, world: World, model: str = "gpt-4o") -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens["alice"])
    page.goto(f"{world.url}/console/#/playground?model={model}")
    expect(page.get_by_test_id("playground-model")).to_have_value(model)


@pytest.fixture
def slow_stream(world: World) -> Iterator[None]:
    """The emulator sends a chunk every 0.1 s during the test, so a long answer takes seconds."""
    before = world.emulator.chunk_interval
    world.emulator.chunk_interval = 0.1
    yield
    world.emulator.chunk_interval = before


def box(page: Page, testid: str) -> dict[str, float]:
    found = page.get_by_test_id(testid).bounding_box()
    assert found is not None
    return found


def test_an_answer_streams_in_with_usage_and_nothing_moves(page: Page, world: World) -> None:
    playground(page, world)
    said = " ".join(f"word{i}" for i in range(300))         # more lines than the answer's box holds
    page.get_by_test_id("playground-input").fill(said)
    output_before, usage_before = box(page, "playground-output"), box(page, "playground-usage")
    page.get_by_test_id("playground-send").click()

    output = page.get_by_test_id("playground-output")
    expect(output).to_have_text(f"Hello from the emulator. You said: {said}")
    expect(output).to_have_attribute("data-state", "done")
    usage = page.get_by_test_id("playground-usage")
    expect(usage).to_contain_text("first token")
    expect(usage).to_contain_text("prompt +")
    assert box(page, "playground-output") == output_before      # the streamed text moved nothing
    assert box(page, "playground-usage") == usage_before
    sent = world.emulator.requests[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_stop_ends_the_stream(page: Page, world: World, slow_stream: None) -> None:
    playground(page, world)
    page.get_by_test_id("playground-input").fill(" ".join(f"word{i}" for i in range(80)))
    page.get_by_test_id("playground-send").click()
    output = page.get_by_test_id("playground-output")
    expect(output).to_contain_text("Hello from the emulator")
    page.get_by_test_id("playground-stop").click()

    expect(output).to_have_attribute("data-state", "stopped")
    expect(page.get_by_test_id("playground-usage")).to_contain_text("stopped")
    stopped_at = output.text_content()
    page.wait_for_timeout(500)
    assert output.text_content() == stopped_at and "word79" not in (stopped_at or "")
    expect(page.get_by_test_id("playground-stop")).to_be_disabled()
    expect(page.get_by_test_id("playground-send")).to_be_enabled()


def test_the_code_tab_shows_the_request_with_the_token_as_a_placeholder(page: Page, world: World) -> None:
    playground(page, world, "embed")
    page.get_by_test_id("playground-input").fill("it's true")
    page.get_by_test_id("playground-tab-code").click()

    code = page.get_by_test_id("playground-code")
    expect(code).to_be_visible()
    text = code.text_content() or ""
    assert "$TOKEN" in text and world.tokens["alice"] not in text
    assert f"{world.url}/v1/chat/completions" in text and '"embed"' in text
    assert "it's true" in text and "'\\''" in text                  # shell-quoted for curl
    assert "True" in text and "stream_options" in text               # a Python literal, not JSON
    assert world.tokens["alice"] not in page.content()
    assert page.context.cookies() == []
