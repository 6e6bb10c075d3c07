"""The gnothi chat app (Gradio Blocks): ask about the model, watch the tools run.

``gnothi serve`` starts it on 127.0.0.1. Layout:

* **Chat** (left). Each question streams the assistant's steps: the plan, then one
  collapsible message per tool call that goes from *pending* (spinner) to *done* with its
  duration, then the reply with its figures inline (PNG) and the top contexts as
  highlighted tokens. Example questions, "What can you do?", Stop (cancels the turn
  between steps), New conversation, and a button to attach a text file.
* **Side panel** (right): the JSON of each answer (copyable), the top contexts of the last
  answer as highlighted tokens, past conversations from the assistant's persistent store,
  and the settings: model (bundled / Hugging Face id / local folder), SAE folder, LLM
  endpoint with a connection test, and the activation store with a build button, a
  progress bar and cancel.

Several people at once: each browser session has its own conversation (its own thread
id in ``gr.State``); the model is shared, used under the handle's lock, and every event
that runs the model goes through one Gradio queue slot (``concurrency_id="model"``), so a
second user sees a queue position instead of a slowed-down answer.

Bad input (wrong model path, unreachable endpoint, an uploaded pickle, a huge paste, an
error inside a tool) becomes a message in the UI; the app keeps running.

The app talks to the orchestrator only through ``Assistant.stream(question, thread)``
(events ``planned``, ``tool_started``, ``notice``, ``tool_finished``, ``clarify``, ``error``,
``reply``), ``.threads()`` and ``.history(thread)``.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import queue
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

from gnothi.tools.errors import GnothiError, InputError, LLMError, SAEError, UnknownModelError, UnsafeWeightsError
from gnothi.tools.bundled import BUNDLED, resolve_bundled
from gnothi.tools.store import DEFAULT_STORE_TOKENS
from gnothi.tools.tokens import merge_partial

# ----------------------------------------------------------------------------- limits

MAX_QUESTION_CHARS = 4000  # a question plus attached text; longer pastes are refused with a message
MAX_UPLOAD_BYTES = 1_000_000  # attached text files
MAX_FILE_SIZE = "5mb"  # Gradio refuses larger uploads before they reach a handler
MAX_TOKEN_ROWS = 8  # highlighted top-context rows shown per answer

EXAMPLES = [
    "What can you do?",
    "What does neuron 5.100 respond to?",
    "Which layers know whether a statement is true?",
    "Why did the model answer Paris to 'The capital of France is'?",
    "Is the model making it up when it answers 'Who was the first person to walk on Mars?'",
    "Which neurons promote the word Paris?",
    "Are there induction heads?",
    "Is the model biased about nurses and engineers?",
    "Make the model talk more about France",
    "How do I read a normalized effect of 0.8?",
]
WHAT_CAN_YOU_DO = "What can you do?"

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz")
TEXT_SUFFIXES = (".txt", ".md", ".jsonl", ".json", ".csv", ".tsv", ".py", ".log")


# ============================================================================ pure helpers


def new_thread_id() -> str:
    return f"ui-{uuid.uuid4().hex[:12]}"


def check_question(text: Any) -> str:
    """The question stripped, or :class:`InputError` (empty, or longer than the limit)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("The message is empty.", "Type a question, or click one of the examples.")
    text = text.strip()
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(
            f"The message is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}.",
            "Ask a shorter question; to study a long text, quote only the sentence or two you care about.",
        )
    return text


def is_pickle_bytes(head: bytes) -> bool:
    """True if ``head`` (a file's first bytes) starts a pickle or a torch zip checkpoint."""
    if len(head) >= 2 and head[0] == 0x80 and head[1] in (2, 3, 4, 5):
        return True
    if head.startswith(b"PK\x03\x04") and (b"data.pkl" in head or b"/data/" in head or b"archive/" in head):
        return True
    return False


def read_attachment(path: str | os.PathLike) -> str:
    """Text of an uploaded file, or a :class:`GnothiError` saying why it is refused.

    Pickle-based files (``.pkl``, ``.pt``, ``.bin`` ..., or anything whose bytes start a
    pickle) are never opened: unpickling runs arbitrary code.
    """
    p = Path(path)
    name = p.name
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise InputError(f"Could not read the uploaded file {name}: {e.strerror}.", "Upload it again.") from None
    if name.lower().endswith(PICKLE_SUFFIXES) or is_pickle_bytes(head):
        raise UnsafeWeightsError(
            f"{name} is a pickle file; gnothi never opens pickles because loading one can run arbitrary code.",
            "Attach plain text (.txt, .md, .jsonl). For weights use safetensors: a model folder in Settings > Model, "
            "an SAE folder (cfg.json + .safetensors) in Settings > SAE folder.",
        )
    if name.lower().endswith(".safetensors"):
        raise InputError(
            f"{name} holds weights, not text.",
            "Put SAE weights in a folder with cfg.json and enter that folder in Settings > SAE folder.",
        )
    if size > MAX_UPLOAD_BYTES:
        raise InputError(
            f"{name} is {size / 1e6:.1f} MB; attached text files are limited to {MAX_UPLOAD_BYTES / 1e6:.0f} MB.",
            "Attach a shorter excerpt.",
        )
    if b"\x00" in head:
        raise InputError(f"{name} is a binary file, not text.", f"Attach a text file ({', '.join(TEXT_SUFFIXES)}).")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text.", "Save it as UTF-8 text and attach it again.") from None
    if not text.strip():
        raise InputError(f"{name} is empty.", "Attach a file with some text in it.")
    return text


def check_sae_folder(folder: str) -> dict:
    """Validate an SAE folder (``cfg.json`` + ``*.safetensors``, SAELens layout); returns its cfg summary."""
    folder = (folder or "").strip()
    if not folder:
        raise SAEError("No SAE folder given.", "Enter the path of a folder holding cfg.json and the .safetensors weights.")
    p = Path(folder).expanduser()
    if not p.exists():
        raise SAEError(f"SAE folder {folder} does not exist.", "Check the path (it is a folder on the machine running gnothi).")
    if not p.is_dir():
        raise SAEError(f"{folder} is a file, not a folder.", "Enter the folder that holds cfg.json and the .safetensors weights.")
    files = [f.name for f in p.iterdir()]
    if not any(f.endswith(".safetensors") for f in files):
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise UnsafeWeightsError(
                f"{folder} holds only pickle weights ({', '.join(pickles[:3])}), which gnothi does not load.",
                "Convert them to safetensors (SAELens `save_model` writes cfg.json + sae_weights.safetensors).",
            )
        raise SAEError(f"{folder} has no .safetensors weights.", "Point at a folder saved by SAELens (cfg.json + sae_weights.safetensors).")
    if "cfg.json" not in files:
        raise SAEError(f"{folder} has no cfg.json.", "Point at a folder saved by SAELens (cfg.json + sae_weights.safetensors).")
    try:
        cfg = json.loads((p / "cfg.json").read_text())
    except (OSError, ValueError) as e:
        raise SAEError(f"{folder}/cfg.json is not valid JSON ({e}).", "Re-save the SAE.") from None
    keep = ("architecture", "d_in", "d_sae", "hook_name", "model_name", "hook_layer")
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    out = {k: cfg.get(k, meta.get(k)) for k in keep if cfg.get(k, meta.get(k)) is not None}
    out["folder"] = str(p)
    return out


