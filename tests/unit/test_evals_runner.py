"""The evaluation runner, report and compare, with fake suites registered in the test."""

from __future__ import annotations

import json

import pytest

from gnothi.evals.compare import compare_reports, compare_runs
from gnothi.evals.registry import SuiteContext, SuiteResult, SuiteSkipped, suite, SUITES
from gnothi.evals.runner import flatten, load_report, missing_baselines, run_suites
from gnothi.tools.errors import InputError, StoreError
from gnothi.tools.results import Figure


def _good(ctx):
    return SuiteResult(
        suite="good",
        metrics={"pearson": 0.5 + 0.1 * ctx.seed, "per_layer": {"3": 0.7, "4": 0.6}, "unbacked": 1.0},
        baselines={"pearson": 0.05, "per_layer": {"3": 0.1, "4": 0.2}},
        tables=[{"title": "units", "columns": ["unit", "score"], "rows": [["3.1", 0.7], ["4|2", 0.6]]}],
        figures=[Figure(kind="bar", title="scores", data={"labels": ["a", "b"], "values": [0.7, 0.6]})],
        notes=["a note"],
        passed=True,
    )


def _skip(ctx):
    raise SuiteSkipped("nothing to measure here (no LLM configured)")


def _boom(ctx):
    raise RuntimeError("suite exploded")


def _user_error(ctx):
    raise StoreError("No activation store for this model.", "Run `gnothi index`.")


def _failing(ctx):
    return SuiteResult(suite="failing", metrics={"identity_error": 0.3}, baselines={"identity_error": 0.0}, passed=False)


REG = {"good": _good, "skip": _skip, "boom": _boom, "user_error": _user_error, "failing": _failing}


def test_run_catches_each_failure_and_writes_report(tmp_path):
    ctx = SuiteContext(out_dir=tmp_path, seed=1)
    rep = run_suites(["good", "boom", "skip", "user_error", "failing", "nope"], ctx, registry=REG, argv=["eval"])
    st = {k: v.status for k, v in rep.suites.items()}
    assert st == {"good": "passed", "boom": "error", "skip": "skipped", "user_error": "error", "failing": "failed", "nope": "error"}
    assert "suite exploded" in rep.suites["boom"].reason
    assert "nothing to measure" in rep.suites["skip"].reason
    assert "gnothi index" in rep.suites["user_error"].reason  # the fix travels with it
    assert "available: " in rep.suites["nope"].reason
    # the good suite's numbers survived its neighbours' failures
    assert rep.suites["good"].result.metrics["pearson"] == pytest.approx(0.6)
    assert rep.suites["good"].missing_baselines == ["unbacked"]

    run_dir = tmp_path / rep.run_id
    data = json.loads((run_dir / "report.json").read_text())
    assert data["provenance"]["seed"] == 1
    assert data["provenance"]["packages"]["torch"]
    assert "commit" in data["provenance"]["git"]
    assert data["provenance"]["corpus"].get("fingerprint") or data["provenance"]["corpus"].get("error")
    png = run_dir / rep.suites["good"].figure_files[0]
    assert png.read_bytes()[:4] == b"\x89PNG"
    md = (run_dir / "report.md").read_text()
    assert "| pearson | 0.600 | 0.050 | 0.550 |" in md
    assert "| per_layer.3 | 0.700 | 0.100 | 0.600 |" in md
    assert "No baseline for:** unbacked" in md
    assert "4\\|2" in md  # pipes in cells are escaped
    assert "![scores](figures/good_0.png)" in md
    # read back
    back = load_report(run_dir)
    assert back.complete and back.suites["good"].result.metrics == rep.suites["good"].result.metrics


def test_report_is_written_after_each_suite(tmp_path):
    def interrupt(ctx):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suites(["good", "stop"], SuiteContext(), out_dir=tmp_path, registry={"good": _good, "stop": interrupt})
    (run_dir,) = tmp_path.iterdir()
    back = load_report(run_dir)
    assert not back.complete and back.suites["good"].status == "passed"
    assert "Incomplete" in (run_dir / "report.md").read_text()
    assert (run_dir / back.suites["good"].figure_files[0]).exists()


def test_missing_baselines_parent_key_covers_children_and_several_controls():
    r = SuiteResult(suite="x", metrics={"a": {"b": 1, "c": 2}, "d": 3, "e": 0.4}, baselines={"a": 0.5, "e": {"shuffled": 0.1, "random_unit": 0.2}})
    assert missing_baselines(r) == ["d"]
    from gnothi.evals.runner import metric_rows

    rows = {row[0]: row for row in metric_rows(r)}
    assert rows["e"][2] == "shuffled 0.100; random_unit 0.200"
    assert rows["e"][3] == pytest.approx(0.2)  # measured against the strictest control
    assert rows["a.b"][2] == 0.5 and rows["d"][2] is None
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, 2]}) == {"a.b.c": 1, "d": [1, 2]}


def test_compare_two_runs(tmp_path):
    a = run_suites(["good", "failing"], SuiteContext(seed=0), out_dir=tmp_path / "a", registry=REG)
    b = run_suites(["good", "skip"], SuiteContext(seed=2, quick=False), out_dir=tmp_path / "b", registry=REG)
    cr = compare_reports(a, b)
    changes = {row[0]: row[1:] for row in cr.provenance_changes}
    assert changes["seed"] == [0, 2] and changes["tier"] == ["quick", "full"]
    row = next(m for m in cr.metrics if m.suite == "good" and m.metric == "pearson")
    assert row.a == pytest.approx(0.5) and row.b == pytest.approx(0.7)
    assert row.delta == pytest.approx(0.2) and row.margin_b == pytest.approx(0.65)
    assert "failing.identity_error" in cr.only_in_a
    assert ["skip", "not run", "skipped"] in cr.suite_status
    md = cr.to_markdown()
    assert "| good | pearson | 0.500 | 0.700 | 0.200 |" in md
    cr2 = compare_runs(tmp_path / "a" / a.run_id, tmp_path / "b" / b.run_id, out=tmp_path / "cmp")
    assert (tmp_path / "cmp" / "compare.md").exists() and len(cr2.metrics) == len(cr.metrics)


