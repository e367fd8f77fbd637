"""The report's regression-check and check-history sections, from real check results of small
per-seed tables (no training)."""

import os
import sys

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "check"))
from test_compare import current, seeds, write_tables  # noqa: E402

from sweepbench.check import compare, history  # noqa: E402
from sweepbench.report import check_part, document  # noqa: E402


def checked(tmp_path, cur) -> str:
    """check.csv and summary.json of `cur` against a 10-seed baseline of cells s/a, s/b; returns the folder."""
    root = str(tmp_path / "baselines")
    compare.save_baseline("ref", os.path.dirname(write_tables(tmp_path, seeds(), "base")), root)
    compare.run_check("ref", os.path.dirname(write_tables(tmp_path, cur, "now")), str(tmp_path / "results" / "check"),
                      None, root)
    return str(tmp_path / "results" / "check")


def test_the_check_section_reads_in_a_minute_verdict_counts_figure_changes_only(tmp_path):
    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), acc=(0.85, 0.86, 0.84), device="cpu-y")])
    section = check_part.check_section(checked(tmp_path, cur), str(tmp_path / "report"))
    assert section["headline"] == "REGRESSION against baseline 'ref': 4 regressions in 18 comparisons of 2 cells."
    assert section["counts"] == [      # the accuracy drop is a loss rise too (loss = 1 - accuracy here)
        "regression 4: 1 final val accuracy worse; 1 best val accuracy worse; 1 final val loss worse; "
        "1 best val loss worse",
        "not comparable 1: different device",
        "pass 13: 8 within the effect floor; 4 seed counts not significantly worse; 1 speed within the effect floor"]
    changes = section["changes"]
    assert [row[changes["headers"].index("metric")] for row in changes["rows"]] == [
        "final_val_accuracy", "best_val_accuracy", "final_val_loss", "best_val_loss"]
    assert changes["headers"][-1] == "reason" and "95% interval" in changes["headers"]
    assert len(section["table"]["rows"]) == 18                  # the full table (folded in the page) has every row
    assert section["csv"] == "../results/check/check.csv"       # linked relative to the report's folder
    assert section["figure"]["src"].startswith("data:image/svg+xml;base64,")
    assert "seeds 0-9 in every study" in section["made"] and "torch 2.x" in section["made"]
    mde = {row[0]: row for row in section["mde"]["rows"]}
    assert set(mde) == {"final_val_accuracy", "best_val_accuracy", "final_val_loss", "best_val_loss",
                        "steps_to_target", "samples_to_target", "diverged", "target_reached", "samples_per_s"}
    assert mde["final_val_accuracy"][2] == "10 vs 3"


def test_the_figure_draws_every_compared_row_with_a_floor_by_study_and_kind(tmp_path):
    df = pd.read_csv(os.path.join(checked(tmp_path, current(sps=800.0)), "check.csv"))
    drawn = check_part.forest_rows(df)
    # per cell: 2 accuracies, 2 losses, steps and samples, speed; no diverged/target_reached (no floor)
    assert len(drawn) == 2 * 7 and set(drawn["metric"]) == {"accuracy", "loss", "to target", "speed"}
    speed = drawn[drawn["metric"] == "speed"]
    assert (speed["verdict"] == "regression").all() and speed["change"].min() > 2.5   # 20% slower, floor 5%
    assert drawn[drawn["metric"] == "accuracy"]["change"].abs().max() < 1


def test_a_check_that_did_not_run_shows_its_reason_and_no_parts(tmp_path):
    out = str(tmp_path / "c")
    compare.write_not_run(out, "default", "unknown baseline 'default'")
    section = check_part.check_section(out)
    assert section["passed"] is None and "not run against baseline 'default'" in section["headline"]
    assert section["figure"] is None and section["counts"] == [] and not section["table"]["rows"]
    assert check_part.check_section(str(tmp_path / "none")) is None


