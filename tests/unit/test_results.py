import json

from gnothi.tools.results import Figure, ToolResult, render_png


def test_figures_render_all_kinds():
    figs = [
        Figure(kind="heatmap", title="h", data={"z": [[0, 1], [1, -1]], "x": ["a", "b"], "y": [0, 1], "center": 0}),
        Figure(kind="line", title="l", data={"x": [0, 1, 2], "series": {"acc": [0.5, 0.7, 0.9]}, "band": {"acc": [[0.4, 0.6], [0.6, 0.8], [0.8, 1.0]]}}),
        Figure(kind="bar", title="b", data={"labels": ["x", "y"], "values": [1, 2]}),
        Figure(kind="histogram", title="hi", data={"edges": [0, 1, 2], "counts": [3, 4], "log": True}),
        Figure(kind="tokens", title="t", data={"rows": [{"tokens": ["a", " b"], "values": [0.0, 2.0]}]}),
    ]
    for f in figs:
        png = render_png(f)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_tool_result_is_json():
    r = ToolResult(tool="x", summary="s", headline={"a": 1.0}, figures=[Figure(kind="bar", title="b", data={"labels": [], "values": []})])
    assert json.loads(r.model_dump_json())["headline"]["a"] == 1.0
