"""What `sweepbench report` may replace: its own index.html and report.pdf in --out, and in the
figures folder the SVG files its WRITTEN list names (figure_files); a user's files are refused
untouched. Rendered from an empty plan, so these tests stay fast."""

import os

import pytest

from sweepbench import SweepbenchError, cli
from sweepbench.aggregate import tables
from sweepbench.atomic import WRITTEN, write_own, written
from sweepbench.plan.planner import write_plan
from sweepbench.report import figure_files


@pytest.fixture
def empty_results(tmp_path):
    write_plan({"studies": {}, "cells": {}, "jobs": {}, "config": {}, "smoke": False}, str(tmp_path / "plan.json"))
    tables.aggregate(str(tmp_path / "plan.json"), str(tmp_path), str(tmp_path / "tables"))
    return ["report", "--plan", str(tmp_path / "plan.json"), "--tables", str(tmp_path / "tables"), "--runs-dir",
            str(tmp_path), "--check-dir", "", "--no-pdf", "--workers", "1"]


def test_report_out_replaces_its_own_page_and_refuses_a_users_index_html_untouched(tmp_path, empty_results, capsys):
    """`report --out X` overwrote whatever X/index.html was, a user's own page included."""
    assert cli.main([*empty_results, "--out", str(tmp_path / "r")]) == 0
    first = (tmp_path / "r" / "index.html").read_text()
    assert cli.main([*empty_results, "--out", str(tmp_path / "r")]) == 0        # its own earlier page: replaced
    assert (tmp_path / "r" / "index.html").read_text() == first
    os.makedirs(tmp_path / "site")
    (tmp_path / "site" / "index.html").write_text("<p>my site</p>")
    capsys.readouterr()
    assert cli.main([*empty_results, "--out", str(tmp_path / "site"), "--figures-dir", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sweepbench report: error: bad --out '{tmp_path}/site': it holds "
                                                   "index.html, which sweepbench did not write there")
    assert os.listdir(tmp_path / "site") == ["index.html"] and not (tmp_path / "figs").exists()   # nothing written
    assert (tmp_path / "site" / "index.html").read_text() == "<p>my site</p>"


def test_report_no_pdf_removes_its_own_earlier_pdf_and_refuses_a_users_untouched(tmp_path, empty_results, capsys):
    """`report --no-pdf` left an old report.pdf beside the new index.html: a stale report."""
    out = tmp_path / "r"
    write_own(str(out), {"report.pdf": b"%PDF-1.7 an earlier report"}, "--out")   # as `report` wrote it
    assert cli.main([*empty_results, "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == [WRITTEN, "index.html"] and set(written(str(out))) == {"index.html"}
    (out / "report.pdf").write_bytes(b"%PDF-1.7 mine")                            # a user's: refused, kept
    capsys.readouterr()
    assert cli.main([*empty_results, "--out", str(out)]) == 2
    assert "it holds report.pdf, which sweepbench did not write there" in capsys.readouterr().err
    assert (out / "report.pdf").read_bytes() == b"%PDF-1.7 mine"


def test_figures_folder_replaces_only_the_svgs_it_listed_not_a_users_of_the_same_pattern(tmp_path):
    """B5: a user's talk/01-diagram.svg matched the figure-name pattern and was deleted as the report's."""
    folder = str(tmp_path / "figs")
    figure_files.write(folder, {"s/01-loss.svg": b"<svg>1</svg>", "s/02-acc.svg": b"<svg>2</svg>"})
    figure_files.write(folder, {"s/01-loss.svg": b"<svg>3</svg>"})              # its own: replaced, 02 removed
    assert sorted(os.listdir(tmp_path / "figs" / "s")) == ["01-loss.svg"]
    mine = tmp_path / "figs" / "talk" / "01-diagram.svg"
    os.makedirs(mine.parent)
    mine.write_text("<svg>mine</svg>")
    with pytest.raises(SweepbenchError, match=r"bad --figures-dir '.*figs': it holds files sweepbench did not write "
                                              r"\(talk/01-diagram.svg\), left untouched"):
        figure_files.write(folder, {"s/01-loss.svg": b"<svg>4</svg>"})
    (tmp_path / "figs" / "s" / "01-loss.svg").write_text("<svg>edited</svg>")   # its own, edited since: the user's
    os.remove(mine)
    with pytest.raises(SweepbenchError, match=r"\(s/01-loss.svg, talk/\)"):
        figure_files.write(folder, {"s/01-loss.svg": b"<svg>4</svg>"})
    assert (tmp_path / "figs" / "s" / "01-loss.svg").read_text() == "<svg>edited</svg>"


def test_a_figures_folder_without_a_written_list_is_not_the_reports(tmp_path):
    """`report --figures-dir pics` deleted the user's pics/trip/01-beach.svg: a folder with no WRITTEN
    list fell back to the figure file names, which a user's file can have. Only Snakemake's mark passes."""
    mine = tmp_path / "pics" / "trip" / "01-beach.svg"
    os.makedirs(mine.parent)
    mine.write_text("<svg>my photo</svg>")
    with pytest.raises(SweepbenchError, match=r"bad --figures-dir '.*pics': it holds files sweepbench did not write "
                                              r"\(trip/01-beach.svg\), left untouched"):
        figure_files.write(str(tmp_path / "pics"), {"t/01-new.svg": b"<svg/>"})
    assert mine.read_text() == "<svg>my photo</svg>" and not (tmp_path / "pics" / WRITTEN).exists()
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / ".snakemake_timestamp").write_text("")              # the workflow's folder, new
    figure_files.write(str(tmp_path / "figs"), {"t/01-new.svg": b"<svg/>"})
    assert (tmp_path / "figs" / "t" / "01-new.svg").exists() and (tmp_path / "figs" / WRITTEN).exists()


def test_the_report_refuses_a_malformed_table_naming_the_file_b15(tmp_path, empty_results, capsys):
    """B15: a header-only cells.csv beside a non-empty runs.csv crashed the report (KeyError); a table
    lacking a column rendered silently without it."""
    import pandas as pd

    runs = pd.DataFrame([a_row("runs")])
    runs.to_csv(tmp_path / "tables" / "runs.csv", index=False)                  # one run, but no cell
    assert cli.main([*empty_results, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (f"sweepbench report: error: table {tmp_path}/tables/cells.csv has no rows, but "
                                       "runs.csv has 1; allowed: the tables `sweepbench aggregate` writes (run it "
                                       "again)\n")
    runs.drop(columns=["train_s", "status"]).to_csv(tmp_path / "tables" / "runs.csv", index=False)
    assert cli.main([*empty_results, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (f"sweepbench report: error: table {tmp_path}/tables/runs.csv lacks the column "
                                       "status and 1 more; allowed: the tables `sweepbench aggregate` writes (run it "
                                       "again)\n")
    assert not (tmp_path / "r").exists()


def a_row(table: str) -> dict:
    """A row of valid values for every column of `table` (1 where a number goes)."""
    from sweepbench.aggregate.tables import column_kind, table_columns

    kinds = {"status": "completed", "bool": False, "text": "x", "any": "x"}
    return {c: kinds.get(column_kind(table, c), 1) for c in table_columns()[table]}


@pytest.mark.parametrize("table, edit, message", [
    ("runs", lambda t: t.replace(",completed,", ",finished,"), "line 2 status 'finished': allowed: one of completed"),
    ("cells", lambda t: t.replace("0.5", "2.5", 1), r"line 2 final_train_accuracy_mean '2.5': allowed: a number in "
                                                    r"\[0, 1\]"),
    ("cells", lambda t: t.replace(",7,", ",n/a,", 1), "line 2 n_seeds 'n/a': allowed: an integer >= 0, or empty"),
    ("runs", lambda t: t.rstrip("\n").rsplit(",", 3)[0] + "\n", "line 2 has .* fields, the header .* \\(cut off\\?\\)"),
    ("runs", lambda t: t.rstrip("\n"), "does not end with a newline"),
    ("runs", lambda t: t.split("\n")[0] + "\n", "has no rows, but cells.csv has 1"),
    ("runs", lambda t: t.replace("x", "\xe9").encode("latin-1"), r"is not UTF-8 text \(byte \d+\)"),
    ("runs", None, r"cannot be read \(Is a directory\)"),
])
def test_the_report_reads_every_table_through_one_checking_loader(tmp_path, table, edit, message):
    """A corrupt table with the right columns was rendered (an accuracy of 2.5, rows cut off, "n/a"
    cells, a header-only runs.csv beside a non-empty cells.csv); not UTF-8, or a folder, a traceback."""
    import pandas as pd

    from sweepbench.report.document import read_tables

    folder = tmp_path / "tables"
    os.makedirs(folder)
    rows = {"runs": a_row("runs"), "cells": {**a_row("cells"), "final_train_accuracy_mean": 0.5, "n_seeds": 7}}
    for name, row in rows.items():
        pd.DataFrame([row]).to_csv(folder / f"{name}.csv", index=False)
    read_tables(str(folder))                                                     # valid: read
    path = folder / f"{table}.csv"
    if edit is None:
        path.unlink()
        os.makedirs(path)
    else:
        text = edit(path.read_text())
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SweepbenchError, match=f"^table {folder}/{table}.csv {message}.*; allowed: the tables "):
        read_tables(str(folder))


def test_another_outputs_folder_given_as_figures_folder_is_refused_untouched(tmp_path):
    """--figures-dir at a tables folder deleted its tables: files its list names are not figures."""
    from sweepbench.atomic import write_own

    folder = str(tmp_path / "tables")
    write_own(folder, {"runs.csv": "study\ns\n", "cells.csv": "study\ns\n"}, "--out")
    with pytest.raises(SweepbenchError, match=r"bad --figures-dir '.*tables': it holds files sweepbench did not "
                                              r"write \(cells.csv, runs.csv\), left untouched"):
        figure_files.write(folder, {"s/01-loss.svg": b"<svg/>"})
    assert sorted(os.listdir(folder)) == [".sweepbench-written.json", "cells.csv", "runs.csv"]


def test_a_real_records_runs_csv_row_fits_every_columns_declared_kind(tmp_path):
    """Every runs.csv column a record fills (lists such as block_samples_per_s, the lock's hash) has
    the kind the report's loader checks it against: a new column without one would refuse real tables."""
    import csv
    import io

    import pandas as pd
    from conftest import minimal_record, write_record_files

    from sweepbench.aggregate.tables import RECORD_COLUMNS, run_row, table_problem
    from sweepbench.record import load_record

    rec = minimal_record(provenance={"device_name": "cpu", "torch": "2.x", "git_commit": "abc", "code_version": "0",
                                     "env_lock": {"sha256": "0123456789ab", "matches": True}})
    write_record_files(str(tmp_path / "r"), rec)
    row = run_row(load_record(str(tmp_path / "r")))
    assert row["block_samples_per_s"] == "1000 1000 1000 1000 1000 1000" and set(RECORD_COLUMNS) <= set(row)
    rows = list(csv.reader(io.StringIO(pd.DataFrame([{"study": "s", "cell": "s/a", "run": "s/a/seed~0", **row}])
                                       .to_csv(index=False))))
    assert table_problem("runs", rows[0], rows[1:]) is None


def test_a_smoke_run_never_replaces_a_real_report_and_smoke_tables_never_fill_a_real_plan(tmp_path, empty_results):
    """After a real run, `sweepbench run --config smoke=true results_dir=results-smoke` replaced
    report/index.html (nothing in it said smoke); `report --plan results/plan.json --tables
    results-smoke/tables` drew smoke numbers under the real plan."""
    import pandas as pd

    from sweepbench.plan.planner import SMOKE_REPORT_MARK, check_smoke_results
    from sweepbench.report.document import check_smoke_tables

    assert cli.main([*empty_results, "--out", str(tmp_path / "report")]) == 0    # a real plan's report
    assert SMOKE_REPORT_MARK not in (tmp_path / "report" / "index.html").read_text()
    smoke_config = {"smoke": "true", "results_dir": str(tmp_path / "results-smoke"),
                    "report_dir": str(tmp_path / "report")}
    with pytest.raises(SweepbenchError, match=r"^config error in key smoke: true, but .*report/index.html is a real "
                                              r"sweep's report that the smoke report would replace; allowed: "
                                              r"smoke=true with report_dir=report-smoke"):
        check_smoke_results(smoke_config)
    check_smoke_results({**smoke_config, "smoke": False})                         # a real run may replace it
    write_plan({"studies": {}, "cells": {}, "jobs": {}, "config": {}, "smoke": True}, str(tmp_path / "plan.json"))
    assert cli.main([*empty_results, "--out", str(tmp_path / "smoke-report")]) == 0
    page = (tmp_path / "smoke-report" / "index.html").read_text()
    assert SMOKE_REPORT_MARK in page and "<strong>Smoke run:</strong>" in page
    check_smoke_results({**smoke_config, "report_dir": str(tmp_path / "smoke-report")})   # smoke over smoke: fine
    smoke_runs = pd.DataFrame({"run": ["s/a/seed~0"], "smoke": [True]})
    with pytest.raises(SweepbenchError, match=r"^table t/runs.csv holds smoke runs, but p.json is a real plan; "
                                              r"allowed: the plan and tables of one results_dir$"):
        check_smoke_tables({"smoke": False}, smoke_runs, "p.json", "t")
    check_smoke_tables({"smoke": True}, smoke_runs, "p.json", "t")
    with pytest.raises(SweepbenchError, match=r"holds real and smoke runs, but p.json is a smoke plan"):
        check_smoke_tables({"smoke": True}, pd.DataFrame({"smoke": [True, False]}), "p.json", "t")
