"""The check history: one entry per checked set of results, and the lasting-change rule."""

import os

import numpy as np
import pandas as pd
import pytest
from test_compare import current, saved, seeds, write_tables  # noqa: F401  (saved: a fixture)

from sweepbench import SweepbenchError, cli
from sweepbench.check import compare, history


def planted(changes: dict) -> pd.DataFrame:
    """A history with one row per entry for each (cell -> list of changes in floors)."""
    rows = []
    for cell, series in changes.items():
        for entry, x in enumerate(series, start=1):
            rows.append({"entry": entry, "recorded": f"2026-12-{entry:02d}T00:00:00Z", "baseline": "default",
                         "tables": f"t{entry}", "commit": f"c{entry}", "study": "s", "cell": cell,
                         "metric": "final_val_accuracy", "delta": -0.01 * x, "threshold": 0.01, "change": x,
                         "change_lo": x - 0.5, "change_hi": x + 0.5, "verdict": "pass"})
    return pd.DataFrame(rows, columns=history.HISTORY_COLUMNS)


def test_a_planted_step_is_lasting_from_the_check_where_it_began_and_a_blip_is_not():
    noise = np.random.default_rng(1).uniform(-0.8, 0.8, 9).round(2).tolist()
    h = planted({
        "step": noise[:5] + [2.5, 3.1, 2.2, 2.8],       # worse by ~3 floors from check 6 on: lasting since 6
        "blip": noise[:6] + [4.0, 0.2, -0.3],           # one bad check, then back: not lasting
        "late": noise[:7] + [2.0, 2.0],                 # only two checks past the floor: not yet
        "back": noise[:2] + [3.0, 3.0, 3.0, 3.0, 0.1, 0.0, 0.2],   # lasted, then went away: not now
        "better": noise[:6] + [-1.5, -2.0, -1.2],       # improvement that lasts
        "flip": noise[:6] + [2.0, -2.0, 2.0],           # past the floor each time, not the same way
        "quiet": noise,
        "standing": [2.0] * 9,                          # past the floor since the history began: no step seen
    })
    lasting = history.lasting_changes(h).set_index("cell")
    assert sorted(lasting.index) == ["better", "standing", "step"]
    assert lasting["step"].to_dict() == {"step": True, "better": True, "standing": False}
    step = lasting.loc["step"]
    assert step["direction"] == "worse" and step["checks"] == 4 and step["since_entry"] == 6
    assert step["since_commit"] == "c6" and step["change_first"] == 2.5 and step["change_last"] == 2.8
    assert lasting.loc["better", "direction"] == "better" and lasting.loc["better", "since_entry"] == 7
    assert sorted(history.lasting_changes(h, checks=2)["cell"]) == ["better", "late", "standing", "step"]  # no flip


def test_a_missing_check_breaks_a_streak_and_another_baseline_is_not_compared():
    h = planted({"step": [0.1, 2.0, 2.0, 2.0, 2.0], "quiet": [0.0] * 5})
    assert history.lasting_changes(h)["cell"].tolist() == ["step"]
    gap = h[(h["entry"] != 4) | (h["cell"] != "step")]                      # check 4 did not compare this cell
    other = planted({"other": [0.0, 0.0, 0.0, 0.0, 0.0]}).assign(baseline="new", entry=lambda d: d["entry"] + 5)
    assert history.lasting_changes(pd.concat([gap, other])).empty           # the latest entry is 'new's
    assert history.lasting_changes(gap, baseline="default").empty           # 5 past, 4 not compared: 1 in a row
    assert history.lasting_changes(planted({})).columns.tolist() == history.LASTING_COLUMNS


def test_each_check_adds_an_entry_and_the_same_tables_checked_again_replace_theirs(tmp_path, saved):  # noqa: F811
    path = str(tmp_path / "history.csv")
    runs = write_tables(tmp_path, current(), "now")
    table = compare.compare(seeds(), current(), compare.settings(None))
    assert history.append_entry(path, table, "ref", runs, "abc") == 1
    assert history.append_entry(path, table, "ref", runs, "abc") == 1          # the same tables: replaced
    worse = write_tables(tmp_path, current(acc=(0.85, 0.86, 0.84)), "worse")
    assert history.append_entry(path, table, "ref", worse, "def") == 2
    h = history.read_history(path)
    assert sorted(h["entry"].unique()) == [1, 2] and len(h) == 2 * len(h[h["entry"] == 1])
    # every row with an effect floor (the same change in floors as compare.change_in_floors), and every
    # row with a current value but no floor, its change left empty (the key figures are kept)
    rows = table.to_dict("records")
    with_floor = [r for r in rows if np.isfinite(compare.change_in_floors(r)[0])]
    figures_only = [r for r in rows if not np.isfinite(compare.change_in_floors(r)[0]) and np.isfinite(r["current"])]
    first = h[h["entry"] == 1]
    assert len(first) == len(with_floor) + len(figures_only) and set(h["commit"]) == {"abc", "def"}
    assert first["change"].notna().sum() == len(with_floor) and first["current"].notna().all()


