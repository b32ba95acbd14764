"""Every configuration key is documented in the README's configuration table, and config.toml loads."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from pipelines.core.settings import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


def config_keys(cls: type = Config, section: str = "") -> set[tuple[str, str]]:
    """(section, key) of every setting, nested tables included."""
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("source", "notes"):  # where the config came from, and what it left out: not keys
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = args[0] if args else hint
        if typing.get_origin(inner) is tuple and dataclasses.is_dataclass(typing.get_args(inner)[0]):
            inner = typing.get_args(inner)[0]  # an array of tables
        if dataclasses.is_dataclass(inner):
            keys |= config_keys(inner, f"{section}.{f.name}" if section else f.name)
        else:
            keys.add((section, f.name))
    return keys


def documented() -> set[tuple[str, str]]:
    """(section, key) pairs named in the README's configuration table rows."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Configuration"):]
    found = set()
    for row in table.splitlines():
        if not row.startswith("| `["):
            continue
        first = row.split("|")[1]
        sections = re.findall(r"\[\[?([\w.<>]+)\]\]?", first)
        names = re.findall(r"`(?:\[\[?[\w.<>]+\]\]? )?(\w+)`", first)
        for section in sections:
            for expanded in ([section.replace("<level>", lv) for lv in ("yellow", "orange", "red")] if "<level>" in section else [section]):
                found |= {(expanded, n) for n in names}
    return found


def test_every_config_key_is_in_the_readme() -> None:
    missing = sorted(f"[{s}] {k}" for s, k in config_keys() - documented())
    assert not missing, f"README configuration table lacks: {missing}"


def test_the_shipped_config_loads() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.electricity is not None and config.maps.language in ("zh", "en", "both")
