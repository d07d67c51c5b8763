"""Helpers for files going out to people (CSV, Excel)."""

import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def escape_cell(value):
    """Make a cell safe for spreadsheets: text that could start a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value