def test_sweepbench_check_writes_its_history_beside_its_output_and_refuses_a_broken_one(tmp_path, saved,  # noqa: F811
                                                                                      capsys):
    tables = os.path.dirname(write_tables(tmp_path, current(), "now"))
    args = ["check", "--baseline", "ref", "--tables", tables, "--root", saved, "--out", str(tmp_path / "out" / "c"),
            "--plan", str(tmp_path / "no-plan.json")]
    assert cli.main(args) == 0
    assert "history: entry 1 of" in capsys.readouterr().out
    assert history.read_history(str(tmp_path / "out" / "history.csv"))["entry"].tolist()[0] == 1
    broken = tmp_path / "broken.csv"
    broken.write_text("entry,when\n1,x\n")
    fresh = args[:-4] + ["--out", str(tmp_path / "fresh"), "--plan", str(tmp_path / "no-plan.json")]
    assert cli.main(fresh + ["--history", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"history {broken} lacks columns ['recorded'" in err
    assert not (tmp_path / "fresh").exists()                                    # refused before any output
    assert cli.main(args + ["--history", str(broken), "--no-fail"]) == 0       # the verdict stands, a warning
    assert "warning: not added to the history" in capsys.readouterr().err
    assert cli.main(args + ["--history", ""]) == 0 and "history:" not in capsys.readouterr().out
    with pytest.raises(SweepbenchError, match="allowed: the history.csv sweepbench check writes"):
        history.read_history(str(broken))
    good = open(tmp_path / "out" / "history.csv").read().splitlines()
    edited = tmp_path / "edited.csv"
    edited.write_text("\n".join(good[:2] + ["x" + good[2]] + good[3:]) + "\n")   # line 3: entry 'x1'
    with pytest.raises(SweepbenchError, match=r"edited.csv line 3: entry 'x1' is not a number; allowed:"):
        history.read_history(str(edited))
    assert cli.main(args + ["--history", str(tmp_path)]) == 2                  # a folder: one line, not a crash
    assert capsys.readouterr().err.count("\n") == 1


def test_a_series_never_mixes_two_machines():
    """Checks 1-5 on one machine, 6-9 on another that is ~3 floors slower everywhere: on the new
    machine that is where its history began (a standing difference, not a step), and the old
    machine's series, named, has no change at all."""
    h = planted({"cell": [0.1, -0.2, 0.0, 0.3, 0.1, 3.0, 3.2, 2.9, 3.1]})
    h["machine"] = np.where(h["entry"] <= 5, "Xeon / torch 2.14.1", "EPYC / torch 2.14.1")
    found = history.lasting_changes(h)
    assert found["cell"].tolist() == ["cell"] and not bool(found["step"].iloc[0])   # no step across machines
    assert history.lasting_changes(h, on="Xeon / torch 2.14.1").empty
    mixed = history.lasting_changes(h.assign(machine=""))                          # one machine: it is a step
    assert bool(mixed["step"].iloc[0]) and mixed["since_entry"].iloc[0] == 6


def test_a_history_with_a_column_sweepbench_did_not_write_is_refused_untouched(tmp_path, saved, capsys):  # noqa: F811
    tables = os.path.dirname(write_tables(tmp_path, current(), "now"))
    args = ["check", "--baseline", "ref", "--tables", tables, "--root", saved, "--out", str(tmp_path / "c"),
            "--plan", str(tmp_path / "no-plan.json")]
    path = tmp_path / "history.csv"
    assert cli.main(args + ["--history", str(path)]) == 0
    lines = path.read_text().splitlines()
    noted = "\n".join([lines[0] + ",note"] + [line + ",my remark" for line in lines[1:]]) + "\n"
    path.write_text(noted)                                   # a user's extra column, which an append would drop
    capsys.readouterr()
    assert cli.main(args[:-4] + ["--out", str(tmp_path / "c2"), "--plan", str(tmp_path / "no-plan.json"),
                                 "--history", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has columns sweepbench did not write ['note']" in err
    assert path.read_text() == noted and not (tmp_path / "c2").exists()
    reordered = pd.read_csv(str(path)).drop(columns="note")
    reordered[history.HISTORY_COLUMNS[::-1]].to_csv(path, index=False)
    with pytest.raises(SweepbenchError, match="has its columns in another order"):
        history.read_history(str(path))


def test_a_history_row_with_a_field_more_is_refused_not_shifted(tmp_path, saved, capsys):  # noqa: F811
    """A row with 17 fields under the 16 columns was read shifted (pandas made its first field the index)
    and the append rewrote it without that field. Every row must have the header's field count."""
    tables = os.path.dirname(write_tables(tmp_path, current(), "now"))
    args = ["check", "--baseline", "ref", "--tables", tables, "--root", saved, "--out", str(tmp_path / "c"),
            "--plan", str(tmp_path / "no-plan.json")]
    path = tmp_path / "history.csv"
    assert cli.main(args + ["--history", str(path)]) == 0
    lines = path.read_text().splitlines()
    extra = "\n".join([lines[0], "7," + lines[1], *lines[2:]]) + "\n"              # line 2: 17 fields
    path.write_text(extra)
    capsys.readouterr()
    assert cli.main(args[:-4] + ["--out", str(tmp_path / "c2"), "--plan", str(tmp_path / "no-plan.json"),
                                 "--history", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2 has 17 fields, the header 16" in err, err
    assert path.read_text() == extra and not (tmp_path / "c2").exists()
