"""CSV reading and atomic writing, re-exported from :mod:`vqc.io` for code written against
their old place."""

from __future__ import annotations

from vqc.io import csv_row, folder_problem, read_csv, write_atomic, write_csv_atomic

__all__ = ["csv_row", "folder_problem", "read_csv", "write_atomic", "write_csv_atomic"]
