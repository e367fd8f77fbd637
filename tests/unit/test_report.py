"""The report rendered from small generated tables and records (real training runs of a
tiny plan, so every reader of the run record is exercised)."""

import os
import re
import shutil
import subprocess

import pytest

from sweepbench import engine, report, tables
from sweepbench.plan import plan
from sweepbench.spec import resolve

CONFIG = {
    "title": "tiny report",
    "studies": {
        "gd_vs_sgd": {"workload": "linreg", "fixed": {"epochs": 20, "lr": 0.001}, "grid": {"batch_size": ["full", 1, 16]}},
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
    import json
    (root / "plan.json").write_text(json.dumps(the_plan))
    tables.aggregate(str(root / "plan.json"), str(root / "runs"), str(root / "tables"))
    return root


def render(results, out, **kw):
    return report.render(str(results / "plan.json"), str(results / "tables"), str(results / "runs"), str(out), **kw)


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


def test_same_tables_give_the_same_html_bytes(results, tmp_path):
    a = render(results, tmp_path / "a", pdf=False)
    b = render(results, tmp_path / "b", pdf=False)
    assert open(a["html"], "rb").read() == open(b["html"], "rb").read()


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
    tables.aggregate(str(partial / "plan.json"), str(partial / "runs"), str(partial / "tables"))
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


def test_seed_vs_sweepbench_section_table_plot_verdict_and_methods(results, tmp_path):
    import json

    the_plan = json.loads((results / "plan.json").read_text())
    runs = tables.runs_table(the_plan, str(results / "runs"), warn=print)[0]
    ours = runs[runs["study"] == "gd_vs_sgd"].set_index("batch_size")["final_train_loss"]
    the_plan["studies"]["gd_vs_sgd"]["reference"] = {
        "source": "seed 001, Out[9];", "metrics": {"final_train_loss": {"cell": "Out[9]"}},
        "rows": [{"batch_size": b, "final_train_loss": float(ours[b]) * 1.1} for b in (1, 16)]
        + [{"batch_size": 64, "final_train_loss": 1.0}]}
    (tmp_path / "plan.json").write_text(json.dumps(the_plan))
    tables.aggregate(str(tmp_path / "plan.json"), str(results / "runs"), str(tmp_path / "tables"))
    out = report.render(str(tmp_path / "plan.json"), str(tmp_path / "tables"), str(results / "runs"),
                        str(tmp_path / "report"), pdf=False)
    page = open(out["html"]).read()
    section = page[page.index('id="study-gd_vs_sgd"'):page.index('id="study-grid"')]
    assert "Seed vs sweepbench, final_train_loss: reproduced (2 of 3 printed points compared; 2 within the band" in section
    assert "Source: seed 001, Out[9]; Out[9]." in section and "not run here" in section   # B=64 was not run
    assert section.count("<img") >= 1 + section.count("Seed vs sweepbench: final_train_loss")  # the overlay plot
    assert "Reproduction verdict (seed vs sweepbench)" in page and "running mean over the last" in page