def load_and_fit_sae(folder: str, handle) -> dict:
    """Load the SAE in ``folder`` with gnothi's loader (shapes, checksums, finite weights) and
    check it reads a hook point of ``handle``'s model with the right width; its description."""
    try:
        from gnothi.tools.sae import load_sae
    except ImportError:
        return check_sae_folder(folder)
    sae = load_sae(folder)
    sae.check_fits(handle)
    d = sae.describe()
    d["folder"] = str(folder)
    return d


def check_llm_connection(base_url: str, model: str = "", api_key: str = "", timeout: float = 8.0) -> dict:
    """Talk to an OpenAI-compatible endpoint: list its models, then ask for one token.

    Returns ``{"ok": True, "models": [...], "model": ..., "seconds": ...}`` or raises
    :class:`LLMError` with what went wrong and what to check.
    """
    base_url = (base_url or "").strip()
    if not base_url:
        raise LLMError("No LLM base URL given.", "Enter the endpoint's base URL, e.g. http://127.0.0.1:8080/v1, or leave it empty to work offline.")
    if not base_url.startswith(("http://", "https://")):
        raise LLMError(f"{base_url!r} is not an http(s) URL.", "Use a URL like http://127.0.0.1:8080/v1.")
    from openai import OpenAI

    t0 = time.time()
    client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=0)
    try:
        models = [m.id for m in client.models.list().data]
    except Exception as e:  # connection refused, DNS, 401, 404, timeout ...
        raise LLMError(
            f"Could not reach the LLM endpoint at {base_url}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
            "Check the server is running and the URL ends in /v1; check the key. gnothi works offline without an endpoint.",
        ) from None
    use = (model or "").strip() or (models[0] if models else "")
    if not use:
        raise LLMError(f"{base_url} lists no models.", "Enter the model name the server expects.")
    try:
        r = client.chat.completions.create(model=use, messages=[{"role": "user", "content": "Say OK."}], max_tokens=2, temperature=0)
        sample = (r.choices[0].message.content or "").strip()
    except Exception as e:
        raise LLMError(
            f"The endpoint is up, but a chat request to model {use!r} failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
            f"Pick one of the models it lists: {', '.join(models[:8]) or '(none)'}.",
        ) from None
    return {"ok": True, "models": models, "model": use, "sample": sample, "seconds": round(time.time() - t0, 2)}


def error_text(e: BaseException) -> str:
    """Markdown for an error shown in the chat: what happened, and what to do."""
    if isinstance(e, GnothiError):
        return f"**Problem:** {e.message}" + (f"\n\n*What to do:* {e.fix}" if e.fix else "")
    return (
        f"**Something went wrong inside gnothi:** `{type(e).__name__}: {str(e)[:300]}`\n\n"
        "*What to do:* try again or rephrase; the details are in the server log. The app is still running."
    )


def token_html(tokens: list[str], values: list[float], vmax: float | None = None) -> str:
    """Tokens as inline HTML spans coloured by value (red positive, blue negative)."""
    tokens, values = merge_partial(tokens, values)  # a character split over byte tokens is one span
    vmax = vmax or max([abs(float(v)) for v in values] or [1.0]) or 1.0
    parts = []
    for t, v in zip(tokens, values):
        a = max(0.0, min(1.0, abs(float(v)) / vmax))
        rgb = f"255,{int(255 - 160 * a)},{int(255 - 160 * a)}" if v >= 0 else f"{int(255 - 160 * a)},{int(255 - 160 * a)},255"
        txt = html.escape(t.replace("\n", "⏎")).replace(" ", "&nbsp;")
        parts.append(f'<span class="gn-tok" style="background: rgb({rgb})" title="{float(v):.3g}">{txt}</span>')
    return "".join(parts)


def spans_for_highlight(results: list, limit: int = MAX_TOKEN_ROWS) -> list[tuple[str, float | None]]:
    """Top-context rows of an answer's results as ``gr.HighlightedText`` data (values scaled to [-1, 1])."""
    rows = []
    for r in results:
        for s in r.spans:
            rows.append(s)
            if len(rows) >= limit:
                break
    if not rows:
        return []
    vmax = max([abs(v) for s in rows for v in s.values] or [1.0]) or 1.0
    out: list[tuple[str, float | None]] = []
    for i, s in enumerate(rows):
        if i:
            out.append(("\n", None))
        for t, v in zip(*merge_partial(s.tokens, s.values)):
            out.append((t, round(float(v) / vmax, 3) if abs(v) > 1e-9 else None))
    return out


# ============================================================================ one turn, as chat messages


def answer_figures(ans) -> list:
    """An answer's figures, its own then its results', each once."""
    out, seen = [], set()
    for f in [*ans.figures, *(f for r in ans.results for f in r.figures)]:
        k = f.model_dump_json()
        if k not in seen:
            seen.add(k)
            out.append(f)
    return out


def missing_builds(ans) -> set[str]:
    """What an answer's failed results lacked that the chat can build: ``store_error`` (the activation store),
    ``sae_not_found`` (an SAE or its feature index)."""
    return {(r.error or {}).get("error") for r in (ans.results if ans is not None else []) if not r.ok} & {"store_error", "sae_not_found"}


