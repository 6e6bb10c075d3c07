"""Patching on the bundled SmolLM2-135M-Instruct: a factual prompt, its layer profile, tracing.

Run with ``-s`` to see the recorded layer profile (the README quotes it).
"""

from __future__ import annotations

import json

import pytest

from gnothi.tools.attention import attention_view
from gnothi.tools.patching import causal_trace, patch

pytestmark = pytest.mark.integration

CLEAN = "The capital of France is"
CORR = "The capital of Italy is"


@pytest.fixture(scope="module")
def report(bundled):
    return patch(bundled, CLEAN, CORR, " Paris", " Rome", mode="both")


def test_factual_prompt_prefers_the_true_answer(report):
    assert report.clean_metric > 0  # ' Paris' over ' Rome' after "France"
    assert report.corrupted_metric < 0  # ' Rome' over ' Paris' after "Italy"
    assert report.prompts.changed_positions == [4]


def test_layer_profile(report):
    lp = report.layer_profile
    subj, last = lp["resid_at_changed_token"], lp["resid_at_last_token"]
    print("\nlayer profile (normalized effect of the residual stream entering each layer):")
    print("  at ' France':   " + " ".join(f"{v:.2f}" for v in subj))
    print("  at last token:  " + " ".join(f"{v:.2f}" for v in last))
    print("  attention out:  " + " ".join(f"{v:.2f}" for v in lp["attn"]))
    print("  MLP out:        " + " ".join(f"{v:.2f}" for v in lp["mlp"]))
    print(f"  handoff layer {lp['handoff_layer']}, top head {lp['top_head']}, top components:")
    for c in report.top_components:
        print(f"    {c.effect:+.3f} {c.name}")
    print("  attribution vs exact r:", {k: round(e.correlation, 3) for k, e in report.effects.items()})
    print("  timings:", report.timings, "runs:", report.n_patched_runs)
    # identity: the changed token's stream entering layer 0 carries everything
    assert subj[0] == pytest.approx(1.0, abs=1e-3)
    # the subject's information sits at ' France' early and at the last token late, with a handoff between
    h = lp["handoff_layer"]
    assert h is not None and 0 < h < report.n_layers
    assert subj[h - 1] > 0.8 and last[h - 1] < 0.2
    assert last[h] > 0.8 and subj[h] < 0.2
    # some attention output moves it: the largest attention effect sits at or just before the handoff
    top_attn = lp["top_attn_layer"]
    assert h - 3 <= top_attn < h + 1 and lp["attn"][top_attn] > 0.5
    # attribution patching agrees with the exact sweep on this prompt
    for k, e in report.effects.items():
        assert e.correlation is not None and e.correlation > 0.8, k


def test_top_head_reads_the_subject(bundled, report):
    layer, head = map(int, report.layer_profile["top_head"].split("."))
    v = attention_view(bundled, CLEAN, heads=[f"{layer}.{head}"])
    top = v.heads[0].last_token_top[0]
    print(f"\nhead {layer}.{head}: last token attends to {top.token!r} with weight {top.weight:.2f}")
    assert top.token == " France"


def test_cli_json_and_automatic_corruption(bundled, capsys):
    from gnothi.ui import cli

    rc = cli.main(["patch", "--clean", CLEAN, "--answer", " Paris", "--alternative", " Rome", "--mode", "attribution", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("clean_metric", "corrupted_metric", "effects", "top_components"):
        assert key in d
    assert d["prompts"]["auto"] and "France" in d["prompts"]["note"]
    assert d["clean_metric"] > 0 > d["corrupted_metric"]


def test_causal_trace_of_a_fact(bundled):
    r = causal_trace(bundled, CLEAN, " Paris", samples=2, kinds=["resid"])
    print("\n" + r.summary(), r.timings)
    assert r.subject == "France" and r.subject_positions == [4]
    assert r.p_clean > 0.3 and r.p_corrupted < r.p_clean / 3
    g = r.grids["resid"]
    # restoring the subject token's state in early layers, or the last token's in late ones, brings the answer back
    assert max(row[4] for row in g[:5]) > r.p_corrupted + 0.5 * (r.p_clean - r.p_corrupted)
    assert g[-1][-1] == pytest.approx(r.p_clean, abs=1e-3)
    assert r.peaks["resid"].effect > 0.8
