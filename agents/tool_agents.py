"""The tool agents the planners route to, each with an argument schema, a routing
description, a run on the ModelHandle and a rendering of its result.

Agents (names are part of the contract): ``neuron_explainer``, ``sae_feature_search``,
``probing``, ``activation_patching``, ``hallucination_detector`` and ``help``.

A tool agent calls the real function in ``gnothi.tools``. When that tool is not installed
in this checkout the agent says so (:class:`ToolUnavailableError`); it never invents a
result. Every failure becomes a ``ToolResult(ok=False, error=...)`` with a message and a
fix, never a traceback.
"""

from __future__ import annotations

import importlib
import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from gnothi.tools.errors import GnothiError, InputError, OutOfRangeError, ToolUnavailableError, check_range
from gnothi.tools.results import ToolResult, provenance

MAX_TEXT = 4000  # characters of any one prompt handed to a tool


def _text(v: Any, what: str) -> str | None:
    if v is None:
        return None
    v = str(v)
    if not v.strip():
        return None
    if len(v) > MAX_TEXT:
        raise ValueError(f"{what} is {len(v)} characters long; the limit is {MAX_TEXT}")
    return v


# ----------------------------------------------------------------------------- argument schemas


class NeuronArgs(BaseModel):
    """Explain an MLP neuron (``layer``, ``neuron``), or find the neurons that push a ``token``."""

    layer: int | None = Field(None, description="layer index (0-based)")
    neuron: int | None = Field(None, description="neuron index within the layer's MLP (0-based)")
    token: str | None = Field(None, description="a token: find the neurons most active on it")
    text: str | None = Field(None, description="a text containing the token (default: the token alone)")
    k: int = Field(5, ge=1, le=50, description="how many top examples or neurons")

    @field_validator("token", "text")
    @classmethod
    def _tok(cls, v, info):
        return _text(v, info.field_name)


class SAEArgs(BaseModel):
    """Search SAE features by meaning (``query``), look at one ``feature``, or the features active on a ``text``."""

    query: str | None = Field(None, description="what the feature should be about, in words")
    feature: int | None = Field(None, description="an SAE feature index")
    text: str | None = Field(None, description="a text whose active features to list")
    layer: int | None = Field(None, description="layer of the SAE (default: the tool's default SAE)")
    k: int = Field(5, ge=1, le=50)

    @field_validator("query", "text")
    @classmethod
    def _t(cls, v, info):
        return _text(v, info.field_name)


class ProbeArgs(BaseModel):
    """Train linear probes layer by layer: which layers know a property of the input."""

    dataset: str | None = Field(None, description="a probing dataset name (e.g. truth, sentiment)")
    layers: list[int] | None = Field(None, description="layers to probe (default: all)")
    position: Literal["last", "mean"] = "last"


class PatchArgs(BaseModel):
    """Activation patching / causal tracing between a clean and a corrupted prompt."""

    clean: str | None = Field(None, description="the clean prompt")
    corrupted: str | None = Field(None, description="the corrupted prompt (None: the tool corrupts the subject with noise)")
    answer: str | None = Field(None, description="the answer token the clean prompt should produce")
    alternative: str | None = Field(None, description="the competing answer (the corrupted prompt's answer)")
    mode: Literal["all", "resid", "attn", "mlp", "heads", "trace"] = Field(
        "all", description="components to patch (all, resid, attn, mlp, heads), or trace: causal tracing with a noised subject"
    )

    @field_validator("clean", "corrupted", "answer", "alternative")
    @classmethod
    def _t(cls, v, info):
        return _text(v, info.field_name)


class HalluArgs(BaseModel):
    """Is the model making it up? Score a question (and optionally an answer and a context)."""

    question: str | None = Field(None, description="the question put to the model")
    answer: str | None = Field(None, description="an answer to check (None: the model's own answer)")
    context: str | None = Field(None, description="a passage the answer should be grounded in")

    @field_validator("question", "answer", "context")
    @classmethod
    def _t(cls, v, info):
        return _text(v, info.field_name)


class HelpArgs(BaseModel):
    reason: Literal["greeting", "capabilities", "off_topic", "injection", "empty", "too_long"] = "capabilities"


# ----------------------------------------------------------------------------- helpers


