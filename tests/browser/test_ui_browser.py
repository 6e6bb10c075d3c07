"""The chat app in a real headless Chromium: load, ask, watch the steps, see a figure,
change settings, bad input, two sessions, Stop. Uses the tiny-model stand-in assistant
(see conftest.py); screenshots land in artifacts/browser/."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from conftest import wait_text  # tests/browser/conftest.py

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"

pytestmark = pytest.mark.browser

DURATION = re.compile(r"done\s*\(\s*\d+(\.\d+)?\s*m?s\s*\)")


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def chat_text(page) -> str:
    return page.locator("#gn-chat").inner_text()


def ask(page, text: str) -> None:
    page.locator("#gn-question textarea").fill(text)
    page.locator("#gn-ask").click()


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#gn-question textarea")
    wait_text(page, "#gn-thread", r"ui-[0-9a-f]{12}")  # the session got its own thread id


def test_page_loads(page, tiny_app):
    open_page(page, tiny_app)
    assert "gnothi" in page.title().lower()
    for sel in ("#gn-chat", "#gn-ask", "#gn-stop", "#gn-what", "#gn-attach", "#gn-new"):
        assert page.locator(sel).is_visible(), sel
    assert page.get_by_text("Which layers know whether a statement is true?").first.is_visible()  # examples
    for tab in ("Answer JSON", "Top contexts", "Conversations", "Settings"):
        assert page.get_by_role("tab", name=tab).is_visible()
    shot(page, "01-loaded")


def test_ask_shows_steps_figure_tokens_and_json(page, tiny_app):
    open_page(page, tiny_app)
    ask(page, "what does the cat see ?")
    # the tool step appears as its own collapsible message and finishes with a duration
    wait_text(page, "#gn-chat", r"Tool: neuron_activations")
    txt = wait_text(page, "#gn-chat", r"peaks at -?\d")
    assert "Plan: 1 step" in txt
    assert DURATION.search(txt), txt
    # the figures come inline as images, the top contexts as highlighted tokens
    page.wait_for_selector("#gn-chat img")
    imgs = page.locator("#gn-chat img")
    assert imgs.count() >= 2  # heatmap + histogram
    box = imgs.first.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 60
    page.wait_for_function("() => document.querySelectorAll('#gn-chat .gn-tok').length >= 3")
    shot(page, "02-answer")
    # the JSON of the answer, copyable
    page.get_by_role("tab", name="Answer JSON").click()
    js = wait_text(page, "#gn-json", r"what does the cat see")
    assert '"results"' in js and "max_activation" in js
    assert page.locator("#gn-json button").count() >= 1  # copy / download buttons
    # the same contexts as gr.HighlightedText
    page.get_by_role("tab", name="Top contexts").click()
    wait_text(page, "#gn-highlights", r"cat")
    shot(page, "03-top-contexts")


def test_settings_bad_values_show_messages_and_app_keeps_running(page, tiny_app, tmp_path):
    open_page(page, tiny_app)
    page.get_by_role("tab", name="Settings").click()
    # LLM endpoint nobody listens on
    fill(page, "gn-llm-url", "http://127.0.0.1:9/v1")
    page.locator("#gn-llm-test").click()
    msg = wait_text(page, "#gn-llm-status", r"Could not reach")
    assert "What to do" in msg
    # a model folder that does not exist
    page.get_by_label("local folder").check()
    fill(page, "gn-model-value", str(tmp_path / "no-such-model"))
    page.locator("#gn-load-model").click()
    wait_text(page, "#gn-notice", r"does not exist")
    # an SAE folder holding only a pickle
    sae = tmp_path / "sae"
    sae.mkdir()
    (sae / "sae_weights.pt").write_bytes(pickle.dumps({"W": 1}))
    page.locator("#gn-settings-tab").get_by_text("SAE folder").first.click()
    fill(page, "gn-sae-dir", str(sae))
    page.locator("#gn-sae-use").click()
    wait_text(page, "#gn-sae-status", r"pickle")
    # an SAE made for another model (wrong width) is refused; one that fits is accepted
    from gnothi.tools.sae import SAE, sae_config, save_sae

    (sae / "sae_weights.pt").unlink()
    save_sae(SAE(sae_config(576, 64, "blocks.1.hook_resid_post", "other-model", k=8)), sae)
    page.locator("#gn-sae-use").click()
    wait_text(page, "#gn-sae-status", r"size 576.*size 32|trained on another model")
    good = tmp_path / "sae-good"
    save_sae(SAE(sae_config(32, 64, "blocks.1.hook_resid_post", "tiny-llama", k=8)), good)
    fill(page, "gn-sae-dir", str(good))
    page.locator("#gn-sae-use").click()
    wait_text(page, "#gn-sae-status", r"SAE in use for this session.*d_sae 64")
    shot(page, "04-settings")
    # the app still answers
    ask(page, "the dog runs")
    wait_text(page, "#gn-chat", r"peaks at -?\d")


def test_huge_paste_and_pickle_upload_are_refused(page, tiny_app, tmp_path):
    from gnothi.ui.app import MAX_QUESTION_CHARS

    open_page(page, tiny_app)
    ask(page, "the cat " * (MAX_QUESTION_CHARS // 8 + 50))
    wait_text(page, "#gn-notice", r"characters long; the limit is")
    assert "Tool:" not in chat_text(page)  # nothing ran
    bad = tmp_path / "weights.pkl"
    bad.write_bytes(pickle.dumps({"a": 1}))
    with page.expect_file_chooser() as fc:
        page.locator("#gn-attach").click()
    fc.value.set_files(str(bad))
    wait_text(page, "#gn-notice", r"pickle file")
    # disguised as text: caught by its bytes
    sneaky = tmp_path / "notes.txt"
    sneaky.write_bytes(pickle.dumps(["x"]))
    with page.expect_file_chooser() as fc:
        page.locator("#gn-attach").click()
    fc.value.set_files(str(sneaky))
    wait_text(page, "#gn-notice", r"notes\.txt is a pickle")
    # a real text file is attached to the question
    good = tmp_path / "sentence.txt"
    good.write_text("the king and the queen")
    page.locator("#gn-question textarea").fill("")
    with page.expect_file_chooser() as fc:
        page.locator("#gn-attach").click()
    fc.value.set_files(str(good))
    wait_text(page, "#gn-notice", r"Attached sentence\.txt")
    assert "the king and the queen" in page.locator("#gn-question textarea").input_value()
    shot(page, "05-bad-input")
    page.locator("#gn-ask").click()
    wait_text(page, "#gn-chat", r"peaks at -?\d")


def test_two_sessions_keep_separate_conversations(chromium, tiny_app):
    a = chromium.new_context(viewport={"width": 1400, "height": 1000})
    b = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        pa, pb = a.new_page(), b.new_page()
        open_page(pa, tiny_app)
        open_page(pb, tiny_app)
        ta = pa.locator("#gn-thread").inner_text()
        tb = pb.locator("#gn-thread").inner_text()
        assert re.search(r"ui-[0-9a-f]{12}", ta).group() != re.search(r"ui-[0-9a-f]{12}", tb).group()
        ask(pa, "the red car")
        ask(pb, "the blue bird")
        wait_text(pa, "#gn-chat", r"peaks at")
        wait_text(pb, "#gn-chat", r"peaks at")
        ca, cb = chat_text(pa), chat_text(pb)
        assert "the red car" in ca and "the blue bird" not in ca
        assert "the blue bird" in cb and "the red car" not in cb
        pb.screenshot(path=str(ARTIFACTS / "06-second-session.png"), full_page=True)
    finally:
        a.close()
        b.close()


def test_stop_cancels_a_long_turn_and_the_next_question_works(page, tiny_app):
    open_page(page, tiny_app)
    ask(page, "slow : the cat and the dog")
    wait_text(page, "#gn-chat", r"Plan: 3 steps")
    wait_text(page, "#gn-chat", r"running")  # a pending step, with its spinner
    page.locator("#gn-stop").click()
    wait_text(page, "#gn-notice", r"Stopping after the current step")  # at once
    txt = wait_text(page, "#gn-chat", r"Stopped\.")
    assert "running" not in txt  # no step is left pending
    assert txt.count("peaks at") < 3  # it did not run to the end
    shot(page, "07-stopped")
    ask(page, "the sun")
    wait_text(page, "#gn-chat", r"Neuron 0\.3 peaks at -?\d[^\n]*\n?[^\n]*", timeout=30_000)
    wait_text(page, "#gn-notice", r"^$")


def test_conversations_list_and_reopen(page, tiny_app):
    open_page(page, tiny_app)
    ask(page, "the moon and the stars")
    wait_text(page, "#gn-thread", r"1 answer")  # the turn has finished and is stored
    tid = re.search(r"ui-[0-9a-f]{12}", page.locator("#gn-thread").inner_text()).group()
    page.locator("#gn-new").click()
    page.wait_for_function("() => !document.querySelector('#gn-chat').innerText.includes('the moon')")
    page.get_by_role("tab", name="Conversations").click()
    page.get_by_role("button", name="Refresh").first.click()
    wait_text(page, "#gn-threads-status", r"[1-9]\d* stored conversation")
    page.locator("#gn-threads input").click()
    page.get_by_role("option", name=re.compile(tid)).click()
    page.locator("#gn-open-thread").click()
    wait_text(page, "#gn-chat", r"the moon and the stars")
    wait_text(page, "#gn-thread", tid)
    shot(page, "08-reopened")
