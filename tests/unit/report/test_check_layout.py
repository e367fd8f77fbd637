"""How the check section and the tables look: an A/A check of a default-sized sweep fits one PDF
page, no word of the PDF leaves its page, and in a browser wide tables scroll in their own box,
sort and filter with JavaScript and show every row without it."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "check"))
from test_compare import seeds  # noqa: E402
from test_document import results  # noqa: E402, F401  (a fixture: a tiny plan, trained)

from sweepbench.check import compare  # noqa: E402
from sweepbench.report import document  # noqa: E402

pytestmark = pytest.mark.slow  # renders PDFs, starts a browser
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
STUDIES = {"linreg_batch": 5, "logreg_sampling": 3, "digits_optimizers": 32, "digits_batch_scaling": 40,
           "throughput": 5}   # the default config's cells per study


def sweep(n_seeds: int, seed0: int, shift: float = 0.0) -> pd.DataFrame:
    """Per-seed rows of the default config's 85 cells, accuracies drawn around 0.9 (+ shift)."""
    rng = np.random.default_rng(seed0)
    parts = []
    for study, n in STUDIES.items():
        for i in range(n):
            acc = tuple(rng.normal(0.9 + shift, 0.006, n_seeds).round(4))
            parts.append(seeds(cells=(f"{study}/all/c~{i}",), acc=acc, seed0=seed0).assign(study=study))
    return pd.concat(parts, ignore_index=True)


def check_dir(tmp_path, current: pd.DataFrame) -> str:
    for name, df in (("base", sweep(10, 10)), ("now", current)):
        os.makedirs(tmp_path / name, exist_ok=True)
        df.assign(git_commit="abc").to_csv(tmp_path / name / "runs.csv", index=False)
    compare.save_baseline("default", str(tmp_path / "base"), str(tmp_path / "baselines"))
    compare.run_check("default", str(tmp_path / "now"), str(tmp_path / "check"), None, str(tmp_path / "baselines"))
    return str(tmp_path / "check")


def render(results, tmp_path, check, **kw):  # noqa: F811
    return document.render(str(results / "plan.json"), str(results / "tables"), str(results / "runs"),
                           str(tmp_path / "report"), check_dir=check, **kw)


def pages_and_words(pdf_path):
    import pdfplumber

    with pdfplumber.open(pdf_path) as pdf:
        return [(page.width, page.height, page.extract_text() or "", page.extract_words()) for page in pdf.pages]


def test_an_aa_check_of_a_default_sized_sweep_fits_one_pdf_page_and_no_word_leaves_its_page(results, tmp_path):  # noqa: F811
    pytest.importorskip("pdfplumber")
    check = check_dir(tmp_path, sweep(3, 100))
    assert pd.read_csv(os.path.join(check, "check.csv"))["verdict"].eq("pass").mean() > 0.9   # really an A/A check
    paths = render(results, tmp_path, check)
    assert '<details class="full-table">' in open(paths["html"]).read()   # the page has it; the PDF's page not
    pages = pages_and_words(paths["pdf"])
    first = next(i for i, (_, _, text, _) in enumerate(pages) if text.startswith("Regression check"))
    text = pages[first][2]
    assert "PASS against baseline 'default': no regression in" in text and "By verdict and reason" in text
    assert "Change from the baseline." in text and "How sure the check is" in text
    assert "Baseline: seeds 10-19 in every study" in text and "check.csv" in text
    assert pages[first + 1][2].startswith("gd_vs_sgd")       # the next section starts the next page: one page
    assert "Every comparison (" not in "".join(p[2] for p in pages)    # the folded full table is not printed
    for number, (width, height, _, words) in enumerate(pages, 1):
        out = [w["text"] for w in words if w["x0"] < 0 or w["x1"] > width or w["top"] < 0 or w["bottom"] > height]
        assert not out, f"page {number}: words outside the page: {out[:5]}"