def _call(module: str, names: list[str], handle, **kwargs):
    """Call the first of ``names`` found in ``gnothi.tools.<module>``, passing only the kwargs it takes."""
    try:
        mod = importlib.import_module(f"gnothi.tools.{module}")
    except ModuleNotFoundError as e:
        if e.name and (e.name == f"gnothi.tools.{module}" or e.name.startswith("gnothi.tools.")):
            raise ToolUnavailableError(
                f"The {module} tool is not installed in this version of gnothi.",
                "Update gnothi, or ask about something another tool covers (say 'help').",
            ) from None
        raise
    fn = next((getattr(mod, n) for n in names if callable(getattr(mod, n, None))), None)
    if fn is None:
        raise ToolUnavailableError(
            f"The {module} tool has none of {', '.join(names)}.",
            "Update gnothi; the tool's interface has changed.",
        )
    sig = inspect.signature(fn)
    accepts_var = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    kw = {k: v for k, v in kwargs.items() if v is not None and (accepts_var or k in sig.parameters)}
    return fn(handle, **kw)


def as_tool_result(report: Any, tool: str) -> ToolResult:
    if isinstance(report, ToolResult):
        tr = report
    elif hasattr(report, "to_tool_result"):
        tr = report.to_tool_result()
    else:
        raise TypeError(f"tool {tool} returned {type(report).__name__}, not a report")
    if tr.tool != tool:
        tr = tr.model_copy(update={"data": {**tr.data, "tool_name": tr.tool}, "tool": tool})
    return tr


def error_result(tool: str, err: GnothiError, handle=None) -> ToolResult:
    return ToolResult(
        tool=tool,
        ok=False,
        summary=err.message,
        error=err.to_dict(),
        provenance=provenance(handle) if handle is not None else {},
    )


# ----------------------------------------------------------------------------- runners


def run_neuron(handle, a: NeuronArgs, llm=None) -> ToolResult:
    if a.neuron is None and a.token:
        return as_tool_result(
            _call("neurons", ["top_neurons_for_token"], handle, text=a.text or a.token, token=a.token, k=a.k, layer=a.layer), "neuron_explainer"
        )
    if a.layer == -1:  # "the last layer"
        a = a.model_copy(update={"layer": handle.n_layers - 1})
    if a.layer is None or a.neuron is None:
        raise InputError("Which neuron? I need a layer and a neuron index.", "Say e.g. 'what does neuron 340 in layer 7 do?' (or 'L7 N340', '7.340').")
    check_range("layer", a.layer, handle.n_layers)
    check_range("neuron", a.neuron, handle.d_mlp)
    try:  # a dedicated neuron tool, when installed
        return as_tool_result(
            _call("neurons", ["explain_neuron"], handle, layer=a.layer, neuron=a.neuron, llm=llm, k=a.k), "neuron_explainer"
        )
    except ToolUnavailableError:
        pass
    # the activation store + explain/simulate/score pipeline
    try:
        store_mod = importlib.import_module("gnothi.tools.store")
        explain_mod = importlib.import_module("gnothi.tools.explain")
    except ModuleNotFoundError:
        raise ToolUnavailableError("The neuron explainer is not installed in this version of gnothi.", "Update gnothi.") from None
    store = store_mod.open_store(handle, "mlp")  # StoreError (with the build command) when there is none
    explainer = llm if llm is not None else "offline"
    rep = explain_mod.explain_unit(store, a.layer, a.neuron, explainer=explainer, simulator="offline", n_contexts=max(a.k, 5))
    tr = rep.to_tool_result(tool="neuron_explainer", handle=handle)
    return as_tool_result(tr, "neuron_explainer")


def run_sae(handle, a: SAEArgs, llm=None) -> ToolResult:
    if a.layer is not None:
        check_range("layer", a.layer, handle.n_layers)
    if a.text and a.feature is None and not a.query:
        return as_tool_result(_call("features", ["features_on_text"], handle, text=a.text, k=a.k, layer=a.layer), "sae_feature_search")
    if a.feature is not None and not a.query:
        if a.feature < 0:
            raise OutOfRangeError(f"feature {a.feature} is negative.", "Use a feature index from 0 up.")
        return as_tool_result(
            _call("features", ["explain_feature", "feature_report", "describe_feature"], handle, feature=a.feature, k=a.k, layer=a.layer, llm=llm),
            "sae_feature_search",
        )
    if not a.query:
        raise InputError("What should the features be about?", "Say e.g. 'find features about French' or quote a text: 'which features fire on \"...\"'.")
    return as_tool_result(_call("features", ["search_features"], handle, query=a.query, k=a.k, layer=a.layer), "sae_feature_search")


