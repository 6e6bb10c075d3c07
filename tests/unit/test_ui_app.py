"""The chat app's logic without a browser: input checks, uploads, SAE folders, the LLM
connection test (against a real loopback HTTP server), and how a turn's events become
chat messages (pending -> done with duration, figures as PNG files, highlighted tokens)."""

from __future__ import annotations

import json
import pickle
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gnothi.agents.types import Answer, Event
from gnothi.tools.errors import InputError, LLMError, SAEError, UnsafeWeightsError
from gnothi.tools.results import Figure, TokenSpan, ToolResult
from gnothi.ui import app as ui


# ----------------------------------------------------------------------------- questions


def test_check_question_refuses_empty_and_huge_and_strips():
    with pytest.raises(InputError, match="empty"):
        ui.check_question("   \n")
    with pytest.raises(InputError, match="empty"):
        ui.check_question(None)
    with pytest.raises(InputError) as e:
        ui.check_question("x" * (ui.MAX_QUESTION_CHARS + 1))
    assert f"{ui.MAX_QUESTION_CHARS + 1:,} characters" in e.value.message and e.value.fix
    assert ui.check_question("  what does neuron 1.2 do?  ") == "what does neuron 1.2 do?"
    assert len(ui.check_question("y" * ui.MAX_QUESTION_CHARS)) == ui.MAX_QUESTION_CHARS


# ----------------------------------------------------------------------------- uploads


def test_read_attachment_refuses_pickles_by_name_and_by_bytes(tmp_path):
    import torch

    p = tmp_path / "w.pkl"
    p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        ui.read_attachment(p)
    disguised = tmp_path / "notes.txt"
    disguised.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(UnsafeWeightsError, match="notes.txt is a pickle"):
        ui.read_attachment(disguised)
    zipped = tmp_path / "model.txt"  # torch.save writes a zip holding data.pkl
    torch.save({"w": torch.zeros(2)}, zipped)
    with pytest.raises(UnsafeWeightsError):
        ui.read_attachment(zipped)