def test_a_regression_is_listed_alone_and_every_table_stays_inside_the_pdf_page(results, tmp_path):  # noqa: F811
    pytest.importorskip("pdfplumber")
    current = sweep(3, 100)
    bad = current["cell"] == "digits_optimizers/all/c~3"
    current.loc[bad, ["final_val_accuracy", "best_val_accuracy"]] -= 0.05
    pages = pages_and_words(render(results, tmp_path, check_dir(tmp_path, current))["pdf"])
    text = "\n".join(p[2] for p in pages)
    assert "REGRESSION against baseline 'default'" in text and "Regressions and improvements (" in text
    assert re.search(r"regression \d+: .*final val accuracy worse", text)
    for number, (width, height, _, words) in enumerate(pages, 1):
        out = [w["text"] for w in words if w["x0"] < 0 or w["x1"] > width or w["bottom"] > height]
        assert not out, f"page {number}: words outside the page: {out[:5]}"


PROBE = """<script>
(function () {
  var out = {}, body = document.body.getBoundingClientRect();
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  out.page_fits = document.documentElement.scrollWidth <= window.innerWidth;
  out.wraps = Array.from(document.querySelectorAll(".table-wrap")).map(function (w) {
    var r = w.getBoundingClientRect();
    return {inside: r.right <= body.right + 1, wide: w.scrollWidth > w.clientWidth + 1,
            scrolls: getComputedStyle(w).overflowX === "auto"};
  });
  var full = document.querySelector("details.full-table table");
  var box = document.querySelector("details.full-table input");
  box.value = "regression"; box.dispatchEvent(new Event("input"));
  out.shown = Array.from(full.tBodies[0].rows).filter(function (r) { return !r.hidden; }).length;
  out.total = full.tBodies[0].rows.length;
  box.value = ""; box.dispatchEvent(new Event("input"));
  var th = Array.from(full.tHead.rows[0].cells).find(function (h) { return h.textContent === "p adj."; });
  th.click();
  var col = th.cellIndex;
  var values = Array.from(full.tBodies[0].rows).map(function (r) { return r.cells[col].textContent; });
  out.first_p = values[0]; out.sorted_by = th.getAttribute("aria-sort");
  document.body.setAttribute("data-probe", JSON.stringify(out));
})();
</script></body>"""


def dump_dom(html_path) -> str:
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400",
                           "--virtual-time-budget=5000", "--dump-dom", "file://" + os.path.abspath(html_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(not BROWSER, reason="headless Chromium not installed (Debian package 'chromium')")
def test_in_a_browser_wide_tables_scroll_in_their_box_sort_and_filter_and_read_without_javascript(results,  # noqa: F811
                                                                                                tmp_path):
    import html
    import json

    current = sweep(3, 100)
    current.loc[current["cell"] == "digits_optimizers/all/c~3", "final_val_accuracy"] -= 0.05
    page = render(results, tmp_path, check_dir(tmp_path, current), pdf=False)["html"]
    source = open(page).read()
    rows = source.count("<tr>")
    probe = tmp_path / "report" / "probe.html"
    probe.write_text(source.replace("</body>", PROBE))
    found = re.search(r'data-probe="([^"]*)"', dump_dom(probe))
    assert found, "the probe script did not run"
    out = json.loads(html.unescape(found.group(1)))
    assert out["page_fits"]                                         # the page itself never scrolls sideways
    assert all(w["inside"] for w in out["wraps"]) and any(w["wide"] for w in out["wraps"])
    assert all(w["scrolls"] for w in out["wraps"] if w["wide"])     # a wide table scrolls in its own box
    assert out["total"] == len(pd.read_csv(tmp_path / "check" / "check.csv")) and 1 <= out["shown"] < 10
    assert out["sorted_by"] == "ascending" and float(out["first_p"]) < 0.01     # the regression's p adj. first
    # JavaScript off: the page as written, without its script (Chromium's scriptEnabled=false also stops --dump-dom)
    no_js = tmp_path / "report" / "no_js.html"
    no_js.write_text(re.sub(r"<script>.*?</script>", "", source, flags=re.S))
    plain = dump_dom(no_js)
    assert plain.count("<tr>") == rows and 'class="table-tools"' not in plain and " hidden" not in plain
    assert "<details" in plain and "Every comparison (" in plain and "check.csv</a>" in plain