def run_probe(handle, a: ProbeArgs, llm=None) -> ToolResult:
    for layer in a.layers or []:
        check_range("layer", layer, handle.n_layers)
    if not a.dataset:
        names = _dataset_names()
        raise InputError(
            "Which property should the probes look for?",
            "Name a dataset" + (f": {', '.join(names)}." if names else ", e.g. 'which layers know if a statement is true?'."),
        )
    return as_tool_result(_call("probing", ["run_probe", "probe"], handle, dataset=a.dataset, layers=a.layers, position=a.position), "probing")


def _dataset_names() -> list[str]:
    """The probing tool's built-in dataset names ([] when the tool is not installed)."""
    try:
        mod = importlib.import_module("gnothi.tools.datasets")
    except Exception:
        return []
    try:
        if hasattr(mod, "dataset_names"):
            return list(mod.dataset_names())
        return [d["name"] if isinstance(d, dict) else getattr(d, "name", str(d)) for d in mod.list_datasets()]
    except Exception:
        return []


def run_patch(handle, a: PatchArgs, llm=None) -> ToolResult:
    if not a.clean:
        raise InputError(
            "Patching needs a prompt to explain.",
            'Quote the prompt and, if you can, a corrupted one: patch "The capital of France is" vs "The capital of Italy is".',
        )
    if a.mode == "trace":
        return as_tool_result(_call("patching", ["causal_trace"], handle, prompt=a.clean, answer=a.answer), "activation_patching")
    kinds = None if a.mode == "all" else [a.mode]
    return as_tool_result(
        _call("patching", ["patch"], handle, clean=a.clean, corrupted=a.corrupted, answer=a.answer, alternative=a.alternative, kinds=kinds),
        "activation_patching",
    )


def run_hallu(handle, a: HalluArgs, llm=None) -> ToolResult:
    if not a.question:
        raise InputError("Which question and answer should I check?", 'Quote them: is the model making it up on "Who wrote Hamlet?" answer "Dickens"?')
    return as_tool_result(
        _call("hallucination", ["detect"], handle, question=a.question, answer=a.answer, context=a.context), "hallucination_detector"
    )


HELP_TEXT = {
    "greeting": "Hello! I look inside the language model and answer with measurements.",
    "capabilities": "I can look inside the model and answer with measurements.",
    "off_topic": "That is outside what I do: I only answer questions about this language model's insides.",
    "injection": "I won't follow instructions embedded in a question; I only run the measurement tools below.",
    "empty": "The question was empty.",
    "too_long": "The question is too long for me to plan from.",
}


def run_help(handle, a: HelpArgs, llm=None) -> ToolResult:
    lines = [f"- {ag.name}: {ag.description} e.g. \"{ag.examples[0]}\"" for ag in AGENTS.values() if ag.name != "help"]
    return ToolResult(
        tool="help",
        ok=True,
        summary=HELP_TEXT[a.reason],
        evidence=[{"tool": ag.name, "what": ag.description, "example": ag.examples[0]} for ag in AGENTS.values() if ag.name != "help"],
        data={"reason": a.reason, "tools": "\n".join(lines)},
        provenance={"model": getattr(handle, "name", None)} if handle is not None else {},
    )


# ----------------------------------------------------------------------------- registry


@dataclass
class ToolAgent:
    name: str
    description: str  # used for routing (embedded) and shown to LLM planners
    args_schema: type[BaseModel]
    run_fn: Callable[[Any, BaseModel, Any], ToolResult]
    examples: list[str] = field(default_factory=list)  # routing examples
    needs_model: bool = True

    def validate(self, args: dict[str, Any]) -> BaseModel:
        return self.args_schema.model_validate(args or {})

    def run(self, handle, args: dict[str, Any], llm=None) -> ToolResult:
        """Validate ``args``, run, and return a ToolResult (``ok=False`` with an error on failure)."""
        t0 = time.perf_counter()
        try:
            a = self.validate(args)
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'args'}: {err['msg']}" for err in e.errors()[:3])
            return error_result(self.name, InputError(f"Bad arguments for {self.name}: {msgs}.", "Rephrase the question with valid values."), handle)
        try:
            tr = self.run_fn(handle, a, llm)
        except GnothiError as e:
            tr = error_result(self.name, e, handle)
        tr.timings.setdefault("total_s", round(time.perf_counter() - t0, 4))
        return tr

    def render(self, result: ToolResult) -> str:
        """Markdown rendering of one result (used by the offline writer and the CLI)."""
        from .writer import render_result

        return render_result(result)

    def openai_tool(self) -> dict:
        schema = self.args_schema.model_json_schema()
        schema.pop("title", None)
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": schema}}


