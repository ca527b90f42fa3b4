"""Server-rendered SVG charts: correct bar heights, whole-number axes, escaped text, never colour alone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from dashboard.web.data.charts import ChartBar, _nice_max, timeseries_svg

LEGEND = {"green": "Xanh (đạt)", "yellow": "Vàng", "red": "Đỏ"}
NS = "{http://www.w3.org/2000/svg}"


def test_axis_maximum_is_round_and_covers_the_data() -> None:
    for value in range(0, 5000, 7):
        top = _nice_max(value)
        assert top >= max(value, 1) and top % 4 == 0
        assert top < max(value, 1) * 3 + 4  # never a wildly empty chart


def test_bars_stack_to_their_totals_and_parse_as_svg() -> None:
    bars = [ChartBar("08:00", 6, 2, 2), ChartBar("08:30", 0, 0, 0), ChartBar("09:00", 3, 0, 1)]
    svg = str(timeseries_svg(bars, LEGEND, "Kết quả"))
    root = ET.fromstring(svg)
    assert root.get("data-total") == "14"
    rects = [r for r in root.iter(f"{NS}rect") if (r.get("class") or "").startswith("bar-")]
    assert sorted(r.get("class") for r in rects) == ["bar-green", "bar-green", "bar-red", "bar-red", "bar-yellow"]
    # y axis tops at 12 for a largest bar of 10: the 10-high stack fills 10/12 of the plot.
    first = [r for r in rects if float(r.get("x")) < 200]
    heights = sum(float(r.get("height")) for r in first)
    plot_h = 220 - 28 - 34
    assert abs(heights - plot_h * 10 / 12) < 0.5
    assert all(r.get("fill") == "url(#hatch)" for r in rects if r.get("class") == "bar-red")
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "Xanh (đạt)" in texts and "12" in texts and "08:00" in texts


def test_text_in_the_chart_is_escaped() -> None:
    svg = str(timeseries_svg([ChartBar("<script>x</script>", 1, 0, 0)], {"green": '"><img src=x>'}, "<b>t</b>"))
    assert "<script>" not in svg and "<img" not in svg and "<b>" not in svg
    ET.fromstring(svg)
    assert re.search(r"&lt;script&gt;x&lt;/script&gt;", svg)