def test_the_history_section_shows_the_trend_and_names_the_lasting_change(tmp_path):
    path = str(tmp_path / "history.csv")
    assert check_part.history_section(path) is None                        # no history yet
    for i, acc in enumerate([(0.9, 0.901, 0.899), (0.902, 0.9, 0.899), (0.86, 0.85, 0.855), (0.85, 0.86, 0.84),
                             (0.855, 0.85, 0.86)]):
        cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), acc=acc)])
        history.append_entry(path, compare.compare(seeds(), cur, compare.settings(None)), "ref",
                             write_tables(tmp_path, cur, f"t{i}"), f"commit{i}")
        if i == 0:
            assert check_part.history_section(path) is None                # one check is no trend
    section = check_part.history_section(path)
    assert section["n"] == 5 and section["n_lasting"] == 4 and section["figure"]["title"] == "Check history"
    lasting = section["lasting"]
    cells = {(row[0], row[2]): row for row in lasting["rows"]}   # accuracy and loss (1 - accuracy) of s/b
    assert set(cells) == {("s", m) for m in ("final_val_accuracy", "best_val_accuracy", "final_val_loss",
                                             "best_val_loss")}
    row = cells[("s", "final_val_accuracy")]
    assert row[1] == "s/<wbr>b" and row[3] == "worse" and row[5] == "3" and row[6] == "commit2"


def test_methods_quote_the_check_rules():
    assert ("Regression test (sweepbench check)", compare.regression.regression_test) in document.METHOD_RULES
    assert ("Lasting change (check history)", history.lasting_changes) in document.METHOD_RULES
    assert document.docstring(history.lasting_changes).startswith("A lasting change: a (cell, metric)")


def test_a_check_csv_of_an_older_sweepbench_still_renders(tmp_path):
    folder = checked(tmp_path, current(acc=(0.85, 0.86, 0.84)))
    path = os.path.join(folder, "check.csv")
    pd.read_csv(path).drop(columns=["ci_lo", "ci_hi", "why"]).to_csv(path, index=False)   # before issue 27
    section = check_part.check_section(folder)
    assert section["counts"][0].startswith("regression 8: 2 final val accuracy worse")     # why from the reason
    assert all(row[section["changes"]["headers"].index("95% interval")] == "–" for row in section["changes"]["rows"])


def test_the_check_section_carries_the_environment_line_of_a_baseline_from_another_lock(tmp_path):
    root = str(tmp_path / "baselines")
    base = write_tables(tmp_path, seeds(torch="2.15.0").assign(env_lock="0f9e8d7c6b5a"), "base")
    compare.save_baseline("ref", os.path.dirname(base), root)
    now = write_tables(tmp_path, current(torch="2.14.1").assign(env_lock="a1b2c3d4e5f6"), "now")
    compare.run_check("ref", os.path.dirname(now), str(tmp_path / "check"), None, root)
    section = check_part.check_section(str(tmp_path / "check"))
    assert section["environment"] == ("environment differs from the baseline's: lock a1b2c3d4e5f6 (these results) "
                                      "vs 0f9e8d7c6b5a (baseline): torch 2.14.1 vs 2.15.0")
    assert "env lock 0f9e8d7c6b5a" in section["made"]
    assert check_part.check_section(checked(tmp_path / "same", current()))["environment"] is None


def test_a_corrupt_summary_json_is_one_line_naming_it_not_a_crash(tmp_path):
    """A summary.json of `[]` crashed the report (AttributeError), one that is not JSON with JSONDecodeError."""
    import pytest

    from sweepbench import SweepbenchError

    folder = checked(tmp_path, current(cells=("s/a",)))
    summary = os.path.join(folder, "summary.json")
    for text, what in (("[]", "is a JSON list, not an object"), ("{not json", r"is not JSON \(JSONDecodeError\)"),
                       (b"\xff\xfe", r"is not JSON \(UnicodeDecodeError\)")):
        with open(summary, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(SweepbenchError, match=f"^check summary {summary} {what}; allowed: the summary.json "):
            check_part.check_section(folder)
    os.remove(summary)
    os.makedirs(summary)                                                        # a folder
    with pytest.raises(SweepbenchError, match="cannot be read"):
        check_part.check_section(folder)
