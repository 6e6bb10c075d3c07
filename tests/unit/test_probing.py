"""Linear probes on a tiny model: a planted linear feature is found with high selectivity,
an absent one is not, the word-type control catches memorisation, probes round-trip
through disk, and bad input gets a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gnothi.tools.datasets import Example, LabeledDataset
from gnothi.tools.errors import CacheCorruptError, InputError, OutOfRangeError
from gnothi.tools.probing import (
    collect_features,
    get_or_train_probe,
    list_saved_probes,
    load_probe,
    parse_layers,
    run_probe,
    split_indices,
    wilson_interval,
)
from gnothi.tools.testing import WORDS, tiny_handle

PREFIXES = ["the cat is", "a big dog saw", "we like", "she said the"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GNOTHI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def planted():
    """A tiny model where half of the content words carry a shared direction in their
    embedding (the planted feature), and the labels of that split."""
    h = tiny_handle(name="tiny-probe-planted")
    words = sorted({w for w in WORDS if w.isalpha()} - {"the", "a", "is"})
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(words))
    in_a = {words[i] for i in perm[: len(words) // 2]}
    g = torch.Generator().manual_seed(1)
    u = torch.randn(h.d_model, generator=g)
    u /= u.norm()
    W_E = h.W_E()
    with torch.no_grad():
        strength = 2.0 * W_E.norm(dim=1).mean()
        for w in in_a:
            W_E[h.token_id(w)] += strength * u
    # a second partition of the same words that no direction encodes
    perm2 = np.random.default_rng(1).permutation(len(words))
    in_b = {words[i] for i in perm2[: len(words) // 2]}
    return h, words, in_a, in_b


def _word_dataset(name, words, positive, per_example_groups=False):
    exs = [
        Example(text=f"{p} {w}", label=int(w in positive), group=f"{w}|{p}" if per_example_groups else w, control_key=w)
        for w in words
        for p in PREFIXES
    ]
    return LabeledDataset(name=name, description="test", label_names=["no", "yes"], examples=exs)


def test_planted_feature_found_with_high_selectivity(planted):
    h, words, in_a, _ = planted
    rep = run_probe(h, _word_dataset("planted", words, in_a))
    assert rep.split == "grouped"  # held-out words were never seen in training
    best = rep.layer(rep.best_layer)
    assert best.accuracy >= 0.9, rep.layers
    assert best.ci_low >= 0.8
    assert best.selectivity >= 0.3, rep.layers
    assert abs(best.control_accuracy - 0.5) < 0.2  # unseen word types: the control is near chance
    tr = rep.to_tool_result()
    assert tr.headline["best_layer"] == rep.best_layer and f"{best.accuracy:.1%}" in tr.summary
    assert tr.summary.startswith("A linear probe separates no vs yes")
    assert tr.figures[0].kind == "line" and len(tr.figures[0].data["x"]) == h.n_layers
    json.dumps(tr.model_dump(mode="json"))


def test_absent_feature_not_found(planted):
    h, words, _, in_b = planted
    rep = run_probe(h, _word_dataset("absent", words, in_b), save=False)
    for lp in rep.layers:
        assert lp.accuracy < 0.72, rep.layers
        assert lp.selectivity < 0.2, rep.layers
        assert lp.ci_low < 0.5 + 0.1  # chance is inside or near the interval
    # a best layer whose interval reaches down to chance is reported as no reliable signal
    low = [lp.model_copy(update={"ci_low": min(lp.ci_low, rep.chance)}) for lp in rep.layers]
    assert rep.model_copy(update={"layers": low}).to_tool_result().summary.startswith("No layer")


def test_word_type_control_catches_memorisation():
    """Labels that are a random function of word identity, with words shared between
    train and test: the probe scores well by memorising words, and so does the control
    task (random labels per word type), so selectivity is low; shuffled labels cannot be
    memorised per word, so that control stays near chance."""
    h = tiny_handle(name="tiny-probe-memo")
    few = ["red", "blue", "green", "sun", "moon", "river", "tree", "king", "fire", "water"]
    with torch.no_grad():
        for w in few:  # make word identity dominate the last position's residual
            h.W_E()[h.token_id(w)] *= 4
    pos = {"red", "sun", "moon", "tree", "water"}
    prefixes = PREFIXES + ["the red", "they ate", "one more", "i see"]
    exs = [
        Example(text=f"{p} {w}", label=int(w in pos), group=f"{w}|{p}", control_key=w) for w in few for p in prefixes
    ]
    ds = LabeledDataset(name="memo", description="t", label_names=["no", "yes"], examples=exs)
    rep = run_probe(h, ds, save=False, test_frac=0.3, control="word_type")
    best = rep.layer(rep.best_layer)
    assert best.accuracy >= 0.85, rep.layers
    assert best.word_type_control_accuracy >= 0.75, rep.layers
    assert rep.control == "word_type" and best.selectivity <= 0.25, rep.layers
    assert best.shuffled_control_accuracy < 0.75, rep.layers


def test_features_match_direct_runs(planted):
    h = planted[0]
    texts = ["the cat", "a big dog saw the red car", "we like"]
    last = collect_features(h, texts, [0, 1], position="last", batch_size=2)
    mean = collect_features(h, texts, [1], position="mean")
    for i, t in enumerate(texts):
        toks = h.to_tokens(t)
        _, cache = h.run_with_cache(toks, [h.hook_name("resid_post", 0), h.hook_name("resid_post", 1)])
        r0, r1 = cache[h.hook_name("resid_post", 0)][0], cache[h.hook_name("resid_post", 1)][0]
        assert np.allclose(last[0, i], r0[-1].numpy(), atol=1e-5)
        assert np.allclose(last[1, i], r1[-1].numpy(), atol=1e-5)
        assert np.allclose(mean[0, i], r1[1:].mean(0).numpy(), atol=1e-5)  # BOS excluded


def test_saved_probe_round_trip_and_damage(planted, tmp_path):
    h, words, in_a, _ = planted
    rep = run_probe(h, _word_dataset("planted_rt", words, in_a), layers=[1])
    sp = load_probe(h.name, "planted_rt")
    assert sp.layers == [1] and sp.best_layer == 1 and sp.label_names == ["no", "yes"]
    texts = [f"we like {w}" for w in words]
    p = sp.scores_for_texts(h, texts)
    pred = (p > 0.5).astype(int)
    truth = np.array([int(w in in_a) for w in words])
    assert (pred == truth).mean() >= 0.9
    assert abs(np.linalg.norm(sp.direction()) - 1) < 1e-5
    with pytest.raises(OutOfRangeError):
        sp.direction(0)
    # damage the weights file: the loader says so instead of returning garbage
    st = next(iter(sorted((tmp_path / "cache").rglob("probe_last.safetensors"))))
    st.write_bytes(st.read_bytes()[:-8] + b"garbage!")
    with pytest.raises(CacheCorruptError):
        load_probe(h.name, "planted_rt")
    with pytest.raises(InputError, match="No saved"):
        load_probe(h.name, "planted_rt", position="mean")
    assert rep.saved_to and "probes" in rep.saved_to
    # damaged: get_or_train_probe trains it again; intact: it only loads
    again = get_or_train_probe(h, _word_dataset("planted_rt", words, in_a), layers=[1])
    assert again.layers == [1] and np.allclose(again.weight[1], sp.weight[1], atol=1e-6)
    assert get_or_train_probe(h, "planted_rt").info["created"] == again.info["created"]
    assert [s["dataset"] for s in list_saved_probes(h.name)] == ["planted_rt"]


def test_grouped_split_keeps_groups_apart():
    labels = [i % 2 for i in range(200)]
    groups = [f"g{i // 4}" for i in range(200)]
    tr, te, kind = split_indices(labels, groups, seed=0)
    assert kind == "grouped"
    assert not ({groups[i] for i in tr} & {groups[i] for i in te})
    assert 0.15 < len(te) / 200 < 0.35
    # too few groups: falls back to a stratified split and says so
    tr, te, kind = split_indices(labels, ["a" if i < 100 else "b" for i in range(200)], seed=0)
    assert kind == "stratified"


def test_wilson_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and abs(hi - 0.2775) < 1e-3  # z^2/(n+z^2)
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9


def test_parse_layers():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("0,2", 4) == [0, 2]
    assert parse_layers("1-3", 4) == [1, 2, 3]
    assert parse_layers("-1", 4) == [3]
    with pytest.raises(OutOfRangeError):
        parse_layers("7", 4)
    with pytest.raises(InputError):
        parse_layers("x", 4)
    with pytest.raises(InputError):
        parse_layers("3-1", 4)


def test_bad_input(planted, tmp_path):
    h = planted[0]
    one_class = LabeledDataset(name="one", description="t", label_names=["a", "b"],
                               examples=[Example(text=f"the {w}", label=0, group=w, control_key=w) for w in WORDS[20:60]])
    with pytest.raises(InputError, match="only one class"):
        run_probe(h, one_class)
    few = LabeledDataset(name="few", description="t", label_names=["a", "b"],
                         examples=[Example(text=f"the {w}", label=i % 2, group=w, control_key=w) for i, w in enumerate(WORDS[20:30])])
    with pytest.raises(InputError, match="at least 20"):
        run_probe(h, few)
    rare = LabeledDataset(name="rare", description="t", label_names=["a", "b"],
                          examples=[Example(text=f"the {w}", label=int(i < 2), group=w, control_key=w) for i, w in enumerate(WORDS[20:60])])
    with pytest.raises(InputError, match="too few examples of some classes"):
        run_probe(h, rare)
    with pytest.raises(InputError, match="position"):
        run_probe(h, "sentiment", position="first")
    with pytest.raises(OutOfRangeError):
        run_probe(h, "sentiment", layers=[5])
    with pytest.raises(InputError, match="Unknown dataset"):
        run_probe(h, "no_such_dataset")


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_user_files(planted, tmp_path):
    from gnothi.tools.datasets import load_dataset

    h, words, in_a, _ = planted
    rows = [{"text": f"{p} {w}", "label": "yes" if w in in_a else "no", "group": w} for w in words for p in PREFIXES[:2]]
    jl = _write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    csv = _write(tmp_path, "d.csv", "text,label,group\n" + "\n".join(f'"{r["text"]}",{r["label"]},{r["group"]}' for r in rows))
    a, b = load_dataset(jl), load_dataset(csv)
    assert a.texts == b.texts and a.labels == b.labels and a.label_names == ["no", "yes"]
    rep = run_probe(h, jl, layers=[0])
    assert rep.dataset == "d" and rep.layers[0].accuracy >= 0.85

    # three classes: a multinomial probe, saved as one weight row per class
    three = [{"text": f"{p} {w}", "label": ["x", "y", "z"][i % 3], "group": w}
             for i, w in enumerate(words) for p in PREFIXES[:2]]
    f3 = _write(tmp_path, "three.jsonl", "\n".join(json.dumps(r) for r in three))
    rep3 = run_probe(h, f3, layers=[1])
    assert rep3.label_names == ["x", "y", "z"] and rep3.chance < 0.45
    sp = load_probe(h.name, "three")
    assert sp.weight[1].shape == (3, h.d_model)
    probs = sp.scores_for_texts(h, ["we like cat", "we like sun"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)

    bad = {
        "x.txt": ("text,label\na,b\n", "only .csv"),
        "nocol.csv": ("sentence,label\nthe cat,1\n", "no 'text' column"),
        "broken.jsonl": ('{"text": "the cat", "label": 1}\n{"text": oops}\n', "line 2 is not valid JSON"),
        "notobj.jsonl": ("[1, 2]\n", "not a JSON object"),
        "empty.csv": ("", "holds no examples"),
        "blank.csv": ("text,label\n,1\n", "empty or non-text"),
        "nolabel.jsonl": ('{"text": "the cat"}\n{"text": "a dog", "label": 1}\n', "has no label"),
        "extra.csv": ("text,label\nthe cat, and dog,1\n", "more fields than the header"),
        "single.csv": ("text,label\n" + "\n".join(f"the {w},1" for w in words[:30]), "only one class"),
    }
    for name, (content, msg) in bad.items():
        with pytest.raises(InputError, match=msg):
            load_dataset(_write(tmp_path, name, content))
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.csv"))


def test_cli_bad_file_and_list(tmp_path, capsys):
    from gnothi.ui.cli import main

    p = _write(tmp_path, "one.csv", "text,label\n" + "\n".join(f"the {w},1" for w in WORDS[20:50]))
    assert main(["probe", "--file", p, "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"] == "bad_input" and "one class" in out["message"] and out["fix"]
    assert main(["probe", "--json"]) == 2
    assert "No dataset" in json.loads(capsys.readouterr().out)["message"]
    assert main(["probe", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in listed["datasets"]} >= {"true_false", "sentiment", "question_vs_statement",
                                                        "code_vs_prose", "singular_vs_plural"}


def test_cli_json_on_tiny(planted, tmp_path, capsys, monkeypatch):
    """The documented JSON fields, end to end through the CLI (model loading swapped for the tiny handle)."""
    import gnothi.ui.cli as cli
    import gnothi.ui.cli_common as cli_common

    h, words, in_a, _ = planted
    monkeypatch.setattr(cli_common, "handle_from_args", lambda args: h)
    rows = [{"text": f"{p} {w}", "label": int(w in in_a), "group": w} for w in words for p in PREFIXES[:2]]
    f = _write(tmp_path, "cli.jsonl", "\n".join(json.dumps(r) for r in rows))
    png = tmp_path / "acc.png"
    assert cli.main(["probe", "--file", f, "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [l["layer"] for l in out["layers"]] == [0, 1]
    for l in out["layers"]:
        assert abs(l["selectivity"] - (l["accuracy"] - l["control_accuracy"])) < 1e-9
    assert out["best_layer"] in (0, 1) and out["layers"][out["best_layer"]]["accuracy"] >= 0.85
    assert png.read_bytes()[:4] == b"\x89PNG"
