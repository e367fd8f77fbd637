"""Small building blocks of the report: a formatted table cell, a table and a figure for the
template, and a table read from a CSV file."""

from __future__ import annotations

import base64
import html
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
    path = os.path.join(tables_dir, f"{name}.csv")
    if not os.path.exists(path):
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # aggregate writes every table with its header, even when it has no rows
        raise SweepbenchError(f"table {path} is empty, not even its header (cut off?); allowed: the tables "
                              "`sweepbench aggregate` writes (run it again)") from None
