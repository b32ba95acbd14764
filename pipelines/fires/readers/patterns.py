"""File-name patterns with named fields, as product declarations write them.

A pattern is the file name with ``{field}`` or ``{field:spec}`` where it
varies; ``spec`` is ``Ns`` (N characters), ``s`` (any text), ``Nd`` (N
digits), ``d`` (digits) or a ``strptime`` format such as ``%Y%j.%H%M`` (the
field is then a ``datetime``); ``*`` matches anything. Example::

    pattern = FilePattern("{platform:3s}14.A{start_time:%Y%j.%H%M}.{collection:3d}.{created:13d}.hdf")
    pattern.parse("MOD14.A2017001.1655.006.2017004111822.hdf")
    # {"platform": "MOD", "start_time": datetime(2017, 1, 1, 16, 55), "collection": 6, "created": 2017004111822}

Times parsed from names are naive; products' names give UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from pipelines.core.exceptions import PatternError

# strptime directives we accept, and what each matches.
_DIRECTIVES = {"Y": r"\d{4}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}", "S": r"\d{2}", "j": r"\d{3}", "f": r"\d{1,6}"}
_FIELD = re.compile(r"\{(?P<name>\w+)(?::(?P<spec>[^{}]*))?\}")


def _time_regex(spec: str, pattern: str) -> str:
    out, i = [], 0
    while i < len(spec):
        if spec[i] == "%":
            code = spec[i + 1 : i + 2]
            if code not in _DIRECTIVES:
                raise PatternError(f"{pattern!r}: unsupported time directive %{code}")
            out.append(_DIRECTIVES[code])
            i += 2
        else:
            out.append(re.escape(spec[i]))
            i += 1
    return "".join(out)


def _field_regex(spec: str | None, pattern: str) -> tuple[str, str]:
    """(regex, kind) of one field: kind is "text", "int" or a strptime format."""
    if not spec or spec == "s":
        return r".+?", "text"
    if "%" in spec:
        return _time_regex(spec, pattern), spec
    width = re.fullmatch(r"(\d*)([sd])", spec)
    if width is None:
        raise PatternError(f"{pattern!r}: unsupported field spec {spec!r}")
    n, kind = width.groups()
    body = "." if kind == "s" else r"\d"
    return (body + (f"{{{n}}}" if n else "+?")), ("text" if kind == "s" else "int")


@dataclass(frozen=True)
class FilePattern:
    """A compiled file-name pattern (see the module docstring)."""

    text: str
    regex: re.Pattern = field(init=False, repr=False, compare=False)
    kinds: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts, kinds, last = [], {}, 0
        for m in _FIELD.finditer(self.text):
            parts.append(".*".join(re.escape(p) for p in self.text[last : m.start()].split("*")))
            name = m.group("name")
            if name in kinds:
                raise PatternError(f"{self.text!r}: field {name!r} appears twice")
            regex, kinds[name] = _field_regex(m.group("spec"), self.text)
            parts.append(f"(?P<{name}>{regex})")
            last = m.end()
        parts.append(".*".join(re.escape(p) for p in self.text[last:].split("*")))
        object.__setattr__(self, "regex", re.compile("^" + "".join(parts) + "$"))
        object.__setattr__(self, "kinds", kinds)

    def matches(self, name: str) -> bool:
        return self.regex.match(name) is not None

    def parse(self, name: str) -> dict[str, object] | None:
        """The named fields of a file name, or None when the name does not fit.

        A time field that fits the digits but is no date (month 13) makes the
        name not fit: the caller reports it as not this product's.
        """
        m = self.regex.match(name)
        if m is None:
            return None
        fields: dict[str, object] = {}
        for key, value in m.groupdict().items():
            kind = self.kinds[key]
            if kind == "text":
                fields[key] = value
            elif kind == "int":
                fields[key] = int(value)
            else:
                try:
                    fields[key] = dt.datetime.strptime(value, kind)
                except ValueError:
                    return None
        return fields
