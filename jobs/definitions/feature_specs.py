"""What the sinks and the reads need to know about each feature group, read from its SQL file (no
JVM needed).

- The key: user_id, window_end, window_start, then every other expression of the outermost
  GROUP BY, by the name the SELECT outputs it under (``event_type AS kind`` grouped by event_type
  gives kind). The PostgreSQL table upserts on it; any other column is a value, whatever its type
  (MAX(event_type) is a text value). A grouped expression the SELECT does not output is refused:
  rows differing only in it would overwrite each other.
- The window: TUMBLE or HOP, its slide and size. Window ends fall on multiples of the slide since
  the epoch (UTC), so "the latest window at time t" is t rounded down to the slide.
- Each feature column's NEUTRAL value: what the column means for a user with no events in a
  window (no row is emitted then). Decided from the column's expression:
    COUNT(...) and SUM(...)           -> 0
    COALESCE(..., <literal>)          -> that literal
    CAST(<one of the above> AS ...)   -> the same
    anything else (MAX, AVG, UDFs...) -> None (NULL)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from jobs.definitions.config import Config
from jobs.definitions.sql_catalog import (Feature, SqlFileError, Statement, load_features, parenthesized,
                                          strip_comments, top_level_code)

WINDOW_CALL = re.compile(r"\b(TUMBLE|HOP|CUMULATE|SESSION)\s*\(", re.IGNORECASE)
_INTERVAL = re.compile(r"(?is)^INTERVAL\s+'(\d+)'\s+(SECOND|MINUTE|HOUR|DAY)S?$")
_UNITS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$")
GROUP_BY = re.compile(r"(?i)\bGROUP\s+BY\b")
AFTER_GROUP_BY = re.compile(r"(?i)\b(HAVING|WINDOW|QUALIFY|ORDER\s+BY|LIMIT|OFFSET|FETCH|UNION|INTERSECT|EXCEPT|MINUS)\b")
_TOKEN = re.compile(r"'(?:[^']|'')*'|`(?:[^`]|``)*`|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*|\S")
BASE_KEY = ("user_id", "window_end", "window_start")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    where: str                       # file:line of the feature's SELECT
    window: str                      # TUMBLE or HOP
    slide: timedelta                 # distance between consecutive window ends
    size: timedelta
    key: tuple[str, ...]             # see key_of
    neutral: dict[str, object]       # value column -> value when the user had no events

    @property
    def columns(self) -> list[str]:
        return list(self.neutral)

    @property
    def extra_key(self) -> tuple[str, ...]:
        """Key columns besides the user and window: several rows per user and window, which the
        reads (one vector per user) refuse."""
        return self.key[len(BASE_KEY):]


def load_specs(sql_dir: Path, config: Config) -> dict[str, FeatureSpec]:
    """Every feature group of ``sql_dir/features``, by name."""
    return {feature.name: spec_of(feature) for feature in load_features(sql_dir, config)}


def spec_of(feature: Feature) -> FeatureSpec:
    statement = feature.query
    window, slide, size = _window_of(statement.text, statement.path, statement.first_line)
    key = key_of(statement)
    neutral = {}
    for alias, expression in select_items(statement.text, statement.path, statement.first_line):
        if alias not in key:
            neutral[alias] = _neutral_value(expression, statement.path)
    return FeatureSpec(feature.name, statement.where(), window, slide, size, key, neutral)


def key_of(statement: Statement) -> tuple[str, ...]:
    """The feature's key (see the module docstring): its other grouped outputs in SELECT order."""
    path, line = statement.path, statement.first_line
    code = strip_comments(statement.text)
    top = top_level_code(code, path)
    group_by = GROUP_BY.search(top)
    if not group_by:
        raise SqlFileError(path, line, "the feature's outermost SELECT needs a GROUP BY user_id, window_start, "
                                       "window_end[, ...]: it gives the key its rows are stored under")
    end = AFTER_GROUP_BY.search(top, group_by.end())
    grouped = split_top_level(code[group_by.end():end.start() if end else len(code)], path)
    items = select_items(statement.text, path, line)
    outputs = {normalized(expression): alias for alias, expression in items}
    keyed = set()
    for expression in grouped:
        alias = outputs.get(normalized(expression))
        if alias is None:
            raise SqlFileError(path, line, f"the feature groups by {expression}, which its SELECT does not output: "
                                           "output it (it joins the key) or remove it from the GROUP BY")
        keyed.add(alias)
    return BASE_KEY + tuple(alias for alias, _ in items if alias in keyed and alias not in BASE_KEY)


