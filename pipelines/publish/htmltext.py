"""Text from data as pages show it: one rule for missing values, one for HTML escaping.

Every page gridwatch writes (maps, task lists, the start page, reports) shows
values that may be missing (None, NaN, pandas' <NA>) and text that comes from
users' files (cell and county names, supervisors, enterprises). Templates
escape by themselves; the few fragments still built in Python use :func:`esc`.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

__all__ = ["esc", "text"]


def text(value: object, missing: str = "") -> str:
    """``value`` as display text, or ``missing`` for None, NaN, NaT and <NA>.

    Lists and arrays (e.g. ``cells_touched``) are never "missing", whatever they hold.
    """
    if value is None or value is pd.NA:
        return missing
    if not isinstance(value, (list, tuple, np.ndarray)):
        try:
            if pd.isna(value):
                return missing
        except (TypeError, ValueError):  # objects pandas cannot judge are shown as they are
            pass
    return str(value)


def esc(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute; markup (``markupsafe.Markup``) passes unchanged."""
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return html.escape(text(value), quote=True)
