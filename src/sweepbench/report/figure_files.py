"""The report's figures as SVG files, <folder>/<study>/<nn>-<title>.svg (for `snakemake --report`),
and which files in such a folder are the report's own. Cheap to import: the workflow checks the
report's figures folder when it starts, before Snakemake clears it for the report job."""

from __future__ import annotations

import glob
import os
import re

from sweepbench.atomic import refuse_foreign

FIGURE_FILE = re.compile(r"[^/]+/\d{2,}-[a-z0-9-]*\.svg")  # <study>/<nn>-<title slug>.svg


SNAKEMAKE_MARK = ".snakemake_timestamp"  # Snakemake marks a directory output it made with this file


def is_figure_file(relative_path: str) -> bool:
    """Whether a file (path relative to the figures folder, with /) is one the report writes, or the
    mark Snakemake leaves in the workflow's figures folder."""
    return relative_path == SNAKEMAKE_MARK or FIGURE_FILE.fullmatch(relative_path) is not None


def figure_path(folder: str, study: str, index: int, title: str) -> str:
    """Where figure number `index` (from 1) of a study's section goes."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return os.path.join(folder, study, f"{index:02d}-{slug}.svg")


def check_folder(folder: str, what: str = "--figures-dir") -> None:
    """Refuse (one line, nothing touched) a figures folder that holds files the report did not write."""
    refuse_foreign(folder, is_figure_file, what)


def clear(folder: str, what: str = "--figures-dir") -> None:
    """Remove the report's earlier SVG files (and their studies' folders) from the folder, after
    check_folder: a folder that holds anything else is refused and left untouched."""
    check_folder(folder, what)
    for path in glob.glob(os.path.join(folder, "*", "*.svg")):
        os.remove(path)
    for study in glob.glob(os.path.join(folder, "*", "")):  # the studies' folders it made, now empty
        os.rmdir(study)
