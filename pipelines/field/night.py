"""What a night takes from the verification store: read once, at the start of the night's field work.

* the mask of verified heat sources (``mask``), applied to the classified fires;
* the results of the previous day's suspected straw-burning events, for the report's
  ``verified``, ``confirmed``, ``false_alarm`` and ``verification_rate``;
* which tasks were verified already (pages show them as done), and each supervisor's
  token for the marking controls of their page.

A store that cannot be read loses only these (a skip, the run ends partial), never the night.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.core.settings import Config
from pipelines.core.skips import Skip
from pipelines.field.marks import VERIFIED, load_secret, supervisor_token
from pipelines.field.mask import MaskRule, apply_mask, verified_places
from pipelines.field.store import MARK_COLUMNS, StoreError, store_for

log = logging.getLogger(__name__)


@dataclass
class FieldNight:
    """The store as the night of ``day`` sees it (marks of that day and before, read in one transaction)."""

    day: dt.date
    marks: pd.DataFrame  # store.MARK_COLUMNS
    secret: bytes
    rule: MaskRule = MaskRule()
    skips: list[Skip] = field(default_factory=list)
    masked: int = 0  # fires masked tonight
    places: int = 0  # verified places in the mask

    @classmethod
    def load(cls, config: Config, out_root: Path, day: dt.date) -> FieldNight:
        v = config.verification
        store = store_for(v.store, out_root, config.base_dir)
        rule = MaskRule(radius_km=v.mask_km, dismissed_times=v.dismissed_times)
        skips = []
        try:
            marks = store.marks()
            marks = marks[marks["day"] <= day] if len(marks) else marks
        except StoreError as exc:
            log.error("verification store: %s: no verified mask, report columns unknown", exc)
            skips.append(Skip("[verification] store", f"{exc}; verified heat sources are not masked tonight", field="store"))
            marks = pd.DataFrame(columns=MARK_COLUMNS)
        secret = load_secret(v.secret_env, Path(out_root) / "state")
        return cls(day, marks, secret, rule, skips)

    def token(self, supervisor: str) -> str:
        return supervisor_token(self.secret, supervisor)

    @property
    def verified(self) -> dict[str, tuple[str, str]]:
        """Item id -> (result, day) of its latest result on the spot: pages show those tasks as done."""
        done = self.marks[self.marks["result"].isin(VERIFIED)].sort_values("marked_utc")
        return {str(r.item_id): (str(r.result), r.day.isoformat()) for r in done.itertuples(index=False)}

    def mask(self, fires: pd.DataFrame) -> pd.DataFrame:
        """``fires`` with those near a verified heat source (marks of days before tonight) made ``persistent``."""
        places = verified_places(self.marks[self.marks["day"] < self.day] if len(self.marks) else self.marks, self.rule)
        self.places = len(places)
        fires, self.masked = apply_mask(fires, places, self.rule)
        if self.masked:
            log.info("%d fire(s) masked as verified heat sources (%d place(s) in the verification store)", self.masked, self.places)
        return fires

    def previous_day_results(self, events: pd.DataFrame | None) -> pd.DataFrame | None:
        """The previous day's suspected straw-burning events (``cell_id``) with the latest ``result`` of any of their
        tasks (<NA>: not marked); None when that run is not in the output folder (the report's columns are then unknown)."""
        if events is None:
            return None
        straw = events[events["category"].astype(str) == "straw_suspect"]
        previous = self.day - dt.timedelta(days=1)
        marks = self.marks[self.marks["day"] == previous] if len(self.marks) else self.marks
        latest = marks.sort_values("marked_utc").groupby("item_id")["result"].last() if len(marks) else pd.Series(dtype=object)
        return pd.DataFrame({"cell_id": straw["cell_id"].astype("string").to_numpy(),
                             "result": straw["event_id"].astype(str).map(latest).astype("string").to_numpy()})

    def counts(self) -> dict[str, int]:
        """For run.json: what the store held and did tonight."""
        return {"marks_in_store": int(len(self.marks)), "verified_places": self.places, "fires_masked": self.masked}
