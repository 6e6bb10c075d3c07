"""The chat on the second bundled model, in headless Chromium: load Gemma 3 270M from
Settings > Model (for this session only: a second session keeps the default model), then
ask a patching and an attention question; both are measured on Gemma (its 18 layers, its
tokens). Screenshots land in artifacts/browser/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import open_app, wait_text  # tests/browser/conftest.py

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"


@pytest.fixture(scope="module")
def app_url(bundled, gemma, tmp_path_factory):
    """The app started on SmolLM2; Gemma is already converted in the cache (the ``gemma``
    fixture), so loading it from Settings takes seconds."""
    from gnothi.ui.app import build_app, launch

    from conftest import free_port  # tests/browser/conftest.py

    db = tmp_path_factory.mktemp("gemma-ui") / "conversations.sqlite"
    demo = build_app(model=bundled, db_path=str(db), preload=True)
    url = launch(demo, port=free_port(), block=False, quiet=True)
    yield url, demo.gnothi_backend
    demo.close()


def test_gemma_from_settings_then_patching_and_attention(chromium, app_url):
    app_url, backend = app_url
    ctx, page = open_app(chromium, app_url)
    try:
        page.get_by_role("tab", name="Settings").click()
        page.locator("#gn-model-value textarea, #gn-model-value input").first.fill("gemma-3-270m")
        page.locator("#gn-load-model").click()
        wait_text(page, "#gn-model-status", r"gemma-3-270m.*Gemma3ForCausalLM.*18 layers", timeout=180_000)
        assert backend.handle("gemma-3-270m").name == "gemma-3-270m"
        # only this session: another session still has the app's default model
        other_ctx, other = open_app(chromium, app_url)
        try:
            other.get_by_role("tab", name="Settings").click()
            wait_text(other, "#gn-model-status", r"smollm2-135m-instruct")
            assert "gemma" not in other.locator("#gn-model-status").inner_text()
        finally:
            other_ctx.close()
        assert backend.handle().name == "smollm2-135m-instruct"
        page.locator("#gn-question textarea").fill("Why does the model answer ' Paris' after 'The capital of France is'?")
        page.locator("#gn-ask").click()
        txt = wait_text(page, "#gn-chat", r"Tool: activation_patching\s*done", timeout=180_000)
        page.get_by_role("tab", name="Answer JSON").click()
        wait_text(page, "#gn-json", r'"activation_patching"', timeout=120_000)  # the finished answer
        txt = page.locator("#gn-chat").inner_text()
        # measured on Gemma's 18 layers (SmolLM2's hand-off is at layer 24 of 30)
        layers = [int(x) for x in re.findall(r"\blayer (\d+)", txt)]
        assert layers and max(layers) < 18, txt
        page.screenshot(path=str(ARTIFACTS / "20-gemma-patching.png"), full_page=True)
        page.locator("#gn-question textarea").fill("Show me the attention pattern of head 2 in layer 5 for 'The cat sat on the mat'")
        page.locator("#gn-ask").click()
        txt = wait_text(page, "#gn-chat", r"head 5\.2: last token attends", timeout=120_000)
        assert "<bos>" in txt  # Gemma's own BOS token, not SmolLM2's
        page.screenshot(path=str(ARTIFACTS / "21-gemma-attention.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "FAILED-gemma-ui.png"), full_page=True)
        raise
    finally:
        ctx.close()
