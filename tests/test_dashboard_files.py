"""Refreshing the Dashboard writes a CSV each time; the old ones must not pile up on disk."""

from __future__ import annotations

import os
import time

from cogscope.ui import dashboard_tab


def test_old_csv_files_are_removed_and_fresh_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(dashboard_tab, "CSV_DIR", tmp_path)
    old = tmp_path / "cogscope-cycles-old.csv"
    old.write_text("trace_id\n")
    stale = time.time() - dashboard_tab.CSV_KEEP_S - 60
    os.utime(old, (stale, stale))
    recent = dashboard_tab._csv_path()
    recent.write_text("trace_id\n")
    other = tmp_path / "notes.txt"
    other.write_text("not ours")
    os.utime(other, (stale, stale))

    newest = dashboard_tab._csv_path()

    assert not old.exists()
    assert recent.exists() and newest.exists() and newest != recent
    assert other.exists()  # only cogscope's own CSVs are cleared