class TurnView:
    """Turns one question's stream of :class:`~gnothi.agents.types.Event` into chat messages.

    ``messages`` is a list of Gradio message dicts: the user's question, a collapsed "Plan"
    step, one step per tool call (``metadata.status`` pending -> done, with ``duration``),
    then the reply, its figures (PNG files in ``fig_dir``) and highlighted top contexts.
    """

    def __init__(self, question: str, fig_dir: str | Path):
        self.question = question
        self.fig_dir = Path(fig_dir)
        self.messages: list[dict] = [{"role": "user", "content": question}]
        self.answer = None  # Answer once the reply arrives
        self._tool_errors: list[str] = []  # a failed tool's message, with what to do
        self._steps: dict[str, int] = {}  # step key -> index in messages
        self._started: dict[str, float] = {}
        self._n = 0
        self._clarified: str | None = None

    # -- helpers
    def _step_key(self, data: dict) -> str:
        for k in ("index", "i", "step", "call_id", "id"):
            if data.get(k) is not None:
                return f"{k}:{data[k]}"
        tool = self._tool_name(data)
        return f"tool:{tool}"

    @staticmethod
    def _tool_name(data: dict) -> str:
        call = data.get("call") if isinstance(data.get("call"), dict) else {}
        return str(data.get("tool") or call.get("tool") or data.get("name") or "tool")

    @staticmethod
    def _args(data: dict) -> dict:
        call = data.get("call") if isinstance(data.get("call"), dict) else {}
        a = data.get("args", call.get("args"))
        return a if isinstance(a, dict) else {}

    def pending(self) -> list[int]:
        return [i for i in self._steps.values() if self.messages[i].get("metadata", {}).get("status") == "pending"]

    def cancel(self, note: str = "stopped") -> None:
        """Close every pending step (the user pressed Stop)."""
        for i in self.pending():
            md = self.messages[i]["metadata"]
            md["status"] = "done"
            md["log"] = note
        self.messages.extend({"role": "assistant", "content": t} for t in self._tool_errors)
        self.messages.append({"role": "assistant", "content": "**Stopped.** The steps that finished are shown above; ask again, or ask something smaller."})

    # -- events
    def apply(self, ev) -> None:
        """Add or update messages for one event (an ``Event`` or its dict)."""
        etype = ev.type if hasattr(ev, "type") else ev.get("type")
        data = (ev.data if hasattr(ev, "data") else ev.get("data")) or {}
        t = ev.t if hasattr(ev, "t") else ev.get("t", time.time())
        if etype == "planned":
            self._planned(data)
        elif etype == "tool_started":
            key = self._step_key(data)
            self._n += 1
            tool = self._tool_name(data)
            args = self._args(data)
            argtxt = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:80]}" for k, v in args.items())
            self._started[key] = t
            self.messages.append(
                {
                    "role": "assistant",
                    "content": f"Running `{tool}`" + (f"({argtxt})" if argtxt else "") + " …",
                    "metadata": {"title": f"Tool: {tool}", "id": f"step-{self._n}", "status": "pending", "log": "running"},
                }
            )
            self._steps[key] = len(self.messages) - 1
        elif etype == "notice":
            i = self._steps.get(self._step_key(data))
            if i is not None:  # a long first-use build: said in the running step, before it starts
                self.messages[i]["content"] += f"\n\n**Note:** {data.get('message', '')}"
        elif etype == "tool_finished":
            self._finished(data, t)
        elif etype == "clarify":
            q = data.get("question") or data.get("clarify") or data.get("text") or ""
            self._clarified = q
            self.messages.append({"role": "assistant", "content": f"**A question back:** {q}"})
        elif etype == "error":
            self._error(data)
        elif etype == "reply":
            self._reply(data)

    def _planned(self, data: dict) -> None:
        plan = data.get("plan") if isinstance(data.get("plan"), dict) else data
        calls = plan.get("calls") or []
        lines = []
        if plan.get("reformulated"):
            lines.append(f"**What I will measure:** {plan['reformulated']}")
        if calls:
            lines.append("**Steps:**")
            for c in calls:
                c = c if isinstance(c, dict) else getattr(c, "model_dump", lambda: {})()
                args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:60]}" for k, v in (c.get("args") or {}).items())
                lines.append(f"- `{c.get('tool')}`({args})")
        for n in plan.get("notes") or []:
            lines.append(f"- note: {n}")
        if plan.get("planner"):
            lines.append(f"*planner: {plan['planner']}*")
        self.messages.append(
            {
                "role": "assistant",
                "content": "\n".join(lines) or "(no steps planned)",
                "metadata": {"title": f"Plan: {len(calls)} step{'s' if len(calls) != 1 else ''}", "status": "done"},
            }
        )

    def _finished(self, data: dict, t: float) -> None:
        key = self._step_key(data)
        if key not in self._steps:  # finished without a start event: make the step now
            self.apply({"type": "tool_started", "data": data, "t": t})
            key = self._step_key(data)
        i = self._steps[key]
        res = data.get("result") if isinstance(data.get("result"), dict) else {}
        dur = data.get("seconds", data.get("duration", data.get("elapsed")))
        if dur is None and res.get("timings"):
            dur = res["timings"].get("total", res["timings"].get("seconds"))
        if dur is None:
            dur = max(0.0, t - self._started.get(key, t))
        ok = res.get("ok", data.get("ok", True)) and not data.get("error")
        summary = res.get("summary") or data.get("summary") or ""
        if not ok:
            err = res.get("error") or data.get("error") or {}
            if isinstance(err, dict):
                summary = f"Failed: {err.get('message', summary)}" + (f" — {err['fix']}" if err.get("fix") else "")
            else:
                summary = f"Failed: {err}"
        msg = self.messages[i]
        msg["content"] = summary or "done"  # the tool's own sentence; its numbers are in the reply's table
        msg["metadata"].update({"status": "done", "duration": round(float(dur), 2), "log": "done" if ok else "failed"})

    def _error(self, data: dict) -> None:
        err = data.get("error") if isinstance(data.get("error"), dict) else data
        msg = err.get("message") or data.get("message") or str(data)
        fix = err.get("fix") or data.get("fix")
        if err.get("error") == "store_error" and "store" in msg.lower():
            fix = ((fix or "") + " In this app: Settings > Activation store > Build.").strip()
        for i in self.pending():
            self.messages[i]["metadata"].update({"status": "done", "log": "failed"})
        if data.get("tool"):
            self._tool_errors.append(error_text(GnothiError(msg, fix or "")))  # shown once, in the reply, unless no reply comes
            return
        self.messages.append({"role": "assistant", "content": error_text(GnothiError(msg, fix or ""))})

    def _reply(self, data: dict) -> None:
        from gnothi.agents.types import Answer

        raw = data.get("answer")
        ans = raw if isinstance(raw, Answer) else Answer.model_validate(raw or {"question": self.question, "reply": data.get("reply", "")})
        self.answer = ans
        for i in self.pending():
            self.messages[i]["metadata"].update({"status": "done"})
        if self._clarified and ans.reply.strip() in ("", self._clarified.strip()) and not ans.results:
            return  # the clarifying question is already on screen
        text = ans.reply or (ans.clarify and f"**A question back:** {ans.clarify}") or "\n\n".join(self._tool_errors) or "(no reply)"
        missing = missing_builds(ans)
        if "store_error" in missing:
            text += "\n\nIn this app: press **Build the activation store now** below the question (or Settings > Activation store > Build)."
        if "sae_not_found" in missing:
            text += "\n\nIn this app: press **Train and index an SAE now** below the question; it asks again when done."
        extra = [w for w in ans.warnings if w.rstrip(".") not in text]  # a caveat the reply already gives is not repeated
        if extra:
            text += "\n\n" + "\n".join(f"> Warning: {w}" for w in extra)
        self.messages.append({"role": "assistant", "content": text})
        for path in self.figure_files(ans):
            self.messages.append({"role": "assistant", "content": {"path": str(path)}})
        rows = [s for r in ans.results for s in r.spans][:MAX_TOKEN_ROWS]
        if rows:
            vmax = max([abs(v) for s in rows for v in s.values] or [1.0]) or 1.0
            body = "\n".join(
                f'<div class="gn-row">{token_html(s.tokens, s.values, vmax)}'
                + (f' <small>{html.escape(s.note)}</small>' if s.note else "")
                + "</div>"
                for s in rows
            )
            self.messages.append({"role": "assistant", "content": f'<div class="gn-spans"><b>Top contexts</b> (red = high activation)\n{body}</div>'})

    def figure_files(self, ans) -> list[Path]:
        """Render the answer's figures (its own, then its results') to PNG files once each."""
        from gnothi.tools.results import render_png

        out = []
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        for f in answer_figures(ans):
            key = hashlib.sha1(f.model_dump_json().encode()).hexdigest()[:16]
            path = self.fig_dir / f"fig-{key}.png"
            if not path.exists():
                try:
                    png = render_png(f)
                except Exception as e:  # a malformed figure must not lose the answer
                    print(f"gnothi ui: could not render figure {f.title!r}: {e}", file=sys.stderr)
                    continue
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(png)
                os.replace(tmp, path)
            out.append(path)
        return out


def pump_events(assistant, question: str, thread: str, out: "queue.Queue", stop: threading.Event) -> None:
    """Iterate ``assistant.stream`` in this one thread, putting ``("event", ev)`` on ``out``.

    Ends with ``("end", None)`` (after ``("error", exc)`` if the stream raised). When
    ``stop`` is set the stream is closed after the event in progress: the assistant holds
    its own lock for a whole turn, so the stream must start and end in the same thread.
    """
    stream = None
    try:
        stream = assistant.stream(question, thread=thread)
        for ev in stream:
            out.put(("event", ev))
            if stop.is_set():
                break
    except BaseException as e:  # noqa: BLE001 - handed to the UI thread
        out.put(("error", e))
    finally:
        if stream is not None and hasattr(stream, "close"):
            try:
                stream.close()
            except Exception:
                traceback.print_exc()
        out.put(("end", None))


