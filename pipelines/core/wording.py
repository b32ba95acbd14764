"""Numbers and sentences as a grid supervisor (网格员) or a county official reads them.

Every page of a run is Chinese first, English second, in the language of
``[maps] language``: "zh" (Chinese only: no English sentence shows), "en" or
"both" (``中文 English``). Tables keep a bilingual column (``reason``,
``evidence``) for analysts, plus one column per language (``reason_zh``,
``reason_en``...) that the pages pick from with :func:`pick`.

Numbers are rounded to what a reader can use, in their units: electricity in
kWh (万千瓦时 from 10,000 kWh on), areas in 亩 and hectares (1 ha = 15 亩),
shares as whole percents, fire strength (FRP, MW) as 弱/中/强 words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from pipelines.core.settings import LANGUAGES

Language = Literal["both", "zh", "en"]
MU_PER_HA = 15.0  # 1 公顷 = 15 亩 (the 市亩 of 666.7 m²)

# Fire radiative power (MW) bands in words. Burning straw in a field is a few to a few tens of MW
# per pixel; industrial flares and big fires reach hundreds. Lower bounds of each band.
FRP_WORDS = ((0.0, "弱", "weak"), (10.0, "中等", "moderate"), (50.0, "强", "strong"))


def check_language(language: str) -> None:
    """ValueError unless ``language`` is "zh", "en" or "both"."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")


def t(zh: str, en: str, language: str) -> str:
    """A fixed text in the page's language(s): ``zh``, ``en`` or ``"zh en"``."""
    if language == "zh":
        return zh
    if language == "en":
        return en
    return f"{zh} {en}"


def _missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def pick(rec: Mapping[str, Any], column: str, language: str) -> str:
    """A data sentence (``reason``, ``evidence``) in the page's language.

    Uses ``<column>_zh`` / ``<column>_en`` when the record has them, else the
    bilingual ``<column>`` as it is (tables written before the split).
    """
    zh, en, both = rec.get(f"{column}_zh"), rec.get(f"{column}_en"), rec.get(column)
    if _missing(zh) and _missing(en):
        return "" if _missing(both) else str(both)
    zh_text = "" if _missing(zh) else str(zh)
    en_text = "" if _missing(en) else str(en)
    if language == "zh":
        return zh_text or en_text
    if language == "en":
        return en_text or zh_text
    return " ".join(p for p in (zh_text, en_text) if p)


def kwh_zh(value: float) -> str:
    """An amount of electricity in Chinese: ``811 千瓦时`` or ``2.5 万千瓦时`` (from 10,000 on)."""
    if _missing(value) or not math.isfinite(float(value)):
        return "未知"
    v = float(value)
    if abs(v) >= 10_000:
        return f"{v / 10_000:.1f} 万千瓦时"
    return f"{v:,.0f} 千瓦时"


def kwh_en(value: float) -> str:
    """An amount of electricity in English: ``811 kWh``, ``25,300 kWh``."""
    if _missing(value) or not math.isfinite(float(value)):
        return "unknown"
    return f"{float(value):,.0f} kWh"


def area(ha: float, language: str) -> str:
    """An area given in hectares as ``1.2 万亩（800 公顷）`` / ``800 ha``; rounded to 3 significant digits."""
    if _missing(ha) or not math.isfinite(float(ha)):
        return t("未知", "unknown", language)
    mu = float(ha) * MU_PER_HA
    mu_text = f"{round_sig(mu / 10_000)} 万亩" if mu >= 10_000 else f"{round_sig(mu):,} 亩"
    zh = f"{mu_text}（{round_sig(float(ha)):,} 公顷）"
    return t(zh, f"{round_sig(float(ha)):,} ha", language)


def round_sig(value: float, digits: int = 3) -> float | int:
    """``value`` to ``digits`` significant digits; an int when that has no decimals."""
    if value == 0 or not math.isfinite(value):
        return 0 if value == 0 else value
    places = digits - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, places)
    return int(rounded) if places <= 0 or float(rounded).is_integer() else rounded


def frp_words(frp_mw: float, language: str) -> str:
    """Fire strength in plain words: ``火点强度：中等`` (with the MW behind it in English)."""
    if _missing(frp_mw) or not math.isfinite(float(frp_mw)):
        return ""
    zh, en = next((z, e) for low, z, e in reversed(FRP_WORDS) if float(frp_mw) >= low)
    return t(f"火点强度：{zh}", f"fire strength: {en} ({float(frp_mw):.0f} MW)", language)


def percent(value: float) -> str:
    """A 0-1 share as a whole percent."""
    return "—" if _missing(value) else f"{float(value):.0%}"
