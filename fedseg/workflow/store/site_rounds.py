"""The one place the store loops import the site-round functions from (train, export, verify a global).

Kept apart so that moving those functions between modules changes a single import line.
"""

from __future__ import annotations

from fedseg.workflow.rounds import global_filename, read_global, site_of_key, train_local, write_initial_global

__all__ = ["global_filename", "read_global", "site_of_key", "train_local", "write_initial_global"]