def history_to_messages(turns: list) -> list[dict]:
    """A stored conversation (``Assistant.history``) as chat messages, whatever its row shape."""
    from gnothi.agents.types import Answer

    out: list[dict] = []
    for t in turns or []:
        if hasattr(t, "model_dump"):
            t = t.model_dump(mode="json")
        if not isinstance(t, dict):
            out.append({"role": "assistant", "content": str(t)})
            continue
        if "role" in t and "content" in t:
            role = t["role"] if t["role"] in ("user", "assistant", "system") else "assistant"
            c = t["content"]
            out.append({"role": role, "content": c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)})
            continue
        ans = t.get("answer")
        if isinstance(ans, dict):
            try:
                a = Answer.model_validate(ans)
                out.append({"role": "user", "content": a.question})
                out.append({"role": "assistant", "content": a.reply or "(no reply)"})
                continue
            except Exception:
                pass
        q = t.get("question") or t.get("user")
        r = t.get("reply") or t.get("assistant") or (ans if isinstance(ans, str) else None)
        if q:
            out.append({"role": "user", "content": str(q)})
        if r:
            out.append({"role": "assistant", "content": str(r)})
    return out


# ============================================================================ shared backend


class Backend:
    """What all browser sessions share: the model and one Assistant per LLM setting.

    ``assistant_factory(model=..., llm=..., db_path=...)`` builds an Assistant (default:
    :class:`gnothi.agents.Assistant`). ``model`` is the app's default; a session that loads
    another model in Settings gets its own handle (kept loaded for any session that picks the
    same model, at most :data:`MAX_EXTRA_MODELS` besides the default).
    """

    def __init__(self, model: Any = None, db_path: str | None = None, assistant_factory: Callable | None = None):
        self.model = model  # the default: a name, a folder, or a ready ModelHandle
        self._handles: dict[str, Any] = {}  # other models sessions loaded, by name (most recent last)
        self.db_path = db_path
        self._factory = assistant_factory
        self._assistants: dict[tuple, Any] = {}
        self._lock = threading.RLock()
        # running turns, by browser session: Stop sets the flag, the turn ends after its current step
        self.stops: dict[str, threading.Event] = {}
        self.turns: dict[str, TurnView] = {}
        self.store_stop = threading.Event()
        self.dropped: set[str] = set()  # sessions whose running turn was abandoned by "New conversation"
        self.fig_dir = Path(tempfile.mkdtemp(prefix="gnothi-ui-figs-"))

    def factory(self):
        if self._factory is None:
            from gnothi.agents import Assistant

            self._factory = Assistant
        return self._factory

    def model_name(self, name: str | None = None) -> str:
        """The name of a session's model (``name``: the one it loaded in Settings; None: the app's default)."""
        if name:
            return name
        m = self.model
        if m is None:
            from gnothi.tools.config import DEFAULT_MODEL

            return DEFAULT_MODEL
        return getattr(m, "name", None) or str(m)

    def handle(self, name: str | None = None):
        """The handle of a session's model (``name`` None: the app's default, loaded on first use)."""
        if name:
            with self._lock:
                h = self._handles.get(name)
            if h is not None:
                return h
        if self.model is not None and not isinstance(self.model, str) and (not name or name == self.model.name):
            return self.model
        from gnothi.tools.model import get_handle

        return get_handle(name or self.model)

    def llm_arg(self, llm: dict | None):
        """An ``llm=`` argument for the Assistant from the session's endpoint settings."""
        if not llm or not (llm.get("base_url") or "").strip():
            return None
        try:
            from gnothi.agents.llm import LLMConfig  # type: ignore

            fields = getattr(LLMConfig, "model_fields", {})
            kw = {"base_url": llm["base_url"].strip()}
            if "model" in fields:
                kw["model"] = llm.get("model") or ""
            for k in ("api_key", "key"):
                if k in fields:
                    kw[k] = llm.get("api_key") or ""
                    break
            return LLMConfig(**kw)
        except ImportError:
            return llm["base_url"].strip()

    def assistant(self, llm: dict | None = None, sae: str | None = None, model: str | None = None):
        """The Assistant for a session's model, LLM and SAE settings (built once, shared by the sessions using them)."""
        key = (self.model_name(model), json.dumps(llm or {}, sort_keys=True), sae)
        with self._lock:
            a = self._assistants.get(key)
            if a is None:
                m = self.handle(model) if model else self.model
                a = self.factory()(model=m, llm=self.llm_arg(llm), db_path=self.db_path, sae=sae or None)
                self._assistants[key] = a
            return a

    def set_model(self, kind: str, value: str) -> tuple[str, Any]:
        """Load a model for one session: ``(name, handle)``, or raise GnothiError. Other sessions keep theirs."""
        from gnothi.tools.config import DEFAULT_MODEL
        from gnothi.tools.model import get_handle

        value = (value or "").strip()
        if kind == "bundled":
            name = value or DEFAULT_MODEL
            if resolve_bundled(name) is None:
                raise UnknownModelError(f"{name!r} is not a bundled model.", f"Bundled models: {', '.join(BUNDLED)}.")
        elif kind == "local folder":
            if not value:
                raise UnknownModelError("No folder given.", "Enter the path of a folder with config.json, *.safetensors and tokenizer files.")
            p = Path(value).expanduser()
            if not p.exists():
                raise UnknownModelError(f"Model folder {value} does not exist.", "Check the path (a folder on the machine running gnothi).")
            if not p.is_dir():
                raise UnknownModelError(f"{value} is a file, not a model folder.", "Enter the folder that holds config.json and the .safetensors weights.")
            name = str(p)
        elif kind == "HF id":
            if not value or "/" not in value:
                raise UnknownModelError(f"{value!r} is not a Hugging Face id.", "Use the form owner/name, e.g. Qwen/Qwen2.5-0.5B (it must already be in the local HF cache).")
            name = value
        else:
            raise InputError(f"Unknown model source {kind!r}.", "Pick bundled, HF id or local folder.")
        h = get_handle(name)
        with self._lock:
            self._handles.pop(h.name, None)
            self._handles[h.name] = h
            default = self.model.name if self.model is not None and not isinstance(self.model, str) else None
            extra = [n for n in self._handles if n != default]
            for old in extra[:-MAX_EXTRA_MODELS]:  # least recently loaded first; its assistants go with it
                self._handles.pop(old, None)
                for k in [k for k in self._assistants if k[0] == old]:
                    a = self._assistants.pop(k)
                    if hasattr(a, "close"):
                        a.close()
        return h.name, h


def describe_handle(h) -> str:
    d = h.shape
    return f"**{h.name}** · {d.architecture} · {d.n_layers} layers · d_model {d.d_model} · {d.d_mlp} MLP neurons/layer · {h.device}/{str(h.dtype).replace('torch.', '')}"


# ============================================================================ activation store (optional module)


class Cancelled(Exception):
    pass


def store_status_text(handle) -> str:
    """One line on the activation store of ``handle``'s model (no model run)."""
    from gnothi.tools import store

    try:
        st = store.store_status(handle)
    except GnothiError as e:
        return f"Activation store: problem: {e.message} {e.fix}"
    line = f"**Activation store** ({st.units_id}): {st.message}"
    if not st.exists or st.damaged:
        line += f" Press Build (about {st.estimated_build_seconds:.0f} s here)."
    return line