AGENTS: dict[str, ToolAgent] = {}


def register(agent: ToolAgent) -> ToolAgent:
    if agent.name in AGENTS:
        raise ValueError(f"tool agent {agent.name!r} is registered twice")
    AGENTS[agent.name] = agent
    return agent


register(ToolAgent(
    "neuron_explainer",
    "Explain what a single MLP neuron (layer and index) responds to, with its top activating contexts and an explanation score; or find the neurons that promote a token.",
    NeuronArgs, run_neuron,
    examples=[
        "what does neuron 340 in layer 7 respond to?",
        "explain L7 N340",
        "what is neuron 12.345 doing",
        "describe the behaviour of this MLP neuron",
        "which neurons fire for this token?",
        "show the top activating examples of a neuron",
        "what concept does this unit detect",
        "interpret neuron 5 of layer 2",
        "what makes this neuron activate",
        "which neurons promote this word",
    ],
))
register(ToolAgent(
    "sae_feature_search",
    "Search sparse autoencoder (SAE) features by meaning, describe one SAE feature, or list the features active on a text.",
    SAEArgs, run_sae,
    examples=[
        "find SAE features about French",
        "are there features for programming code?",
        "search the sparse autoencoder for a feature about emotions",
        "which features fire on this text",
        "what does SAE feature 1234 represent",
        "is there a feature that detects questions",
        "find latents related to numbers",
        "show me the dictionary features for negation",
        "which sparse features are active on this sentence",
        "look for a feature about the Bible",
    ],
))
register(ToolAgent(
    "probing",
    "Train linear probes on each layer's activations to find which layers encode a property (truth, sentiment, part of speech, ...).",
    ProbeArgs, run_probe,
    examples=[
        "which layers know whether a statement is true?",
        "probe the layers for sentiment",
        "where does the model represent truthfulness",
        "train a linear probe for positive vs negative reviews",
        "at which layer can you decode the language of the text",
        "does the model linearly encode whether a sentence is a question",
        "probe layers 3 to 7 for truth",
        "how early in the network is sentiment represented",
        "linear probe accuracy per layer",
        "in which layer does it know the answer is false",
    ],
))
register(ToolAgent(
    "activation_patching",
    "Activation patching and causal tracing: find which layers, positions, heads or MLPs cause the model's answer by patching between a clean and a corrupted prompt.",
    PatchArgs, run_patch,
    examples=[
        "why did the model give this answer?",
        "why does the model think that?",
        "which layers are responsible for predicting this word",
        "patch the clean prompt into the corrupted one",
        "causal tracing on this prompt",
        "where in the network is this fact stored",
        "activation patching between these two prompts",
        "which attention heads matter for this answer",
        "what component causes the model to say this",
        "trace the information flow for the answer",
        "compare the clean and corrupted runs layer by layer",
    ],
))
register(ToolAgent(
    "hallucination_detector",
    "Detect whether the model is making an answer up (hallucinating) from its internal signals: confidence, consistency and a probe score.",
    HalluArgs, run_hallu,
    examples=[
        "is the model making this up?",
        "is this answer a hallucination",
        "does the model know the answer to this question or is it guessing",
        "check whether the answer is grounded in the context",
        "how confident is the model in its answer",
        "is it lying to me",
        "is what the model said true, or did it invent it",
        "can I rely on this answer from the model",
        "detect hallucination in this response",
        "can I trust what the model said",
        "is the model confabulating",
        "is this fact made up",
    ],
))
register(ToolAgent(
    "help",
    "Greetings, what the assistant can do, and how to ask; also the answer to off-topic requests.",
    HelpArgs, run_help,
    examples=[
        "hi",
        "hello there",
        "what can you do?",
        "help",
        "how do I use this",
        "what tools do you have",
        "who are you",
        "thanks!",
    ],
    needs_model=False,
))

TOOL_NAMES = [n for n in AGENTS]


def get_agent(name: str) -> ToolAgent | None:
    return AGENTS.get(name)