def normalized(expression: str) -> tuple[str, ...]:
    """An expression's tokens as the planner compares them: spacing, letter case, backticks and
    table qualifiers (``e.``) do not matter; string literals do."""
    tokens = [t if t.startswith("'") else t.strip("`").lower() for t in _TOKEN.findall(expression)]
    kept: list[str] = []
    for n, token in enumerate(tokens):
        is_qualifier = token == "." and kept and re.fullmatch(r"[a-z_]\w*", kept[-1]) and n + 1 < len(tokens)
        if is_qualifier:
            kept.pop()
        else:
            kept.append(token)
    return tuple(kept)


def split_top_level(text: str, path: Path, separator: str = ",") -> list[str]:
    top = top_level_code(text, path)
    parts, start = [], 0
    for i, char in enumerate(top):
        if char == separator:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def call_arguments(text: str, open_paren: int, path: Path) -> str:
    """The text between the parenthesis at ``open_paren`` and its partner."""
    start, end = parenthesized(text, path, open_paren)
    return text[start + 1:end]


def _window_of(text: str, path: Path, first_line: int) -> tuple[str, timedelta, timedelta]:
    code = strip_comments(text)
    calls = list(WINDOW_CALL.finditer(code))
    if len(calls) != 1:
        raise SqlFileError(path, first_line, f"feature reads need exactly one TUMBLE or HOP window in the file, found {len(calls)}")
    kind = calls[0].group(1).upper()
    if kind not in ("TUMBLE", "HOP"):
        raise SqlFileError(path, first_line, f"{kind} windows are not supported by the feature reads (use TUMBLE or HOP)")
    arguments = split_top_level(call_arguments(code, calls[0].end() - 1, path), path)
    named = {}
    positional = []
    for argument in arguments:
        match = re.match(r"(?is)^(\w+)\s*=>\s*(.*)$", argument)
        if match:
            named[match.group(1).upper()] = match.group(2).strip()
        else:
            positional.append(argument)
    names = ["DATA", "TIMECOL", "SIZE", "OFFSET"] if kind == "TUMBLE" else ["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"]
    named.update(zip(names, positional))
    if "OFFSET" in named:
        raise SqlFileError(path, first_line, "window offsets are not supported by the feature reads")
    size = _interval(named.get("SIZE", ""), path, first_line)
    slide = _interval(named["SLIDE"], path, first_line) if kind == "HOP" else size
    return kind, slide, size


def _interval(text: str, path: Path, first_line: int) -> timedelta:
    match = _INTERVAL.match(" ".join(text.split()))
    if not match:
        raise SqlFileError(path, first_line, f"window size/slide must be like INTERVAL '5' MINUTE, got '{text}'")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).upper()])


def select_items(text: str, path: Path, first_line: int) -> list[tuple[str, str]]:
    """(output name, expression) of the outermost SELECT list."""
    code = strip_comments(text)
    top = top_level_code(code, path)
    select = re.search(r"(?i)\bSELECT\b", top)
    from_ = re.search(r"(?i)\bFROM\b", top[select.end():]) if select else None
    if not select or not from_:
        raise SqlFileError(path, first_line, "cannot find the feature's outermost SELECT ... FROM")
    items = []
    for item in split_top_level(code[select.end():select.end() + from_.start()], path):
        match = (re.match(r"(?is)^(.*?)\s+AS\s+`?(\w+)`?$", item)
                 or re.match(r"(?is)^(.*[\w)'`])\s+`?(?!END\b)(\w+)`?$", item))  # alias without AS
        if match:
            items.append((match.group(2), match.group(1).strip()))
        else:
            items.append((item.split(".")[-1].strip("`"), item))
    return items


def _neutral_value(expression: str, path: Path) -> object:
    expression = expression.strip()
    shape = top_level_code(expression, path).upper().split()  # function names left, arguments blanked
    call = re.match(r"(?s)^\w+\s*\(", expression)
    if not call or shape[1:] not in ([], ["FILTER"]):
        return None  # not a single call: an expression over several aggregates, a literal, ...
    head = shape[0]
    if head in ("COUNT", "SUM"):
        return 0
    arguments = split_top_level(call_arguments(expression, call.end() - 1, path), path)
    if head == "COALESCE":
        return literal(arguments[-1])
    if head == "CAST":
        inner = re.match(r"(?is)^(.*)\s+AS\s+[\w(), ]+$", arguments[0])
        return _neutral_value(inner.group(1), path) if inner else None
    return None


def literal(text: str) -> object:
    if _NUMBER.match(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return None
