"""The report's figures as SVG files, <folder>/<study>/<nn>-<title>.svg (for `snakemake --report`),
and which files in such a folder are the report's own: those its WRITTEN list names with their
content (sweepbench.atomic.write_own). A folder without that list is not the report's: a user's
pics/trip/01-beach.svg has a figure's name, so names recognise nothing (a figures folder of an
older sweepbench, without the list, is refused once: move it away). Cheap to import: the
workflow checks the report's figures folder when it starts, before Snakemake clears it for the report job."""

from __future__ import annotations

import os
import re

from sweepbench.atomic import WRITTEN, refuse_foreign, write_own, written, wrote

FIGURE_FILE = re.compile(r"[^/]+/\d{2,}-[a-z0-9-]*\.svg")  # <study>/<nn>-<title slug>.svg


SNAKEMAKE_MARK = ".snakemake_timestamp"  # Snakemake marks a directory output it made with this file


def owned_by_report(folder: str):
    """The test of a file (path relative to the figures folder, with /) being the report's own: a
    figure (<study>/<nn>-<slug>.svg) its WRITTEN list names with this content, the list itself, the
    mark Snakemake leaves in the workflow's figures folder. In a folder with no list, only the mark."""
    if not os.path.lexists(os.path.join(folder, WRITTEN)):
        return lambda rel: rel == SNAKEMAKE_MARK
    listed = written(folder)  # a figure it wrote: another output's files listed there (tables) are not figures
    return lambda rel: rel in (SNAKEMAKE_MARK, WRITTEN) or (FIGURE_FILE.fullmatch(rel) is not None
                                                           and wrote(folder, rel, listed))


def figure_name(study: str, index: int, title: str) -> str:
    """Where figure number `index` (from 1) of a study's section goes, relative to the folder."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"{study}/{index:02d}-{slug}.svg"


def check_folder(folder: str, what: str = "--figures-dir") -> None:
    """Refuse (one line, nothing touched) a figures folder that holds files the report did not write."""
    refuse_foreign(folder, owned_by_report(folder), what)


def clear(folder: str, what: str = "--figures-dir") -> None:
    """Remove the report's earlier files (and their studies' folders) from the folder, after
    check_folder: a folder that holds anything else is refused and left untouched."""
    check_folder(folder, what)
    for parent, _, files in os.walk(folder, topdown=False):
        for name in files:
            if not (parent == folder and name == SNAKEMAKE_MARK):
                os.remove(os.path.join(parent, name))
        if parent != folder:
            os.rmdir(parent)  # a study's folder the report made, now empty


def write(folder: str, figures: dict[str, bytes], what: str = "--figures-dir") -> list[str]:
    """Replace the report's earlier figures in the folder (clear) by `figures` ({figure_name: SVG
    bytes}), recorded in its WRITTEN list. Returns their paths."""
    clear(folder, what)
    return write_own(folder, figures, what)
