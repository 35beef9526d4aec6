"""The benchmark report: medians and ratios per cell, and --write-docs keeping the sections it did not run."""

from __future__ import annotations

from bench.report import Table, rate
from bench.run import read_sections, render_page, render_section


def fanout_table() -> Table:
    table = Table(
        title="Fan-out",
        metric="deliveries/s",
        fmt=rate,
        row_header="subscribers",
        columns={"textbook": "textbook", "ours": "ours"},
        baselines=["textbook"],
    )
    for value in (1_000, 800, 900):
        table.cell("1,000", "textbook").add(value)
    for value in (30_000, 27_000, 36_000):
        table.cell("1,000", "ours").add(value)
    return table


def test_cells_show_the_median_and_its_ratio_to_the_baseline_of_the_same_run():
    rendered = fanout_table().render()
    assert "| 1,000 | 900 | 30k (33x textbook) |" in rendered


def test_a_failed_repeat_is_reported_next_to_the_median():
    table = fanout_table()
    table.cell("1,000", "ours").fail("ServerFailed: exited with 1")
    assert "30k (33x textbook) [1 of 4 runs failed]" in table.render()
    assert "failed: ServerFailed: exited with 1" in table.render_details()


def test_writing_the_page_replaces_the_sections_that_ran_and_keeps_the_others():
    old = render_page(
        {
            "fanout": render_section("fanout", [fanout_table()], "Run 1", 0),
            "latency": render_section("latency", [], "Run 1", 0),
        },
        ["- Machine: test"],
        2,
    )
    newer = fanout_table()
    newer.cell("1,000", "ours").add(60_000)
    newer.cell("1,000", "ours").add(61_000)
    page = render_page({**read_sections(old), "fanout": render_section("fanout", [newer], "Run 2", 0)}, [], 2)
    sections = read_sections(page)
    assert list(sections) == ["fanout", "latency"]  # registry order
    assert "Run 2" in sections["fanout"] and "Run 1" not in sections["fanout"]
    assert "36k (40x textbook)" in sections["fanout"]
    assert "Run 1" in sections["latency"]
    assert page.count("<!-- bench:fanout -->") == 1
