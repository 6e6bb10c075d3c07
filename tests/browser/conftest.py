"""Fixtures for the browser tests: headless Debian Chromium driven by Python Playwright.

The UI tests run the real app (``gnothi.ui.app.build_app``) on a free loopback port. Most
use :class:`TinyAssistant`, a stand-in for the orchestrator that measures real MLP
activations of the tiny test model (so every number and figure it shows was computed),
which keeps the UI tests to seconds; ``test_ui_real_assistant.py`` uses the real
Assistant on the bundled model. Screenshots go to ``artifacts/browser/``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GNOTHI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def open_app(chromium, url: str):
    """A fresh browser context on the app at ``url``, once its question box is there: (context, page)."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#gn-question textarea")
    return ctx, page


def wait_text(page, selector: str, pattern: str, timeout: float = 60_000) -> str:
    """Wait until the element's text matches ``pattern`` (regex); return the text."""
    page.wait_for_function(
        "([sel, pat]) => { const e = document.querySelector(sel); return e && new RegExp(pat, 'i').test(e.innerText); }",
        arg=[selector, pattern],
        timeout=timeout,
    )
    return page.locator(selector).inner_text()



# ----------------------------------------------------------------------------- a measuring stand-in


class TinyAssistant:
    """Stand-in for ``gnothi.agents.Assistant`` on the tiny model, with the same interface.

    ``stream`` plans one call per layer range asked for, runs each (the tiny model's MLP
    activations of neuron 3 over the question's tokens), and replies citing the measured
    maximum. A question containing "slow" sleeps 1.5 s per step (to test Stop).
    """

    def __init__(self, model=None, llm=None, db_path=None, sae=None):
        from gnothi.tools.testing import tiny_handle

        self.handle = model if (model is not None and not isinstance(model, str)) else tiny_handle()
        self.llm = llm
        self._threads: dict[str, list[dict]] = {}

    def stream(self, question: str, thread: str | None = None):
        import torch

        from gnothi.agents.types import Answer, Event, ToolCall
        from gnothi.tools.results import Figure, TokenSpan, ToolResult, provenance

        h = self.handle
        slow = "slow" in question.lower()
        n_steps = 3 if slow else 1
        calls = [ToolCall(tool="neuron_activations", args={"layer": i % h.n_layers, "neuron": 3}) for i in range(n_steps)]
        yield Event(type="planned", data={"plan": {"reformulated": question.strip(), "calls": [c.model_dump() for c in calls], "planner": "test"}})
        words = [w for w in question.lower().replace("?", " ?").split() if w][:20] or ["the"]
        text = " ".join(words)
        results = []
        for i, c in enumerate(calls):
            yield Event(type="tool_started", data={"index": i, "tool": c.tool, "args": c.args})
            t0 = time.time()
            if slow:
                time.sleep(1.5)
            names = [h.hook_name("mlp_post", l) for l in range(h.n_layers)]
            _, cache = h.run_with_cache(text, names)
            z = [cache[n][0, :, 3].tolist() for n in names]
            toks = h.str_tokens(text)
            acts = cache[names[c.args["layer"]]][0, :, 3]
            flat = torch.cat([cache[n][0].flatten() for n in names])
            counts, edges = torch.histogram(flat.float(), bins=12)
            mx = float(acts.max())
            r = ToolResult(
                tool=c.tool,
                summary=f"Neuron {c.args['layer']}.3 peaks at {mx:.3f} on {toks[int(acts.argmax())]!r}.",
                headline={"max_activation": mx, "n_tokens": len(toks)},
                spans=[TokenSpan(tokens=toks, values=acts.tolist(), note=f"layer {c.args['layer']}")],
                figures=[
                    Figure(kind="heatmap", title="Neuron 3 activation by layer and position", data={"z": z, "x": toks, "y": [f"L{l}" for l in range(h.n_layers)], "xlabel": "position", "ylabel": "layer"}),
                    Figure(kind="histogram", title="MLP activations (all neurons)", data={"edges": edges.tolist(), "counts": counts.tolist()}),
                ],
                provenance=provenance(h, hook="mlp_post"),
                timings={"total": time.time() - t0},
            )
            results.append(r)
            yield Event(type="tool_finished", data={"index": i, "tool": c.tool, "result": r.model_dump(mode="json")})
        reply = " ".join(r.summary for r in results)
        ans = Answer(question=question, reformulated=question.strip(), plan=calls, results=results, reply=reply, thread=thread or "", planner="test")
        self._threads.setdefault(thread or "default", []).append({"question": question, "answer": ans.model_dump(mode="json")})
        yield Event(type="reply", data={"answer": ans.model_dump(mode="json")})

    def ask(self, question, thread=None):
        from gnothi.agents.types import Answer

        last = None
        for ev in self.stream(question, thread):
            last = ev
        return Answer.model_validate(last.data["answer"])

    def threads(self):
        return list(self._threads)

    def history(self, thread):
        return self._threads.get(thread, [])


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def chromium():
    """A Playwright Chromium (Debian's binary), or skip with the reason."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver (or set GNOTHI_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Python Playwright is not installed: pip install playwright (no `playwright install` needed)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pw = sync_playwright().start()
    try:
        # Playwright gives each launch a fresh temporary profile (it refuses --user-data-dir here)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
    except Exception as e:  # pragma: no cover - depends on the machine
        pw.stop()
        pytest.skip(f"Chromium at {CHROMIUM} did not start under Playwright: {str(e).splitlines()[0]}")
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory):
    """The real app with the tiny-model stand-in assistant, on a free port: yields its URL."""
    from gnothi.tools.testing import tiny_handle
    from gnothi.ui.app import build_app, launch

    demo = build_app(model=tiny_handle(), assistant_factory=TinyAssistant)
    url = launch(demo, port=free_port(), block=False, quiet=True)
    yield url
    demo.close()


@pytest.fixture()
def page(chromium, request):
    """A fresh browser context (its own session) and page; screenshot on failure."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
