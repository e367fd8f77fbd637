"""Small building blocks of the report: a formatted table cell, a table and a figure for the
template, and a table read from a CSV file."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os

import pandas as pd

from sweepbench import SweepbenchError


def fmt(value, digits: int = 4) -> str:
    """A table cell: rounded numbers, thousands separators, no 'nan' text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool,)) or str(value) in ("True", "False"):
        return "yes" if str(value) == "True" else "no"
    if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e15):
            return f"{value:.3g}"
        if abs(value) >= 10 ** digits:  # whole numbers: never 1.69e+04 beside 9,876 in one column
            return f"{value:,.0f}"
        return f"{value:,.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return html.escape(str(value)).replace("/", "/<wbr>")  # long ids may wrap after a slash


def html_table(df: pd.DataFrame, columns: dict, caption: str = "", text: tuple = ()) -> dict:
    """{caption, headers, rows, text} for the template; columns maps column -> header with units;
    `text` names the columns of prose (left-aligned, wrapping), given by their index in `text`."""
    cols = [c for c in columns if c in df.columns]
    rows = [[fmt(row[c]) for c in cols] for _, row in df.iterrows()]
    return {"caption": caption, "headers": [columns[c] for c in cols], "rows": rows,
            "text": [i for i, c in enumerate(cols) if c in text]}


def figure(svg: str, title: str, caption: str) -> dict:
    return {"title": title, "caption": caption,
            "src": "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()}


def read_table(tables_dir: str, name: str) -> pd.DataFrame:
    """A table the report reads (an empty DataFrame when the file does not exist), checked first: UTF-8
    text, every row as long as the header, ending with a newline, and for the tables `aggregate`
    writes every cell of the kind its column holds (sweepbench.aggregate.tables.table_problem: an
    accuracy of 2.5, a count of "n/a"). Anything else is one line naming the file, line and column."""
    from sweepbench.aggregate.tables import table_problem

    path = os.path.join(tables_dir, f"{name}.csv")
    if not os.path.exists(path):
        return pd.DataFrame()
    allowed = "allowed: the tables `sweepbench aggregate` writes (run it again)"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise SweepbenchError(f"table {path} is not UTF-8 text (byte {err.start}); {allowed}") from None
    except OSError as err:  # a folder where the table should be, an unreadable file
        raise SweepbenchError(f"table {path} cannot be read ({err.strerror}); {allowed}") from None
    if not text.strip():  # aggregate writes every table with its header, even when it has no rows
        raise SweepbenchError(f"table {path} is empty, not even its header (cut off?); {allowed}")
    if not text.endswith("\n"):
        raise SweepbenchError(f"table {path} does not end with a newline (cut off?); {allowed}")
    header, *rows = csv.reader(io.StringIO(text))
    problem = table_problem(name, header, rows)
    if problem:
        raise SweepbenchError(f"table {path} {problem}; {allowed}")
    return pd.read_csv(io.StringIO(text))