def test_read_attachment_other_refusals_and_text(tmp_path):
    st = tmp_path / "sae.safetensors"
    st.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(InputError, match="weights, not text"):
        ui.read_attachment(st)
    binary = tmp_path / "blob.dat"
    binary.write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(InputError, match="binary"):
        ui.read_attachment(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        ui.read_attachment(latin)
    big = tmp_path / "big.txt"
    big.write_text("a" * (ui.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(InputError, match="MB"):
        ui.read_attachment(big)
    ok = tmp_path / "ok.md"
    ok.write_text("The cat sat on the mat.\n")
    assert ui.read_attachment(ok) == "The cat sat on the mat.\n"
    with pytest.raises(InputError, match="Could not read"):
        ui.read_attachment(tmp_path / "missing.txt")


# ----------------------------------------------------------------------------- SAE folders


def test_check_sae_folder(tmp_path):
    import torch
    from safetensors.torch import save_file

    with pytest.raises(SAEError, match="No SAE folder"):
        ui.check_sae_folder("")
    with pytest.raises(SAEError, match="does not exist"):
        ui.check_sae_folder(str(tmp_path / "nope"))
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(SAEError, match="is a file"):
        ui.check_sae_folder(str(f))
    d = tmp_path / "sae"
    d.mkdir()
    (d / "sae_weights.pt").write_bytes(pickle.dumps({}))
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        ui.check_sae_folder(str(d))
    save_file({"W_enc": torch.zeros(4, 8)}, str(d / "sae_weights.safetensors"))
    with pytest.raises(SAEError, match="no cfg.json"):
        ui.check_sae_folder(str(d))
    (d / "cfg.json").write_text("{not json")
    with pytest.raises(SAEError, match="not valid JSON"):
        ui.check_sae_folder(str(d))
    (d / "cfg.json").write_text(json.dumps({"d_in": 4, "d_sae": 8, "hook_name": "blocks.0.hook_resid_post", "architecture": "topk"}))
    info = ui.check_sae_folder(str(d))
    assert info["d_sae"] == 8 and info["hook_name"] == "blocks.0.hook_resid_post" and info["folder"] == str(d)


# ----------------------------------------------------------------------------- LLM endpoint


class _OpenAIish(BaseHTTPRequestHandler):
    """Just enough of the OpenAI HTTP API: /v1/models and /v1/chat/completions."""

    def log_message(self, *a):
        pass

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/v1/models"):
            self._send(200, {"object": "list", "data": [{"id": "echo-1", "object": "model", "created": 0, "owned_by": "t"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        req = json.loads(self.rfile.read(n) or b"{}")
        if req.get("model") != "echo-1":
            self._send(404, {"error": {"message": f"model {req.get('model')} not found", "type": "invalid_request_error"}})
            return
        last = req["messages"][-1]["content"]
        self._send(200, {
            "id": "c1", "object": "chat.completion", "created": 0, "model": "echo-1",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": last.split()[-1]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })


@pytest.fixture()
def llm_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIish)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_llm_connection_ok_wrong_model_and_unreachable(llm_server):
    r = ui.check_llm_connection(llm_server)
    assert r["ok"] and r["models"] == ["echo-1"] and r["model"] == "echo-1" and r["sample"] == "OK."
    with pytest.raises(LLMError) as e:
        ui.check_llm_connection(llm_server, model="gpt-nope")
    assert "gpt-nope" in e.value.message and "echo-1" in e.value.fix
    with pytest.raises(LLMError, match="not an http"):
        ui.check_llm_connection("127.0.0.1:8080")
    with pytest.raises(LLMError, match="No LLM base URL"):
        ui.check_llm_connection("  ")
    t0 = time.time()
    with pytest.raises(LLMError, match="Could not reach"):
        ui.check_llm_connection("http://127.0.0.1:9/v1", timeout=3)
    assert time.time() - t0 < 10


# ----------------------------------------------------------------------------- a turn as messages


def _result(tiny) -> ToolResult:
    """A ToolResult measured on the tiny model: neuron 5 of layer 1 over one sentence."""
    text = "the cat sat on the mat"
    name = tiny.hook_name("mlp_post", 1)
    _, cache = tiny.run_with_cache(text, [name])
    acts = cache[name][0, :, 5]
    toks = tiny.str_tokens(text)
    return ToolResult(
        tool="neuron_explainer",
        summary=f"Neuron 1.5 peaks at {float(acts.max()):.3f}.",
        headline={"max_activation": float(acts.max())},
        spans=[TokenSpan(tokens=toks, values=acts.tolist())],
        figures=[
            Figure(kind="bar", title="activation by token", data={"labels": toks, "values": acts.tolist()}),
            Figure(kind="heatmap", title="all neurons", data={"z": cache[name][0, :, :8].T.tolist(), "x": toks, "y": list(range(8))}),
        ],
    )


def test_turn_view_steps_go_pending_to_done_with_duration(tiny, tmp_path):
    r = _result(tiny)
    tv = ui.TurnView("what does neuron 1.5 do?", tmp_path)
    tv.apply(Event(type="planned", data={"plan": {"reformulated": "neuron 1.5?", "calls": [{"tool": "neuron_explainer", "args": {"layer": 1, "neuron": 5}}], "planner": "offline"}}))
    assert tv.messages[-1]["metadata"]["title"] == "Plan: 1 step"
    t0 = time.time()
    tv.apply(Event(type="tool_started", data={"index": 0, "tool": "neuron_explainer", "args": {"layer": 1, "neuron": 5}}, t=t0))
    step = tv.messages[-1]
    assert step["metadata"]["status"] == "pending" and tv.pending() == [len(tv.messages) - 1]
    tv.apply(Event(type="notice", data={"index": 0, "tool": "neuron_explainer", "message": "Building the store first (about 2 min)."}, t=t0))
    assert "**Note:** Building the store first (about 2 min)." in step["content"] and step["metadata"]["status"] == "pending"
    # the orchestrator's tool_finished carries ok/summary/seconds (no result)
    tv.apply(Event(type="tool_finished", data={"index": 0, "tool": "neuron_explainer", "ok": True, "summary": r.summary, "seconds": 0.42}, t=t0 + 0.5))
    assert step["metadata"]["status"] == "done" and step["metadata"]["duration"] == 0.42 and tv.pending() == []
    assert r.summary in step["content"]
    ans = Answer(question="what does neuron 1.5 do?", results=[r], reply=f"It peaks at {r.headline['max_activation']:.3f}.", figures=r.figures)
    tv.apply(Event(type="reply", data={"answer": ans.model_dump(mode="json")}))
    assert tv.answer is not None and tv.answer.reply == ans.reply
    assert step["content"] == r.summary  # the step says what the tool found; its numbers are in the reply's table, not dumped here
    files = [m["content"]["path"] for m in tv.messages if isinstance(m["content"], dict)]
    assert len(files) == 2  # answer figures and result figures are the same two: rendered once each
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    spans = tv.messages[-1]["content"]
    assert spans.count('class="gn-tok"') == len(r.spans[0].tokens)
    hl = ui.spans_for_highlight(ans.results)
    assert [t for t, _ in hl] == r.spans[0].tokens
    vals = [v for _, v in hl if v is not None]
    assert max(abs(v) for v in vals) == pytest.approx(1.0)


def test_turn_view_duration_from_event_times_and_failures(tmp_path):
    tv = ui.TurnView("q", tmp_path)
    tv.apply({"type": "tool_started", "data": {"index": 0, "tool": "probing"}, "t": 100.0})
    tv.apply({"type": "tool_finished", "data": {"index": 0, "tool": "probing", "ok": False, "summary": "no data"}, "t": 102.5})
    step = tv.messages[-1]
    assert step["metadata"]["duration"] == 2.5 and step["metadata"]["log"] == "failed"
    tv.apply({"type": "tool_started", "data": {"index": 1, "tool": "activation_patching"}, "t": 103.0})
    tv.apply({"type": "error", "data": {"tool": "activation_patching", "error": {"error": "bad_input", "message": "Prompts differ in length.", "fix": "Use prompts of equal length."}}})
    assert tv.pending() == []
    assert not any("Prompts differ" in str(m["content"]) for m in tv.messages)  # said once, with the reply
    tv.apply({"type": "reply", "data": {"answer": {"question": "q", "reply": ""}}})
    assert "Prompts differ in length." in tv.messages[-1]["content"] and "Use prompts of equal length." in tv.messages[-1]["content"]


def test_turn_view_clarify_shown_once_and_cancel(tmp_path):
    tv = ui.TurnView("explain that neuron", tmp_path)
    tv.apply(Event(type="clarify", data={"question": "Which neuron (layer and index)?"}))
    tv.apply(Event(type="reply", data={"answer": Answer(question="explain that neuron", reply="Which neuron (layer and index)?", clarify="Which neuron (layer and index)?").model_dump(mode="json")}))
    assert sum("Which neuron" in str(m["content"]) for m in tv.messages) == 1
    tv2 = ui.TurnView("slow", tmp_path)
    tv2.apply(Event(type="tool_started", data={"index": 0, "tool": "probing"}))
    tv2.cancel()
    assert tv2.pending() == [] and "Stopped" in tv2.messages[-1]["content"]


def test_history_rows_become_messages():
    rows = [
        {"question": "what does neuron 1.2 do?", "reformulated": "...", "reply": "It fires on cats.", "t": 1.0},
        {"role": "user", "content": "and 1.3?"},
        {"answer": Answer(question="and 1.4?", reply="Dogs.").model_dump(mode="json")},
    ]
    msgs = ui.history_to_messages(rows)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "user", "assistant"]
    assert msgs[1]["content"] == "It fires on cats." and msgs[-1]["content"] == "Dogs."


def test_error_text_says_what_and_what_to_do():
    t = ui.error_text(InputError("Bad thing.", "Do this."))
    assert "Bad thing." in t and "Do this." in t
    t = ui.error_text(RuntimeError("boom"))
    assert "RuntimeError: boom" in t and "still running" in t


def test_token_html_escapes_and_colours():
    h = ui.token_html(["<b>", " x"], [1.0, -0.5])
    assert "&lt;b&gt;" in h and "<b>" not in h
    assert "rgb(255,95,95)" in h  # full positive: red
    assert "&nbsp;x" in h


def test_build_app_wires_the_components(tiny):
    class _Never:
        def __init__(self, **kw):
            raise AssertionError("not called while building the page")

    demo = ui.build_app(model=tiny, assistant_factory=_Never)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    for needed in ("gn-chat", "gn-question", "gn-ask", "gn-stop", "gn-what", "gn-attach", "gn-json", "gn-highlights",
                   "gn-threads", "gn-model-kind", "gn-sae-dir", "gn-llm-url", "gn-llm-test", "gn-store-build", "gn-store-bar"):
        assert needed in ids, needed
    assert demo.gnothi_backend.handle() is tiny


def test_load_and_fit_sae_checks_the_model(tiny, tmp_path):
    from gnothi.tools.errors import GnothiError
    from gnothi.tools.sae import SAE, sae_config, save_sae

    good = save_sae(SAE(sae_config(tiny.d_model, 16, tiny.hook_name("resid_post", 1), tiny.name, k=4)), tmp_path / "good")
    d = ui.load_and_fit_sae(str(good), tiny)
    assert d["d_sae"] == 16 and d["d_in"] == tiny.d_model and d["folder"] == str(good)
    other = save_sae(SAE(sae_config(tiny.d_model + 8, 16, tiny.hook_name("resid_post", 1), "other", k=4)), tmp_path / "other")
    with pytest.raises(GnothiError, match="another model"):
        ui.load_and_fit_sae(str(other), tiny)


def test_serve_refuses_bad_model_and_port_with_exit_2(tmp_path, capsys):
    from gnothi.ui.cli import main

    assert main(["serve", "--model", str(tmp_path / "no-such-model"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model" in err and "fix:" in err
    assert main(["serve", "--port", "70000", "--no-preload"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_serve_reports_a_busy_port(capsys):
    import socket

    from gnothi.ui.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", "--no-preload", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"Could not listen on 127.0.0.1:{port}" in err and "--port" in err


def test_store_build_reports_progress_and_cancel_resumes(tiny, tmp_path, monkeypatch):
    from gnothi.tools import store

    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path))
    from gnothi.tools.corpus import Corpus, Document
    from gnothi.tools.testing import WORDS

    n, chunk, batch = 1024, 512, 4  # 16 windows of 64 tokens, saved in two chunks of 8
    words = [w for w in WORDS if w.isalpha()]
    docs = [Document(" ".join(words[(i * 7 + j) % len(words)] for j in range(80)), "words") for i in range(40)]
    kw = dict(n_tokens=n, chunk_tokens=chunk, batch_size=batch, corpus=Corpus("tiny-words", docs))
    assert "No activation store" in ui.store_status_text(tiny)
    seen = []

    def cancel_after_first(frac, text):
        seen.append(frac)
        raise ui.Cancelled()

    with pytest.raises(ui.Cancelled):
        ui.run_store_build(tiny, cancel_after_first, **kw)
    assert seen == [0.5]
    assert store.store_status(tiny).resumable_tokens == n // 2  # stopped after a saved chunk
    fracs = []
    rep = ui.run_store_build(tiny, lambda f, t: fracs.append(f), **kw)
    assert fracs == [1.0] and rep.resumed_from_tokens == n // 2 and rep.n_tokens == n
    assert "Store ready" in ui.store_status_text(tiny)


def test_a_model_loaded_in_settings_is_for_that_session_only(tiny, monkeypatch):
    """Backend.set_model loads a model for the session that asked; the default stays for the others."""
    import gnothi.tools.model as model_mod
    from gnothi.tools.testing import tiny_handle

    other = tiny_handle(arch="gpt2")
    other.name = "tiny-other"  # tiny handles share one name
    monkeypatch.setattr(model_mod, "get_handle", lambda name=None, **kw: other if name == "owner/other" else tiny)
    made = []

    class _Rec:
        def __init__(self, model=None, llm=None, db_path=None, sae=None):
            made.append(model)

    backend = ui.Backend(model=tiny, assistant_factory=_Rec)
    name, h = backend.set_model("HF id", "owner/other")
    assert h is other and backend.handle() is tiny and backend.handle(name) is other
    backend.assistant(None, None, name)
    backend.assistant(None, None, None)
    assert made == [other, tiny]  # each session's assistant runs its own model
