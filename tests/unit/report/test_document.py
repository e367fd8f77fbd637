"""The report rendered from small generated tables and records (real training runs of a
tiny plan, so every reader of the run record is exercised)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from sweepbench import SweepbenchError
from sweepbench.aggregate import tables
from sweepbench.plan.planner import plan, read_plan, write_plan
from sweepbench.report import document
from sweepbench.spec import resolve
from sweepbench.train import engine

pytestmark = pytest.mark.slow  # trains a tiny plan, renders HTML and PDF, starts a browser

CONFIG = {
    "title": "tiny report",
    "studies": {
        "gd_vs_sgd": {"workload": "linreg", "fixed": {"epochs": 20, "lr": 0.001},
                      "grid": {"batch_size": ["full", 1, 16]}},
        "grid": {"workload": "digits_softmax", "fixed": {"epochs": 2}, "seeds": [0, 1],
                 "grid": {"optimizer": ["sgd", "adam"], "lr": [0.01, 0.1, 50.0]},
                 "target": {"metric": "val_accuracy", "value": 0.8}},
        "scaling": {"workload": "digits_softmax", "fixed": {"epochs": 3, "gns": True}, "seeds": [0, 1],
                    "grid": {"batch_size": [8, 32, 128], "lr": [0.03, 0.3]},
                    "target": {"metric": "val_accuracy", "value": 0.8}},
    },
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    the_plan = plan(CONFIG)
    for cell in the_plan["cells"].values():
        for run in cell["runs"]:
            engine.train(resolve(run["spec"]), str(root / "runs" / run["id"]), quiet=True)
    write_plan(the_plan, str(root / "plan.json"))
    tables.aggregate(str(root / "plan.json"), str(root / "runs"), str(root / "tables"))
    return root


def render(results, out, **kw):
    return document.render(str(results / "plan.json"), str(results / "tables"), str(results / "runs"), str(out), **kw)


def test_report_structure_figures_tables_and_no_nan(results, tmp_path):
    paths = render(results, tmp_path / "report")
    page = open(paths["html"]).read()
    for section in ("summary", "study-gd_vs_sgd", "study-grid", "study-scaling", "methods"):
        assert f'id="{section}"' in page
    assert page.count('<img src="data:image/svg+xml;base64,') >= 14
    assert "Linear neuron: (w, b) paths" in page and "Optimizer x learning rate" in page
    assert "Steps to target vs batch size" in page and "Gradient noise scale" in page
    assert "<th>steps to target</th>" in page and "<th>best lr</th>" in page
    results_part = re.sub(r'src="data:[^"]*"', "", page.split('id="methods"')[0])  # Methods quotes "NaN" docs
    assert not re.search(r"\bnan\b|\bNaN\b", results_part, re.IGNORECASE)
    assert "runs diverged" in page                      # lr=50 diverges and is reported
    assert "Target crossing: the index of the first evaluation" in page   # Methods quotes the rule
    assert "<link" not in page and "http" not in page.split("<body>")[1]  # self-contained


def test_same_tables_give_the_same_html_bytes_with_any_number_of_workers(results, tmp_path):
    a = render(results, tmp_path / "a", pdf=False)
    b = render(results, tmp_path / "b", pdf=False, workers=3)    # studies drawn in forked processes
    page = open(a["html"], "rb").read()
    assert page == open(b["html"], "rb").read() and page.count(b"data:image/svg+xml") >= 3


def test_pdf_pages_and_text(results, tmp_path):
    import pypdf

    paths = render(results, tmp_path / "r")
    pdf = pypdf.PdfReader(paths["pdf"])
    assert len(pdf.pages) >= 6
    text = "".join(p.extract_text() for p in pdf.pages)
    assert "tiny report" in text and "page 1 of" in text and "Methods" in text
    assert pdf.pages[0].mediabox.width == pytest.approx(595.3, abs=1)     # A4


def test_partial_results_render_with_notes(results, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(results, partial)
    shutil.rmtree(partial / "runs" / "scaling")               # a study still running
    tables.aggregate(str(partial / "plan.json"), str(partial / "runs"), str(partial / "tables"), partial=True)
    page = open(render(partial, tmp_path / "out", pdf=False)["html"]).read()
    assert "No run of this study has a record yet" in page
    os.remove(partial / "tables" / "scaling.csv")
    page = open(render(partial, tmp_path / "out2", pdf=False)["html"]).read()
    assert "Not found: scaling" in page


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium not installed (Debian package 'chromium')")
def test_html_renders_in_headless_chromium(results, tmp_path):
    paths = render(results, tmp_path / "r", pdf=False)
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", f"--screenshot={shot}", "--window-size=1200,2400",
                           "file://" + os.path.abspath(paths["html"])], capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    assert "Uncaught" not in proc.stderr and "CONSOLE" not in proc.stderr.upper().replace("CONSOLE(", "")
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100                                # not a blank page
    assert len(img.resize((60, 120)).getcolors(maxcolors=10000)) > 20


def test_every_figure_also_as_an_svg_file_for_snakemakes_report(results, tmp_path):
    from sweepbench.report import figure_files

    old = tmp_path / "figures" / "gone" / "01-old.svg"
    figure_files.write(str(tmp_path / "figures"), {"gone/01-old.svg": b"<svg/>"})  # an earlier report's figure
    render(results, tmp_path / "report", pdf=False, figures_dir=str(tmp_path / "figures"))
    files = sorted(p.relative_to(tmp_path / "figures").as_posix() for p in (tmp_path / "figures").rglob("*.svg"))
    assert "gd_vs_sgd/04-linear-neuron-w-b-paths-over-the-mse-surface.svg" in files and not old.exists()
    assert {f.split("/")[0] for f in files} == {"gd_vs_sgd", "grid", "scaling"}
    page = open(tmp_path / "report" / "index.html").read()
    assert page.count('<img src="data:image/svg+xml;base64,') == len(files)        # one file per figure
    assert (tmp_path / "figures" / files[0]).read_text().lstrip().startswith(("<?xml", "<svg"))



def test_figures_dir_of_a_users_own_files_is_refused_untouched(results, tmp_path):
    """`report --figures-dir DIR` deleted every DIR/*/*.svg, a user's own drawings included."""
    mine = tmp_path / "figures" / "talk" / "diagram.svg"
    os.makedirs(mine.parent)
    mine.write_text("<svg/>")
    with pytest.raises(SweepbenchError, match=r"bad --figures-dir '.*figures': it holds files sweepbench did not "
                                              r"write \(talk/diagram.svg\), left untouched"):
        render(results, tmp_path / "report", pdf=False, figures_dir=str(tmp_path / "figures"))
    assert mine.read_text() == "<svg/>"


def test_an_empty_table_file_is_one_line_not_a_traceback(results, tmp_path):
    """A cells.csv cut to 0 bytes (aggregate writes every table with its header) crashed the report."""
    shutil.copytree(results / "tables", tmp_path / "tables")
    (tmp_path / "tables" / "cells.csv").write_text("")
    with pytest.raises(SweepbenchError, match=r"table .*cells.csv is empty, not even its header \(cut off\?\); "
                                              r"allowed: the tables `sweepbench aggregate` writes"):
        document.render(str(results / "plan.json"), str(tmp_path / "tables"), str(results / "runs"),
                        str(tmp_path / "out"), pdf=False)

def test_big_tables_show_a_selection_and_name_the_full_csv():
    import pandas as pd

    cells = pd.DataFrame({"optimizer": ["sgd"] * 50 + ["adam"] * 50, "effective_batch_size": list(range(1, 51)) * 2,
                          "best_val_accuracy_mean": [i / 100 for i in range(100)]})
    shown, note = document.capped(cells, "cells", "results/tables/cells.csv", key="best_val_accuracy_mean")
    assert len(shown) == document.MAX_TABLE_ROWS and shown["best_val_accuracy_mean"].min() == 0.7
    assert note == (f" Showing {document.MAX_TABLE_ROWS} of 100 cells (those with the highest best val accuracy); "
                    "all of them: results/tables/cells.csv.")
    shown, note = document.capped(cells, "rows", "x.csv")                       # evenly spaced batch sizes
    assert set(shown.groupby("optimizer")["effective_batch_size"].agg(["min", "max"]).values.ravel()) == {1, 50}
    assert len(shown) == 2 * (document.MAX_TABLE_ROWS // 2) and "batch sizes evenly spaced per optimizer" in note
    small = cells.head(10)
    assert document.capped(small, "cells", "x.csv", key="best_val_accuracy_mean") == (small, "")


def test_table_numbers_keep_one_notation_per_column_and_ids_may_wrap():
    assert [document.fmt(v) for v in (9876.4, 16904.2, 3.091e4, 1.69e6 + 0.4)] == ["9,876", "16,904", "30,910",
                                                                                "1,690,000"]
    assert document.fmt(0.12345) == "0.1235" and document.fmt(1.5e-5) == "1.5e-05" and document.fmt(181.33) == "181.3"
    assert document.fmt("digits/all/lr~0.1") == "digits/<wbr>all/<wbr>lr~0.1"
    assert document.fmt("<b>") == "&lt;b&gt;"


def test_seed_vs_sweepbench_section_table_plot_verdict_and_methods(results, tmp_path):
    the_plan = read_plan(str(results / "plan.json"))
    runs = tables.runs_table(the_plan, str(results / "runs"))[0]
    ours = runs[runs["study"] == "gd_vs_sgd"].set_index("batch_size")["final_train_loss"]
    the_plan["studies"]["gd_vs_sgd"]["reference"] = {
        "source": "seed 001, Out[9];", "metrics": {"final_train_loss": {"cell": "Out[9]"}},
        "rows": [{"batch_size": b, "final_train_loss": float(ours[b]) * 1.1} for b in (1, 16)]
        + [{"batch_size": 64, "final_train_loss": 1.0}]}
    write_plan(the_plan, str(tmp_path / "plan.json"))
    tables.aggregate(str(tmp_path / "plan.json"), str(results / "runs"), str(tmp_path / "tables"))
    out = document.render(str(tmp_path / "plan.json"), str(tmp_path / "tables"), str(results / "runs"),
                        str(tmp_path / "report"), pdf=False)
    page = open(out["html"]).read()
    section = page[page.index('id="study-gd_vs_sgd"'):page.index('id="study-grid"')]
    assert ("Seed vs sweepbench, final_train_loss: reproduced (2 of 3 printed points compared; "
            "2 within the band") in section
    assert "Source: seed 001, Out[9]; Out[9]." in section and "not run here" in section   # B=64 was not run
    assert section.count("<img") >= 1 + section.count("Seed vs sweepbench: final_train_loss")  # the overlay plot
    assert "Reproduction verdict (seed vs sweepbench)" in page and "running mean over the last" in page


def test_the_report_and_tables_steps_run_without_importing_torch(results, tmp_path):
    """The workflow's aggregate and report steps (each a process of its own) never import torch,
    including the loss-surface trajectories, which draw over the runs' generated training data."""
    code = ("import sys; from sweepbench.aggregate import tables; from sweepbench.report import document; "
            f"tables.aggregate({str(results / 'plan.json')!r}, {str(results / 'runs')!r}, {str(tmp_path / 't')!r}); "
            f"p = document.render({str(results / 'plan.json')!r}, {str(tmp_path / 't')!r}, {str(results / 'runs')!r}, "
            f"{str(tmp_path / 'r')!r}, pdf=False); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "Linear neuron: (w, b) paths" in (tmp_path / "r" / "index.html").read_text()


def test_a_figures_folder_snakemake_marked_is_the_reports_own(results, tmp_path):
    """Snakemake leaves .snakemake_timestamp in the report's figures folder: a re-run must accept it."""
    os.makedirs(tmp_path / "figures")
    (tmp_path / "figures" / ".snakemake_timestamp").write_text("")
    render(results, tmp_path / "report", pdf=False, figures_dir=str(tmp_path / "figures"))
    render(results, tmp_path / "report", pdf=False, figures_dir=str(tmp_path / "figures"))  # its own files: replaced
    assert len(list((tmp_path / "figures").rglob("*.svg"))) >= 14
