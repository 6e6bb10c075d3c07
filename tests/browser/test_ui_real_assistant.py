"""The chat app with the real Assistant on the bundled model (offline planner, no LLM), in
headless Chromium: "What can you do?", a question that needs the activation store, building
a small store from Settings with its progress bar, then the neuron question again with its
figures and highlighted top contexts. Screenshots land in artifacts/browser/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import open_app, wait_text  # tests/browser/conftest.py

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
STORE_TOKENS = 4096  # 64 windows: enough records for top contexts, a fraction of the default build


@pytest.fixture(scope="module")
def real_app(bundled, tmp_path_factory):
    """The app on the bundled model; stores and conversations in a temporary cache dir."""
    import os

    from gnothi.ui.app import build_app, launch

    from conftest import free_port  # tests/browser/conftest.py (first on sys.path for this folder)

    cache = tmp_path_factory.mktemp("gnothi-cache")
    old = os.environ.get("GNOTHI_CACHE_DIR")
    os.environ["GNOTHI_CACHE_DIR"] = str(cache)  # the handle is already loaded; stores go here
    demo = build_app(model=bundled, db_path=str(cache / "conversations.sqlite"), preload=True)
    url = launch(demo, port=free_port(), block=False, quiet=True)
    yield url
    demo.close()
    import shutil

    shutil.rmtree(cache, ignore_errors=True)  # the store is a few hundred MB
    if old is None:
        os.environ.pop("GNOTHI_CACHE_DIR", None)
    else:
        os.environ["GNOTHI_CACHE_DIR"] = old


def test_real_assistant_in_the_browser(chromium, real_app):
    ctx, page = open_app(chromium, real_app)
    try:
        wait_text(page, "#gn-thread", r"ui-[0-9a-f]{12}")
        # "What can you do?" is answered by the help tool, as a step of its own
        page.locator("#gn-what").click()
        txt = wait_text(page, "#gn-chat", r"Neuron explainer")  # the help answer lists every tool agent by its title
        assert re.search(r"Tool: help\s*done", txt), txt
        # a neuron question before any store: the failure says what to do, in the app
        page.locator("#gn-question textarea").fill("What does neuron 5.100 respond to?")
        page.locator("#gn-ask").click()
        txt = wait_text(page, "#gn-chat", r"Settings > Activation store > Build")
        assert "No activation store" in txt
        # build a small store from Settings, with its progress bar
        page.get_by_role("tab", name="Settings").click()
        wait_text(page, "#gn-store-status", r"No activation store")
        page.locator("#gn-store-tokens input").fill(str(STORE_TOKENS))
        page.locator("#gn-store-build").click()
        wait_text(page, "#gn-store-status", r"Building")
        wait_text(page, "#gn-store-status", rf"Activation store built: {STORE_TOKENS} tokens", timeout=240_000)
        assert page.locator("#gn-store-bar input[type=number]").input_value() == "100"
        page.screenshot(path=str(ARTIFACTS / "10-real-store-built.png"), full_page=True)
        # the neuron question again: a measured answer with figures and highlighted contexts
        page.locator("#gn-question textarea").fill("What does neuron 5.100 respond to?")
        page.locator("#gn-ask").click()
        page.wait_for_function(
            "() => document.querySelectorAll('#gn-chat img').length >= 1 && document.querySelectorAll('#gn-chat .gn-tok').length >= 5",
            timeout=120_000,
        )
        txt = page.locator("#gn-chat").inner_text()
        assert re.search(r"Tool: neuron_explainer\s*done\s*\(", txt), txt
        page.screenshot(path=str(ARTIFACTS / "11-real-neuron-answer.png"), full_page=True)
        js = page.locator("#gn-json").inner_text()
        assert '"neuron_explainer"' in js and '"ok": true' in js
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "FAILED-real-assistant.png"), full_page=True)
        raise
    finally:
        ctx.close()
