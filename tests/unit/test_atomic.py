"""atomic.write_own: an output that writes named files into a folder replaces only files it wrote
there itself (listed, with their content's sha256, in the folder's WRITTEN list)."""

import json
import os

import pytest

from sweepbench import SweepbenchError
from sweepbench.atomic import WRITTEN, refuse_overwrite, write_own, wrote


def test_write_own_replaces_its_own_files_and_refuses_a_users_untouched(tmp_path):
    folder = tmp_path / "out"
    write_own(str(folder), {"a.csv": "x\n1\n", "b.json": b"{}"}, "--out")
    listed = json.loads((folder / WRITTEN).read_text())["files"]
    assert sorted(listed) == ["a.csv", "b.json"] and all(len(v) == 1 and len(v[0]) == 64 for v in listed.values())
    write_own(str(folder), {"a.csv": "x\n2\n", "b.json": b"{}"}, "--out")       # its own files: replaced
    assert (folder / "a.csv").read_text() == "x\n2\n" and wrote(str(folder), "a.csv")
    (folder / "b.json").write_text('{"mine": 1}')                                 # edited by hand since
    (folder / "notes.txt").write_text("mine")                                      # beside: not its business
    with pytest.raises(SweepbenchError, match=r"^bad --out '.*out': it holds b.json, which sweepbench did not write "
                                              r"there \(or which changed since\), left untouched; allowed: a new "
                                              r"folder, or one where sweepbench wrote these files"):
        write_own(str(folder), {"a.csv": "x\n3\n", "b.json": b"{}"}, "--out")
    assert (folder / "a.csv").read_text() == "x\n2\n" and (folder / "b.json").read_text() == '{"mine": 1}'
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_file_without_a_written_list_or_a_link_is_not_its_own(tmp_path):
    (tmp_path / "index.html").write_text("<p>my page</p>")                  # a user's folder, no list
    os.symlink(tmp_path / "index.html", tmp_path / "report.pdf")
    for names in (["index.html"], ["report.pdf"]):
        with pytest.raises(SweepbenchError, match=f"it holds {names[0]}, which sweepbench did not write"):
            refuse_overwrite(str(tmp_path), names, "--out")
    (tmp_path / WRITTEN).write_text("{not json")                            # an unreadable list recognises nothing
    with pytest.raises(SweepbenchError, match="it holds index.html"):
        refuse_overwrite(str(tmp_path), ["index.html"], "--out")
    with pytest.raises(SweepbenchError, match=r"bad --out '.*index.html': it is an existing file; allowed: a folder"):
        refuse_overwrite(str(tmp_path / "index.html"), ["x"], "--out")
    assert (tmp_path / "index.html").read_text() == "<p>my page</p>"


def test_a_write_cut_short_leaves_its_files_recognised(tmp_path, monkeypatch):
    """While the files are written the list accepts the old and the new content, so a crash between
    two files leaves nothing the next run would refuse."""
    import sweepbench.atomic as atomic

    write_own(str(tmp_path), {"a": "old a", "b": "old b"}, "--out")
    real = atomic.write_file

    def crash_on_b(path, data):
        if path.endswith("/b"):
            raise SweepbenchError("disk full")
        real(path, data)

    monkeypatch.setattr(atomic, "write_file", crash_on_b)
    with pytest.raises(SweepbenchError, match="disk full"):
        write_own(str(tmp_path), {"a": "new a", "b": "new b"}, "--out")
    monkeypatch.undo()
    assert (tmp_path / "a").read_text() == "new a" and (tmp_path / "b").read_text() == "old b"
    write_own(str(tmp_path), {"a": "a 3", "b": "b 3"}, "--out")
    assert (tmp_path / "b").read_text() == "b 3"


def test_a_folder_is_replaced_only_by_the_output_that_wrote_it(tmp_path):
    """The WRITTEN list names the output that wrote the folder: `train --out baselines/real` replaced a
    saved baseline, `baseline save tables --root results` deleted the tables, `baseline save` into a run
    record replaced it, all because any output's list was taken as one's own."""
    from sweepbench.atomic import list_written, owned_in, written_kind
    from sweepbench.record import RECORD_FILES, RECORD_KIND, check_replaceable

    base = tmp_path / "baselines" / "real"
    os.makedirs(base)
    for name in ("seeds.csv", "meta.json"):
        (base / name).write_text("x")
    list_written(str(base), ["seeds.csv", "meta.json"], "baseline")
    with pytest.raises(SweepbenchError, match=r"bad --out '.*real': it holds other files \(.*meta.json"):
        check_replaceable(str(base))                                      # a run's --out
    tables = tmp_path / "results" / "tables"
    write_own(str(tables), {"runs.csv": "a\n1\n"}, "--out")
    assert written_kind(str(tables)) == "files" and not owned_in(str(tables))("runs.csv")  # a baseline save there
    run = tmp_path / "run"
    os.makedirs(run)
    for name in RECORD_FILES:
        (run / name).write_text('{"schema_version": 1}' if name == "run.json" else "x")
    list_written(str(run), RECORD_FILES, RECORD_KIND)
    assert not owned_in(str(run))("run.json") and owned_in(str(run), kind=RECORD_KIND)("run.json")
    check_replaceable(str(run))                                           # its own kind: replaceable
    listed = json.loads((run / WRITTEN).read_text())
    (run / WRITTEN).write_text(json.dumps({"files": listed["files"]}))   # an older sweepbench's list: no kind
    check_replaceable(str(run))                                           # a record's shape: still a record
    (run / "run.json").write_text('{"my": "notes"}')                     # not a record's shape
    with pytest.raises(SweepbenchError, match=r"holds other files \(.*run.json"):
        check_replaceable(str(run))
