"""The chat app with the real Assistant on the bundled model (offline planner, no LLM), in
headless Chromium: "What can you do?", a question that needs the activation store, building
a small store from Settings with its progress bar, then the neuron question again with its
figures and highlighted top contexts, then one question each for patching, probing,
attention, the head finder, bias, steering, methods and hallucination (direct answer, numbers beside
their controls, a readable figure, follow-ups).
Screenshots land in artifacts/browser/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import open_app, wait_text  # tests/browser/conftest.py

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
# (question, its direct answer, a number beside its control) for the tools that need no first-use training
TOOL_QUESTIONS = [
    ("Why does the model answer ' Paris' after 'The capital of France is'?", r"The answer ' Paris' \(against '[^']+'\) is carried most by",
     r"Logit difference .*clean prompt\s+-?\d+(?:\.\d+)?\s+-?\d+(?:\.\d+)? on the corrupted prompt"),
    ("Which layers know whether a statement is true?", r"Layer \d+ encodes it best", r"with shuffled labels \(control task\)"),
    ("Show the attention pattern of head 3 in layer 5 for 'The cat sat on the mat because it was tired'",
     r"Head 5\.3: the last token attends most to", r"on the first token"),
    ("Are there induction heads?", r"Yes, \d+ heads clearly show induction behaviour; the strongest is \d+\.\d+",
     r"induction score\s+0\.\d+\s+control 0\.\d+"),
    ("Is the model biased about nurses and engineers?", r"across WinoBias's 40 occupations, the male-dominated ones",
     r"neutral pair red/blue: -?\d"),
    ("Make the model talk more about France", r"(?:Yes|Only slightly): at strength|Not within the cost limit", r"random direction \d"),
    # a method question is answered from its card (a table of the cards retrieval matched, no figure)
    ("How do I read a normalized effect of 0.8?", r"From the card \*?Activation patching\*?, on reading a value of 0\.80", r"retrieval similarity"),
    # first use trains the detector (a notice says so, about 4 minutes on two cores)
    ("Who wrote Hamlet? Is the model likely to hallucinate on that?", r"For the answer .+?, the model (?:is probably|may be)",
     r"Detector's AUROC on held-out questions\s+0\.\d+\s+0\.5 = chance"),
]
NO_FIGURE = {"How do I read a normalized effect of 0.8?"}  # answered from a method card: a table, no plot
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
        page.get_by_role("tab", name="Answer JSON").click()
        js = page.locator("#gn-json").inner_text()
        assert '"neuron_explainer"' in js and '"ok": true' in js
        # one question per tool: a direct answer, the numbers beside their controls, a readable figure, follow-ups
        for i, (q, answer_re, control_re) in enumerate(TOOL_QUESTIONS, start=12):
            n_tables = page.locator("#gn-chat table").count()
            page.locator("#gn-question textarea").fill(q)
            page.locator("#gn-question textarea").press("Enter")
            page.wait_for_function(f"() => document.querySelectorAll('#gn-chat table').length > {n_tables}", timeout=900_000)
            page.wait_for_timeout(2500)
            reply = page.locator("#gn-chat").inner_text().split(q)[-1]
            assert re.search(answer_re, reply), reply[:1500]
            assert re.search(control_re, reply), reply[:1500]
            assert "Try next" in reply and page.locator("#gn-sug-0").is_visible()
            if q in NO_FIGURE:
                assert "arXiv:2309.16042" in reply  # the card's papers are cited
                continue
            page.get_by_role("tab", name="Figures").click()
            page.locator("#gn-plot-0").wait_for(state="visible")
            w, h = page.evaluate("() => { const r = document.querySelector('#gn-plot-0').getBoundingClientRect(); return [r.width, r.height]; }")
            assert w >= 450 and h >= 300, (q, w, h)
            page.evaluate("""() => { const bots = [...document.querySelectorAll('#gn-chat .bot, #gn-chat [data-testid=bot]')];
                                     const last = bots.reverse().find(b => b.querySelector('table')); if (last) last.scrollIntoView({block: 'start'}); }""")
            page.screenshot(path=str(ARTIFACTS / f"{i}-real-{q.split()[0].lower()}-answer.png"), full_page=False)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "FAILED-real-assistant.png"), full_page=True)
        raise
    finally:
        ctx.close()