def run_store_build(handle, on_progress: Callable[[float, str], None], n_tokens: int | None = None, **build_kw):
    """Build (or resume, or reuse) the default MLP activation store, calling
    ``on_progress(fraction, text)`` after each chunk. Raising from ``on_progress``
    (``Cancelled``) saves and stops the build there; the next build resumes from that chunk.
    ``build_kw`` go to ``build_store`` (``corpus``, ``chunk_tokens`` ...; the app uses the defaults)."""
    from gnothi.tools import store

    n = int(n_tokens or store.DEFAULT_STORE_TOKENS)
    st = store.store_status(handle)

    def on_chunk(chunk: int, done: int) -> None:
        on_progress(min(1.0, done / n), f"{done:,} of {n:,} tokens")

    corpus = build_kw.pop("corpus", None)  # None: the default corpus
    return store.build_store(handle, "mlp", corpus, n_tokens=n, progress=False, force=bool(st.damaged), on_chunk=on_chunk, **build_kw)


# ============================================================================ the app

MAX_EXTRA_MODELS = 2  # models kept loaded besides the default, for the sessions that chose them
N_FIGURES = 4  # interactive figure slots beside the chat (the last answer's figures)
N_SUGGESTIONS = 3
# Enter sends the question, Shift+Enter starts a new line (captured before the textarea's own handler)
ENTER_JS = """
() => {
  const inBox = (e) => e.key === 'Enter' && !e.isComposing && e.target && e.target.closest && e.target.closest('#gn-question');
  document.addEventListener('keydown', (e) => {
    if (!inBox(e)) return;
    e.stopPropagation();  // the textarea's own Enter handling never sees it
    if (e.shiftKey) return;  // Shift+Enter: the browser inserts the new line
    e.preventDefault();
    const b = document.querySelector('#gn-ask');
    if (b) b.click();
  }, true);
  // Gradio's multi-line textbox sends on Shift+Enter (keypress): that is the new line here
  document.addEventListener('keypress', (e) => { if (inBox(e)) e.stopPropagation(); }, true);
}
"""
# when a reply arrives, the question it answers goes to the top of the chat: the collapsed steps and the
# reply's first lines (the direct answer) are in view, not the reply's end
SCROLL_JS = """
() => {
  const users = document.querySelectorAll('#gn-chat .user, #gn-chat [data-testid=user]');
  if (users.length) users[users.length - 1].scrollIntoView({block: 'start', behavior: 'instant'});
}
"""
CSS = """
#gn-chat img { width: 100% !important; max-width: 100% !important; height: auto !important; max-height: none !important; }
#gn-chat table { font-size: 0.92em; }
#gn-chat td:nth-child(2), #gn-chat th:nth-child(2) { white-space: nowrap; }
[id^=gn-plot-] .js-plotly-plot, [id^=gn-plot-] .plot-container { width: 100% !important; }
.gn-sug { text-align: left; }
.gn-spans { font-size: 0.85em; line-height: 1.9; }
.gn-row { margin: 2px 0; font-family: ui-monospace, monospace; white-space: normal; }
.gn-tok { border-radius: 3px; padding: 0 1px; }
#gn-title h1 { margin-bottom: 0; }
"""


