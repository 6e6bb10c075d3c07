"""The chat as a person uses it, in headless Chromium, with the real Assistant on the tiny
model: Enter sends and Shift+Enter makes a new line; a question that needs the activation
store offers a button that builds it and asks again; the reply opens with a direct answer,
then a table of the numbers beside their controls; the figures beside the chat are
interactive and large enough to read (their rendered size is checked); a follow-up button
asks its question; a missing SAE is trained and indexed from a button in the reply; the SAE
chosen in Settings is the one that answers feature questions.
Screenshots land in artifacts/browser/ (30-*)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import free_port, open_app, wait_text  # tests/browser/conftest.py

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
MIN_FIGURE_PX = (450, 300)  # width, height of a readable figure


@pytest.fixture(scope="module")
def chat_app(tmp_path_factory):
    """The app with the real offline Assistant on the tiny model; stores and conversations in a temporary cache."""
    import os

    from gnothi.tools.testing import tiny_handle
    from gnothi.ui.app import build_app, launch

    cache = tmp_path_factory.mktemp("gnothi-cache")
    old = os.environ.get("GNOTHI_CACHE_DIR")
    os.environ["GNOTHI_CACHE_DIR"] = str(cache)
    demo = build_app(model=tiny_handle(), db_path=str(cache / "conversations.sqlite"), preload=True)
    url = launch(demo, port=free_port(), block=False, quiet=True)
    yield url
    demo.close()
    if old is None:
        os.environ.pop("GNOTHI_CACHE_DIR", None)
    else:
        os.environ["GNOTHI_CACHE_DIR"] = old


def user_messages(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('#gn-chat .user, #gn-chat [data-testid=user]')].map(e => e.innerText.trim())")


def wait_idle(page, timeout: float = 180_000) -> None:
    """Until the turn in progress is over (the Ask button's turn has ended and no step is pending)."""
    page.wait_for_function("() => !document.querySelector('#gn-chat .pending') && !document.querySelector('#gn-chat [aria-busy=true]')",
                           timeout=timeout)
    page.wait_for_timeout(1500)


def shot_reply(page, name: str) -> None:
    """A screenshot with the last reply's first lines in view."""
    page.evaluate("""() => { const bots = document.querySelectorAll('#gn-chat .bot, #gn-chat [data-testid=bot]');
                            const last = [...bots].reverse().find(b => b.innerText.includes('Measured')) || bots[bots.length - 1];
                            if (last) last.scrollIntoView({block: 'start'}); }""")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def test_a_person_chats_with_the_real_assistant(chromium, chat_app, tmp_path):
    ctx, page = open_app(chromium, chat_app)
    try:
        wait_text(page, "#gn-thread", r"ui-[0-9a-f]{12}")
        box = page.locator("#gn-question textarea")
        # Shift+Enter makes a new line and sends nothing
        box.fill("what does")
        box.press("Shift+Enter")
        box.type("L1 N5 do?")
        assert box.input_value() == "what does\nL1 N5 do?"
        assert "L1 N5" not in page.locator("#gn-chat").inner_text()
        # Enter sends: the store is missing, and the reply offers to build it
        box.fill("what does L1 N5 do?")
        box.press("Enter")
        wait_text(page, "#gn-chat", r"could not run: No activation store")
        wait_idle(page)
        assert box.input_value() == ""  # sent, so the box is empty again
        fix = page.locator("#gn-fix")
        fix.wait_for(state="visible")
        assert "Build the activation store" in fix.inner_text()
        shot_reply(page, "30-chat-store-missing")
        # the button builds the store, then asks the question again: a measured answer this time
        fix.click()
        page.wait_for_function("() => document.querySelectorAll('#gn-chat table').length >= 1", timeout=240_000)
        wait_idle(page)
        chat = page.locator("#gn-chat").inner_text()
        assert re.search(r"Neuron 1\.5 (?:responds to|fires)", chat), chat[-2000:]  # the direct answer
        assert "Explanation score" in chat and "for a shuffled explanation" in chat  # the number beside its control
        assert "Evidence" in chat and "How sure" in chat
        assert "None" not in chat.split("What does")[-1] and "kind:" not in chat
        assert not fix.is_visible()
        # the figures beside the chat: interactive plots, each large enough to read
        page.get_by_role("tab", name="Figures").click()
        plot = page.locator("#gn-plot-0")
        plot.wait_for(state="visible")
        page.wait_for_function("() => document.querySelector('#gn-plot-0 .js-plotly-plot, #gn-plot-0 .plotly') !== null", timeout=30_000)
        w, h = page.evaluate("() => { const r = document.querySelector('#gn-plot-0').getBoundingClientRect(); return [r.width, r.height]; }")
        assert w >= MIN_FIGURE_PX[0] and h >= MIN_FIGURE_PX[1], (w, h)
        assert page.locator("#gn-plot-0 .hoverlayer").count() >= 1  # plotly's hover layer: values on hover
        shot_reply(page, "31-chat-neuron-answer")
        # a follow-up button asks its own question
        sug = page.locator("#gn-sug-0")
        sug.wait_for(state="visible")
        text = sug.inner_text().strip()
        assert text
        sug.click()
        wait_text(page, "#gn-chat", re.escape(text))
        wait_idle(page)
        assert user_messages(page)[-1] == text
        shot_reply(page, "32-chat-follow-up")
        # no SAE yet: the button trains and indexes one, then asks again
        box.fill("find SAE features about dogs")
        box.press("Enter")
        wait_text(page, "#gn-chat", r"could not run: No SAE for model")
        wait_idle(page)
        fix.wait_for(state="visible")
        assert "Train and index an SAE" in fix.inner_text()
        n_tables = page.locator("#gn-chat table").count()
        fix.click()
        page.wait_for_function(f"() => document.querySelectorAll('#gn-chat table').length > {n_tables}", timeout=300_000)
        wait_idle(page)
        reply = page.locator("#gn-chat").inner_text().split("find SAE features about dogs")[-1]
        assert re.search(r"Feature \d+ matches best", reply) and "cosine similarity to your topic" in reply, reply[-1500:]
        shot_reply(page, "33-chat-sae-trained")
        # the SAE chosen in Settings answers the feature questions of this session
        from gnothi.tools.sae import SAE, sae_config, save_sae
        from gnothi.tools.testing import tiny_handle

        folder = tmp_path / "sae-chosen"
        th = tiny_handle()
        save_sae(SAE(sae_config(th.d_model, 48, "blocks.1.hook_resid_post", th.name, k=8)), folder)
        page.get_by_role("tab", name="Settings").click()
        page.locator("#gn-settings-tab").get_by_text("SAE folder").first.click()
        page.locator("#gn-sae-dir textarea, #gn-sae-dir input").first.fill(str(folder))
        page.locator("#gn-sae-use").click()
        wait_text(page, "#gn-sae-status", r"SAE in use for this session")
        box.fill("which features fire on 'the dog runs home'?")
        box.press("Enter")
        wait_text(page, "#gn-chat", r"which features fire on 'the dog runs home'\?[\s\S]*SAE feature search")
        wait_idle(page)
        reply = page.locator("#gn-chat").inner_text().split("which features fire on")[-1]
        assert re.search(r"SAE that answered\s+sae-chosen", reply), reply
        shot_reply(page, "34-chat-sae-features")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "FAILED-chat.png"), full_page=True)
        print("chat at failure:", page.locator("#gn-chat").inner_text()[-3000:])
        raise
    finally:
        ctx.close()
