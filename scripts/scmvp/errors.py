"""Errors raised on bad user input.

Every problem that a user can fix (a missing file, a wrong format, mismatched barcodes, NaN counts...)
is raised as :class:`InputError`, whose message names the file and the problem. Rule scripts turn it
into one clear line on stderr and in the rule's log and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import os


class InputError(Exception):
    """A problem with user input that the user can fix."""

    def __init__(self, path, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")


def require_file(path, what: str = "input file"):
    """Raise InputError unless ``path`` exists (file or folder)."""
    if path is None or not os.path.exists(path):
        raise InputError(path, f"{what} does not exist")
    return path