def test_load_report_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="No evaluation report"):
        load_report(tmp_path / "missing")
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable"):
        load_report(tmp_path)


def test_registry_refuses_duplicates():
    def f(ctx):
        return SuiteResult(suite="dup")

    suite("_test_dup")(f)
    try:
        with pytest.raises(ValueError, match="twice"):
            suite("_test_dup")(lambda ctx: SuiteResult(suite="dup"))
    finally:
        SUITES.pop("_test_dup", None)


def test_cli_eval_list_compare_and_unknown(tmp_path, capsys, monkeypatch):
    from gnothi.evals import registry
    from gnothi.ui.cli import main

    monkeypatch.setitem(registry.SUITES, "_fake_good", _good)
    rc = main(["eval", "_fake_good", "--out", str(tmp_path), "--seed", "1", "--json"])
    out = capsys.readouterr().out
    rep = json.loads(out)  # exactly one JSON object on stdout
    assert rc == 0 and rep["suites"]["_fake_good"]["status"] == "passed"
    run_dir = rep["out_dir"]
    rc = main(["eval", "compare", run_dir, run_dir, "--json"])
    cmp = json.loads(capsys.readouterr().out)
    assert rc == 0 and cmp["provenance_changes"] == [] and all(m["delta"] in (0, 0.0, None) for m in cmp["metrics"])
    rc = main(["eval", "no_such_suite", "--json"])
    err = json.loads(capsys.readouterr().out)
    assert rc == 2 and err["error"] == "bad_input" and "_fake_good" in err["fix"]
    rc = main(["eval", "compare", run_dir, "--json"])
    assert rc == 2 and "two run folders" in json.loads(capsys.readouterr().out)["message"]
    rc = main(["eval", "--list", "--json"])
    names = [r["suite"] for r in json.loads(capsys.readouterr().out)["suites"]]
    assert "_fake_good" in names


def _fails_on_seed_one(ctx):
    return SuiteResult(suite="flaky", metrics={"acc": 0.9 - 0.1 * ctx.seed}, baselines={"acc": 0.5}, passed=ctx.seed != 1)


def test_seeds_rerun_each_suite_and_report_a_t_interval(tmp_path):
    ctx = SuiteContext(out_dir=tmp_path)
    reg = {**REG, "flaky": _fails_on_seed_one}
    rep = run_suites(["good", "flaky"], ctx, registry=reg, seeds=[0, 1, 2])
    good = rep.suites["good"]
    assert good.seeds == [0, 1, 2] and good.status == "passed"
    row = good.across_seeds["pearson"]
    # the suite drew its samples with each seed: 0.5, 0.6, 0.7
    assert row["values"] == pytest.approx([0.5, 0.6, 0.7])
    assert row["mean"] == pytest.approx(0.6) and row["sd"] == pytest.approx(0.1) and row["n"] == 3
    half = 4.302652729911275 * 0.1 / 3 ** 0.5  # t(0.975, 2 df)
    assert (row["lo"], row["hi"]) == pytest.approx((0.6 - half, 0.6 + half))
    assert row["baseline"]["values"] == [0.05] * 3 and row["baseline"]["lo"] == pytest.approx(0.05)
    assert good.result.metrics["pearson"] == pytest.approx(0.5)  # tables and figures: the first seed's
    # one failing seed fails the suite
    assert rep.suites["flaky"].status == "failed"
    assert rep.provenance["seeds"] == [0, 1, 2]
    md = (tmp_path / rep.run_id / "report.md").read_text()
    assert "Across seeds 0, 1, 2" in md and "0.600 [0.352, 0.848]" in md
    assert "3 seeds" in good_headline(rep)


def good_headline(rep):
    from gnothi.evals.runner import headline

    return headline(rep.suites["good"])


def test_one_seed_is_the_plain_run(tmp_path):
    rep = run_suites(["good"], SuiteContext(out_dir=tmp_path, seed=4), registry=REG)
    assert rep.suites["good"].seeds == [] and rep.suites["good"].across_seeds == {}
    assert rep.suites["good"].result.metrics["pearson"] == pytest.approx(0.9)


def _errors_on_seed_zero(ctx):
    if ctx.seed == 0:
        raise RuntimeError("seed zero broke")
    return SuiteResult(suite="late", metrics={"acc": 0.8}, baselines={"acc": 0.5})


def test_a_seed_that_errors_is_reported_and_the_others_still_count(tmp_path):
    rep = run_suites(["late"], SuiteContext(out_dir=tmp_path), registry={"late": _errors_on_seed_zero}, seeds=[0, 1, 2])
    r = rep.suites["late"]
    assert r.status == "error" and "seed 0: RuntimeError: seed zero broke" in r.reason
    assert r.result is not None and r.result.metrics["acc"] == 0.8  # another seed's tables are shown
    assert r.across_seeds["acc"]["values"] == [None, 0.8, 0.8] and r.across_seeds["acc"]["n"] == 2