def build_app(
    model: Any = None,
    db_path: str | None = None,
    assistant_factory: Callable | None = None,
    preload: bool = False,
):
    """The Gradio Blocks app. ``model``: name, folder or ModelHandle (default bundled).

    ``assistant_factory`` replaces :class:`gnothi.agents.Assistant` (tests). With
    ``preload`` the model and the offline Assistant are built before the app starts.
    Returns the ``gr.Blocks``; its ``gnothi_backend`` attribute is the shared :class:`Backend`.
    """
    import gradio as gr

    backend = Backend(model=model, db_path=db_path, assistant_factory=assistant_factory)
    if preload:
        backend.handle()
        backend.assistant(None).offline_planner.warm()  # the first question is not the one that pays for training the router

    def fresh_state() -> dict:
        return {"sid": uuid.uuid4().hex, "thread": new_thread_id(), "messages": [], "answers": [], "llm": {}, "sae": None}

    with gr.Blocks(title="gnothi: ask a model about its insides", fill_width=True) as demo:
        state = gr.State(fresh_state)
        with gr.Row():
            gr.Markdown(
                "# gnothi\nAsk the model about its own insides in plain words. Every answer is backed by measurements; "
                "each tool step shows while it runs.",
                elem_id="gn-title",
            )
        with gr.Row(equal_height=False):
            # ------------------------------------------------------------ chat column
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="gn-chat",
                    height="72vh",
                    autoscroll=True,
                    buttons=["copy", "copy_all"],
                    feedback_options=None,
                    placeholder="Ask about a neuron, a layer, a prompt or a feature. Try an example below.",
                    sanitize_html=True,
                )
                with gr.Row():
                    question = gr.Textbox(
                        label="Your question",
                        placeholder="e.g. What does neuron 5.100 respond to?",
                        lines=2,
                        max_lines=8,
                        scale=6,
                        elem_id="gn-question",
                        autofocus=True,
                    )
                    with gr.Column(scale=1, min_width=120):
                        send = gr.Button("Ask", variant="primary", elem_id="gn-ask")
                        stop = gr.Button("Stop", variant="stop", elem_id="gn-stop")
                with gr.Row():
                    attach = gr.UploadButton("Attach text file", file_count="single", size="sm", elem_id="gn-attach")
                    capabilities = gr.Button("What can you do?", size="sm", elem_id="gn-what")
                    new_conv = gr.Button("New conversation", size="sm", elem_id="gn-new")
                with gr.Row():
                    sug_btns = [gr.Button("", visible=False, size="sm", elem_classes="gn-sug", elem_id=f"gn-sug-{i}") for i in range(N_SUGGESTIONS)]
                fix_btn = gr.Button("", visible=False, variant="primary", size="sm", elem_id="gn-fix")
                notice = gr.Markdown("", elem_id="gn-notice")
                thread_md = gr.Markdown("", elem_id="gn-thread")
                gr.Examples(examples=[[e] for e in EXAMPLES], inputs=[question], label="Example questions")

            # ------------------------------------------------------------ side column
            with gr.Column(scale=2):
                with gr.Tab("Figures", elem_id="gn-figures-tab"):
                    figs_md = gr.Markdown("The last answer's figures appear here, interactive: hover for each cell's token, layer and value.",
                                          elem_id="gn-figures-status")
                    fig_plots = [gr.Plot(visible=False, elem_id=f"gn-plot-{i}", show_label=False) for i in range(N_FIGURES)]
                with gr.Tab("Answer JSON"):
                    answer_pick = gr.Dropdown(label="Answer", choices=[], value=None, interactive=True, elem_id="gn-answer-pick")
                    answer_json = gr.Code(label="JSON of the answer (copy with the button)", language="json", value="", buttons=["copy", "download"], elem_id="gn-json", max_lines=30)
                with gr.Tab("Top contexts"):
                    highlights = gr.HighlightedText(label="Top contexts of the last answer (activation, scaled)", value=[], elem_id="gn-highlights", show_legend=False)
                with gr.Tab("Conversations"):
                    threads_md = gr.Markdown("Press Refresh to list the stored conversations.", elem_id="gn-threads-status")
                    threads = gr.Dropdown(label="Past conversations (persistent store)", choices=[], value=None, interactive=True, elem_id="gn-threads")
                    with gr.Row():
                        refresh_threads = gr.Button("Refresh", size="sm")
                        open_thread = gr.Button("Open", size="sm", elem_id="gn-open-thread")
                with gr.Tab("Settings", elem_id="gn-settings-tab"):
                    with gr.Accordion("Model", open=True):
                        model_md = gr.Markdown("Model: loading on first question …", elem_id="gn-model-status")
                        model_kind = gr.Radio(["bundled", "HF id", "local folder"], value="bundled", label="Source", elem_id="gn-model-kind")
                        model_value = gr.Textbox(label="Name, id or folder", placeholder=" · ".join(list(BUNDLED) + ["Qwen/Qwen2.5-0.5B", "/path/to/folder"]),
                                                 info="Bundled: " + ", ".join(BUNDLED) + " (converted once on first use).", elem_id="gn-model-value")
                        load_model = gr.Button("Load model", size="sm", elem_id="gn-load-model")
                    with gr.Accordion("SAE folder", open=False):
                        sae_dir = gr.Textbox(label="Folder with cfg.json + .safetensors (SAELens layout)", elem_id="gn-sae-dir")
                        sae_btn = gr.Button("Use this SAE", size="sm", elem_id="gn-sae-use")
                        sae_md = gr.Markdown("No SAE chosen: feature questions use the model's default SAE (trained on first use).", elem_id="gn-sae-status")
                    with gr.Accordion("LLM endpoint (optional; offline without one)", open=True):
                        llm_url = gr.Textbox(label="Base URL", placeholder="http://127.0.0.1:8080/v1", elem_id="gn-llm-url")
                        llm_model = gr.Textbox(label="Model", placeholder="(first model the server lists)", elem_id="gn-llm-model")
                        llm_key = gr.Textbox(label="API key", type="password", elem_id="gn-llm-key")
                        with gr.Row():
                            llm_test = gr.Button("Test connection", size="sm", elem_id="gn-llm-test")
                            llm_apply = gr.Button("Use for this session", size="sm", elem_id="gn-llm-apply")
                            llm_off = gr.Button("Offline", size="sm", elem_id="gn-llm-off")
                        llm_md = gr.Markdown("Planner and writer: offline (no LLM).", elem_id="gn-llm-status")
                    with gr.Accordion("Activation store", open=True):
                        store_md = gr.Markdown("Activation store: press Refresh.", elem_id="gn-store-status")
                        with gr.Row():
                            store_refresh = gr.Button("Refresh", size="sm", elem_id="gn-store-refresh")
                            store_build = gr.Button("Build", size="sm", variant="primary", elem_id="gn-store-build")
                            store_cancel = gr.Button("Cancel", size="sm", variant="stop", elem_id="gn-store-cancel")
                        store_tokens = gr.Number(value=DEFAULT_STORE_TOKENS, precision=0, minimum=64, maximum=5_000_000, label="Tokens to index", elem_id="gn-store-tokens")
                        store_bar = gr.Slider(0, 100, value=0, label="Build progress (%)", interactive=False, elem_id="gn-store-bar")

        # ================================================================ handlers

        def init_session(st: dict):
            st = dict(st or fresh_state())
            if not st.get("thread"):
                st["thread"] = new_thread_id()
            if not st.get("sid"):
                st["sid"] = uuid.uuid4().hex
            store_line = "Activation store: press Refresh."
            if backend.model is not None and not isinstance(backend.model, str):
                store_line = store_status_text(backend.model)
            return st, thread_line(st), model_line(st), store_line

        def thread_line(st: dict) -> str:
            return f"<small>Conversation `{st['thread']}` · {len(st['answers'])} answer(s) in this session</small>"

        def model_line(st: dict | None = None) -> str:
            name = (st or {}).get("model")
            m = backend.handle(name) if name else backend.model
            if m is not None and not isinstance(m, str):
                return "Model (this session): " + describe_handle(m)
            return f"Model: **{backend.model_name()}** (loads on the first question)"

        def answers_choices(st: dict) -> list[tuple[str, int]]:
            return [(f"#{i + 1}: {a['question'][:60]}", i) for i, a in enumerate(st["answers"])]

        def respond(text: str, st: dict):
            """Stream one turn: yields (chatbot, state, question box, notice, json, pick, highlights, thread line)."""
            st = dict(st)
            msgs = list(st["messages"])
            try:
                q = check_question(text)
            except GnothiError as e:
                yield msgs, st, text, error_text(e), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            sid = st.get("sid") or st["thread"]
            stop_flag = threading.Event()
            turn = TurnView(q, backend.fig_dir)
            backend.stops[sid], backend.turns[sid] = stop_flag, turn
            yield msgs + turn.messages, st, "", "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
            events: queue.Queue = queue.Queue()
            worker = None
            try:
                a = backend.assistant(st.get("llm") or None, st.get("sae"), st.get("model"))
                worker = threading.Thread(target=pump_events, args=(a, q, st["thread"], events, stop_flag), daemon=True, name=f"gnothi-turn-{sid[:8]}")
                worker.start()
                while True:
                    try:
                        kind, item = events.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    if kind == "event":
                        turn.apply(item)
                        if not stop_flag.is_set() and sid not in backend.dropped:
                            yield msgs + turn.messages, st, "", "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
                    elif kind == "error":
                        raise item
                    else:  # "end"
                        break
                if stop_flag.is_set() and turn.answer is None:
                    turn.cancel()
            except GnothiError as e:
                for i in turn.pending():
                    turn.messages[i]["metadata"].update({"status": "done", "log": "failed"})
                turn.messages.append({"role": "assistant", "content": error_text(e)})
            except Exception as e:  # keep the app alive; log the details for the operator
                traceback.print_exception(e)
                for i in turn.pending():
                    turn.messages[i]["metadata"].update({"status": "done", "log": "failed"})
                turn.messages.append({"role": "assistant", "content": error_text(e)})
            finally:
                if worker is not None and worker.is_alive():
                    stop_flag.set()  # the page went away mid-turn: stop after the step in progress
                if backend.turns.get(sid) is turn:
                    backend.stops.pop(sid, None)
                    backend.turns.pop(sid, None)
            if sid in backend.dropped:  # the user started a new conversation meanwhile
                backend.dropped.discard(sid)
                return
            st["messages"] = msgs + turn.messages
            if turn.answer is not None:
                st["answers"] = st["answers"] + [turn.answer.model_dump(mode="json")]
                pick = gr.update(choices=answers_choices(st), value=len(st["answers"]) - 1)
                js = json.dumps(st["answers"][-1], indent=2, ensure_ascii=False)
                hl = spans_for_highlight(turn.answer.results)
                yield st["messages"], st, "", "", js, pick, hl, thread_line(st)
            else:
                yield st["messages"], st, gr.skip(), "", gr.skip(), gr.skip(), gr.skip(), gr.skip()

        def on_stop(st: dict):
            """Ask the running turn to stop after its current step; show that at once."""
            sid = st.get("sid") or st["thread"]
            flag, turn = backend.stops.get(sid), backend.turns.get(sid)
            if flag is None or turn is None:
                return gr.skip(), "Nothing is running."
            flag.set()
            preview = [dict(m, metadata=dict(m["metadata"])) if "metadata" in m else m for m in turn.messages]
            for m in preview:
                if m.get("metadata", {}).get("status") == "pending":
                    m["metadata"]["log"] = "stopping after this step"
            return list(st["messages"]) + preview, "Stopping after the current step …"

        def show_answer(i, st: dict):
            if i is None or not st["answers"] or not (0 <= int(i) < len(st["answers"])):
                return gr.skip()
            return json.dumps(st["answers"][int(i)], indent=2, ensure_ascii=False)

        def on_attach(file, text: str):
            if file is None:
                return gr.skip(), ""
            path = file if isinstance(file, str) else getattr(file, "name", None) or file.get("path")
            try:
                body = read_attachment(path)
                merged = ((text or "").rstrip() + "\n\n" + body.strip()).strip() if text else body.strip()
                if len(merged) > MAX_QUESTION_CHARS:
                    raise InputError(
                        f"{Path(path).name} is {len(body):,} characters; with your question that passes the {MAX_QUESTION_CHARS:,}-character limit.",
                        "Attach a shorter excerpt (the sentences you want to study).",
                    )
                return merged, f"Attached {Path(path).name} ({len(body):,} characters) to your question."
            except GnothiError as e:
                return gr.skip(), error_text(e)

        def on_new(st: dict):
            old = st.get("sid") or st["thread"]
            flag = backend.stops.get(old)
            if flag is not None:
                flag.set()  # a running turn stops after its current step; its reply is dropped
                backend.dropped.add(old)
            st = fresh_state() | {"llm": st.get("llm", {}), "sae": st.get("sae")}
            return [], st, thread_line(st), gr.update(choices=[], value=None), "", []

        def list_threads(st: dict):
            try:
                a = backend.assistant(st.get("llm") or None, st.get("sae"), st.get("model"))
                ts = a.threads()
            except GnothiError as e:
                return gr.update(choices=[], value=None), error_text(e)
            except Exception as e:
                traceback.print_exc()
                return gr.update(choices=[], value=None), error_text(e)
            choices = []
            for t in ts:
                if isinstance(t, dict):
                    tid = t.get("thread") or t.get("id")
                    label = f"{tid}: {t.get('title') or t.get('first_question') or ''}"[:90]
                    choices.append((label, tid))
                else:
                    choices.append((str(t), str(t)))
            return gr.update(choices=choices, value=None), f"{len(choices)} stored conversation(s). Pick one and press Open to continue it."

        def on_open_thread(tid, st: dict):
            if not tid:
                return gr.skip(), st, "Pick a conversation first."
            try:
                a = backend.assistant(st.get("llm") or None, st.get("sae"), st.get("model"))
                msgs = history_to_messages(a.history(tid))
            except GnothiError as e:
                return gr.skip(), st, error_text(e)
            except Exception as e:
                traceback.print_exc()
                return gr.skip(), st, error_text(e)
            st = dict(st) | {"thread": tid, "messages": msgs}
            return msgs, st, thread_line(st) + " (reopened: follow-ups continue it)"

        def on_load_model(kind: str, value: str, st: dict):
            st = dict(st)
            try:
                name, h = backend.set_model(kind, value)
            except GnothiError as e:
                return model_line(st), error_text(e), st, gr.skip()
            except Exception as e:
                traceback.print_exc()
                return model_line(st), error_text(e), st, gr.skip()
            st["model"] = name
            st["sae"] = None  # an SAE is made for one model
            return model_line(st), "Model loaded for this session.", st, store_status_text(h)

        def on_sae(folder: str, st: dict):
            st = dict(st)
            try:
                info = check_sae_folder(folder)  # no pickles, cfg.json + safetensors present
                info = load_and_fit_sae(info["folder"], backend.handle(st.get("model")))
            except GnothiError as e:
                return error_text(e), st
            except Exception as e:
                traceback.print_exc()
                return error_text(e), st
            st["sae"] = info["folder"]
            return ("**SAE in use for this session**: feature questions now answer with it. "
                    + ", ".join(f"{k} {v}" for k, v in info.items() if v is not None)), st

        def on_llm_test(url: str, model_name: str, key: str):
            try:
                r = check_llm_connection(url, model_name, key)
            except GnothiError as e:
                return error_text(e)
            return f"**Connected** in {r['seconds']} s: model `{r['model']}` answered {r['sample']!r}. Models: {', '.join(r['models'][:6])}"

        def on_llm_apply(url: str, model_name: str, key: str, st: dict):
            st = dict(st)
            try:
                r = check_llm_connection(url, model_name, key)
            except GnothiError as e:
                return error_text(e) + "\n\nThe session stays offline.", st
            st["llm"] = {"base_url": url.strip(), "model": r["model"], "api_key": key or ""}
            return f"**Connected.** This session now plans and writes with `{r['model']}` at {url.strip()} (falls back to offline if its output is invalid).", st

        def on_llm_off(st: dict):
            st = dict(st) | {"llm": {}}
            return "Planner and writer: offline (no LLM).", st

        def on_store_refresh(st: dict):
            try:
                return store_status_text(backend.handle(st.get("model")))
            except GnothiError as e:
                return error_text(e)

        def on_store_build(n_tok, st: dict):
            """Run the build in a worker thread; yield progress; Cancel stops it after the chunk in progress."""
            try:
                h = backend.handle(st.get("model"))
            except GnothiError as e:
                yield error_text(e), 0
                return
            stop_flag = backend.store_stop = threading.Event()
            q: queue.Queue = queue.Queue()

            def cb(frac, text=""):
                if stop_flag.is_set():
                    raise Cancelled()
                q.put(("progress", float(frac), str(text)))

            def work():
                try:
                    r = run_store_build(h, cb, n_tokens=int(n_tok) if n_tok else None)
                    q.put(("done", r, ""))
                except Cancelled:
                    q.put(("cancelled", None, ""))
                except BaseException as e:  # noqa: BLE001 - reported in the UI
                    q.put(("error", e, ""))

            th = threading.Thread(target=work, daemon=True, name="gnothi-store-build")
            th.start()
            pct = 0.0
            try:
                yield "Building the activation store … " + store_status_text(h), 0
                while True:
                    try:
                        kind, val, text = q.get(timeout=0.5)
                    except queue.Empty:
                        if stop_flag.is_set():
                            yield f"Cancelling after the chunk in progress … ({pct:.0f}% done)", round(pct, 1)
                        continue
                    if kind == "progress":
                        pct = 100 * max(0.0, min(1.0, val if val <= 1 else val / 100))
                        yield f"Building the activation store … {pct:.0f}% {text}", round(pct, 1)
                    elif kind == "done":
                        rep = val.to_tool_result().summary if hasattr(val, "to_tool_result") else "Built."
                        yield f"{rep}\n\n" + store_status_text(h), 100
                        return
                    elif kind == "cancelled":
                        yield f"Build cancelled at {pct:.0f}%; pressing Build again resumes from there.\n\n" + store_status_text(h), round(pct, 1)
                        return
                    else:
                        if not isinstance(val, GnothiError):
                            print("".join(traceback.format_exception(val)), file=sys.stderr)
                        yield error_text(val), round(pct, 1)
                        return
            finally:
                stop_flag.set()  # finished, or the page went away: the worker stops at its next report

        def last_answer(st: dict):
            from gnothi.agents.types import Answer

            return Answer.model_validate(st["answers"][-1]) if st.get("answers") else None

        def show_figures(st: dict):
            """The last answer's figures as interactive plots, large, with the prompt's tokens on their axes."""
            from gnothi.tools.results import render_plotly

            ans = last_answer(st)
            figs = [f for f in answer_figures(ans) if f.kind != "tokens"] if ans is not None else []  # token rows: highlighted text
            plots = []
            for i in range(N_FIGURES):
                if i < len(figs):
                    try:
                        plots.append(gr.update(value=render_plotly(figs[i]), visible=True))
                        continue
                    except Exception:  # a figure that cannot be drawn is left out, never the reply
                        traceback.print_exc()
                plots.append(gr.update(value=None, visible=False))
            note = (f"{len(figs)} figure{'s' if len(figs) != 1 else ''} of the last answer" + (f" (first {N_FIGURES} shown)" if len(figs) > N_FIGURES else "")
                    + "; hover for values.") if figs else "The last answer has no figures."
            return [note, *plots]

        def show_next(st: dict):
            """The follow-up buttons of the last answer, and a fix button when it lacked the activation store."""
            ans = last_answer(st)
            sugs = list(ans.suggestions) if ans is not None else []
            ups = [gr.update(value=sugs[i], visible=True) if i < len(sugs) else gr.update(value="", visible=False) for i in range(N_SUGGESTIONS)]
            codes = missing_builds(ans)
            label = ("Build the activation store now, then ask again" if "store_error" in codes
                     else "Train and index an SAE now, then ask again" if "sae_not_found" in codes else None)
            fix = gr.update(value=label, visible=True) if label else gr.update(visible=False)
            return [*ups, fix]

        def on_sae_build(st: dict):
            """Train the default SAE if there is none, then index its features (explanations to search by meaning),
            in a worker thread; yield the elapsed time beside the estimate."""
            from gnothi.tools.errors import SAENotFoundError
            from gnothi.tools.features import estimate_index_seconds, index_features
            from gnothi.tools.sae import default_sae, human_seconds, resolve_sae
            from gnothi.tools.sae_train import TrainConfig, estimate_train_seconds, train_sae

            try:
                h = backend.handle(st.get("model"))
                try:
                    sae = resolve_sae(h, st.get("sae")) if st.get("sae") else default_sae(h)
                    cfg = None
                except SAENotFoundError:
                    sae, cfg = None, TrainConfig(layer=max(1, h.n_layers // 5), window=min(TrainConfig.model_fields["window"].default, h.shape.n_ctx))
            except GnothiError as e:
                yield error_text(e), 0
                return
            est = (estimate_train_seconds(h, cfg) if cfg else 0.0)
            what = f"Training an SAE at layer {cfg.layer}, then indexing its features" if cfg else f"Indexing the features of SAE {sae.name}"
            q: queue.Queue = queue.Queue()

            def work():
                try:
                    s = train_sae(h, cfg, progress=False).sae if cfg else sae
                    q.put(("indexing", s))
                    q.put(("done", index_features(h, s, progress=False)))
                except BaseException as e:  # noqa: BLE001 - reported in the UI
                    q.put(("error", e))

            threading.Thread(target=work, daemon=True, name="gnothi-sae-build").start()
            t0 = time.time()
            stage = what
            while True:
                try:
                    kind, val = q.get(timeout=1.0)
                except queue.Empty:
                    yield f"{stage} … {human_seconds(time.time() - t0)} so far" + (f" (training about {human_seconds(est)})" if cfg else ""), 0
                    continue
                if kind == "indexing":
                    stage = f"Indexing the features of SAE {val.name} (about {human_seconds(estimate_index_seconds(h, val))})"
                elif kind == "done":
                    yield val.to_tool_result(h).summary, 100
                    return
                else:
                    if not isinstance(val, GnothiError):
                        print("".join(traceback.format_exception(val)), file=sys.stderr)
                    yield error_text(val), 0
                    return

        def on_fix(st: dict, n_tok):
            """Build what the last answer lacked: the activation store, or an SAE and its feature index."""
            ans = last_answer(st)
            codes = missing_builds(ans)
            if "store_error" in codes:
                yield from on_store_build(n_tok, st)
            elif "sae_not_found" in codes:
                yield from on_sae_build(st)

        def last_question(st: dict):
            return st["answers"][-1]["question"] if st.get("answers") else gr.skip()

        # ================================================================ wiring
        model_events = dict(concurrency_id="model", concurrency_limit=1)
        demo.load(init_session, inputs=[state], outputs=[state, thread_md, model_md, store_md])
        outs = [chatbot, state, question, notice, answer_json, answer_pick, highlights, thread_md]
        after = [(show_figures, [state], [figs_md, *fig_plots]), (show_next, [state], [*sug_btns, fix_btn])]

        def then_after(ev):
            for fn, ins, outs_ in after:
                ev = ev.then(fn, ins, outs_, queue=False)
            return ev.then(None, None, None, js=SCROLL_JS)

        then_after(send.click(respond, [question, state], outs, **model_events, show_progress="minimal"))
        then_after(question.submit(respond, [question, state], outs, **model_events, show_progress="minimal"))
        then_after(capabilities.click(lambda: WHAT_CAN_YOU_DO, None, question).then(respond, [question, state], outs, **model_events, show_progress="minimal"))
        for b in sug_btns:  # a follow-up button asks its question
            then_after(b.click(lambda text: text, b, question, queue=False).then(respond, [question, state], outs, **model_events, show_progress="minimal"))
        # the fix button: build what the last answer lacked (the activation store), then ask that question again
        then_after(fix_btn.click(lambda: gr.update(visible=False), None, fix_btn, queue=False)
                   .then(on_fix, [state, store_tokens], [notice, store_bar], **model_events)
                   .then(on_store_refresh, [state], store_md, queue=False)
                   .then(last_question, [state], question, queue=False)
                   .then(respond, [question, state], outs, **model_events, show_progress="minimal"))
        stop.click(on_stop, [state], [chatbot, notice], queue=False)
        answer_pick.change(show_answer, [answer_pick, state], answer_json)
        attach.upload(on_attach, [attach, question], [question, notice])
        new_conv.click(on_new, [state], [chatbot, state, thread_md, answer_pick, answer_json, highlights], queue=False)
        refresh_threads.click(list_threads, [state], [threads, threads_md])
        open_thread.click(on_open_thread, [threads, state], [chatbot, state, thread_md])
        load_model.click(on_load_model, [model_kind, model_value, state], [model_md, notice, state, store_md], **model_events)
        sae_btn.click(on_sae, [sae_dir, state], [sae_md, state])
        llm_test.click(on_llm_test, [llm_url, llm_model, llm_key], llm_md)
        llm_apply.click(on_llm_apply, [llm_url, llm_model, llm_key, state], [llm_md, state])
        llm_off.click(on_llm_off, [state], [llm_md, state])
        store_refresh.click(on_store_refresh, [state], store_md)
        store_build.click(on_store_build, [store_tokens, state], [store_md, store_bar], **model_events)
        def on_store_cancel():
            backend.store_stop.set()
            return "Cancelling after the chunk in progress …"

        store_cancel.click(on_store_cancel, None, store_md, queue=False)

    demo.queue(default_concurrency_limit=4)
    demo.gnothi_backend = backend
    return demo


def launch(demo, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True, quiet: bool = False):
    """Start the app's server. With ``block=False`` it runs in a thread; returns the local URL."""
    backend: Backend = demo.gnothi_backend
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        allowed_paths=[str(backend.fig_dir)],
        max_file_size=MAX_FILE_SIZE,
        quiet=quiet,
        show_error=True,
        css=CSS,
        js=ENTER_JS,
        footer_links=["api"],
    )
    return url
