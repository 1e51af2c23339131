"""Find the SQL files, render their ``${group.key}`` placeholders, and split them into statements.

Layout of the sql/ folder (file name = object name, one object per file):
  functions/<name>.sql                 CREATE TEMPORARY SYSTEM FUNCTION of a Java class in the job's
                                       jar (deploy/src), registered before the sources that call it
  sources/<connector>/events_raw.sql  the raw records of one connector (kinesis, file)
  sources/*.sql                        tables built on events_raw with ``LIKE events_raw``
  views/*.sql                          CREATE TEMPORARY VIEW statements (dedup, ...)
  features/<name>.sql                  ONE SELECT per feature group; sinks are derived from it
  sinks/*.sql                          fixed outputs: CREATE TABLE, then the INSERT that feeds it
  sinks/<connector>/*.sql              fixed outputs of one connector only (the raw archive)
Every statement keeps its file and first line, so an error points at file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from jobs.definitions.config import Config

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_-]+)\.([A-Za-z0-9_.-]+)\}")
FEATURE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
BASE_TABLE = "events_raw"  # every connector folder defines it; sources/*.sql build on it


class SqlFileError(ValueError):
    """A problem in a SQL file; the message starts with file:line."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Statement:
    """One rendered SQL statement and where it starts in its file."""

    path: Path
    first_line: int
    text: str

    def where(self, line_in_statement: int = 1) -> str:
        return f"{self.path}:{self.first_line + line_in_statement - 1}"


@dataclass(frozen=True)
class Feature:
    """A feature group: its name (the file name) and its single SELECT."""

    name: str
    query: Statement


@dataclass(frozen=True)
class Catalog:
    """All statements of one job, in the order they must run."""

    tables: list[Statement]
    views: list[Statement]
    features: list[Feature]
    sinks: list[Statement]
    functions: list[Statement] = field(default_factory=list)

    @property
    def definitions(self) -> list[Statement]:
        """Functions, tables and views: what any query over the events needs first."""
        return self.functions + self.tables + self.views


def render(text: str, config: Config, path: Path) -> str:
    """Replace ``${group.key}`` with the config value, quotes escaped for SQL string literals.

    Values never contain line breaks, so line numbers of the rendered text match the file.
    """

    def substitute(match: re.Match[str]) -> str:
        group, key = match.group(1), match.group(2)
        value = config.groups.get(group, {}).get(key)
        if value is None:
            line = text.count("\n", 0, match.start()) + 1
            raise SqlFileError(path, line, f"unknown placeholder ${{{group}.{key}}}: no key '{key}' in property group '{group}'")
        if "\n" in value or "\r" in value:
            line = text.count("\n", 0, match.start()) + 1
            raise SqlFileError(path, line, f"value of ${{{group}.{key}}} contains a line break")
        return value.replace("'", "''")

    return PLACEHOLDER.sub(substitute, text)


def _code_positions(text: str, path: Path) -> Iterator[int]:
    """Indexes of the characters that are SQL code: outside quotes and comments."""
    i = 0
    length = len(text)
    while i < length:
        char = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = length if end == -1 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                raise SqlFileError(path, text.count("\n", 0, i) + 1, "unterminated /* comment")
            i = end + 2
        elif char in "'`\"":
            end = i + 1
            while True:
                end = text.find(char, end)
                if end == -1:
                    raise SqlFileError(path, text.count("\n", 0, i) + 1, f"unterminated {char} quote")
                if text.startswith(char * 2, end):  # a doubled quote escapes itself
                    end += 2
                    continue
                break
            i = end + 1
        else:
            yield i
            i += 1


def split_statements(text: str, path: Path) -> list[Statement]:
    """Split on top-level semicolons, ignoring those inside quotes and comments."""
    statements: list[Statement] = []
    start = 0
    for i in _code_positions(text, path):
        if text[i] == ";":
            _append(statements, text, start, i, path)
            start = i + 1
    _append(statements, text, start, len(text), path)
    return statements


def parenthesized(text: str, path: Path, after: int) -> tuple[int, int]:
    """(start, end) of the first top-level parenthesized code group at or after ``after``."""
    depth = 0
    start = -1
    for i in _code_positions(text, path):
        if i < after:
            continue
        if text[i] == "(":
            if depth == 0:
                start = i
            depth += 1
        elif text[i] == ")" and depth:
            depth -= 1
            if depth == 0:
                return start, i
    raise SqlFileError(path, 1, "expected a parenthesized list")


def _one_line(sql: str) -> str:
    return " ".join(strip_comments(sql).split())


def expand_like(statement: Statement, base: Statement) -> Statement:
    """Inline ``LIKE events_raw``: copy the base table's columns and options into the statement.

    Flink's own LIKE does not let computed columns read the base table's metadata columns (such
    as Kinesis's arrival timestamp), which parsing needs. The copied text goes on existing lines
    so that line numbers in errors still match the file.
    """
    like = re.search(rf"\)\s*LIKE\s+`?{BASE_TABLE}`?\s*$", statement.text, flags=re.IGNORECASE)
    if not like:
        return statement
    base_columns_start, base_columns_end = parenthesized(base.text, base.path, 0)
    with_match = re.search(r"\bWITH\s*\(", base.text[base_columns_end:], flags=re.IGNORECASE)
    if not with_match:
        raise SqlFileError(base.path, base.first_line, "expected a WITH (...) clause")
    options_start, options_end = parenthesized(base.text, base.path, base_columns_end + with_match.start())
    columns = _one_line(base.text[base_columns_start + 1:base_columns_end])
    options = _one_line(base.text[options_start + 1:options_end])
    open_paren, _ = parenthesized(statement.text, statement.path, 0)
    text = statement.text
    expanded = (
        text[:open_paren + 1] + f" {columns}," + text[open_paren + 1:like.start()]
        + f") WITH ({options})"
    )
    return Statement(statement.path, statement.first_line, expanded)


def _append(statements: list[Statement], text: str, start: int, end: int, path: Path) -> None:
    chunk = text[start:end]
    if not strip_comments(chunk).strip():
        return
    # Start the statement at its first line of code so Flink's line numbers map back exactly.
    leading = len(chunk) - len(chunk.lstrip())
    first_line = text.count("\n", 0, start + leading) + 1
    statements.append(Statement(path, first_line, chunk.strip()))


def strip_comments(sql: str) -> str:
    """``sql`` without its comments; each becomes a space, so the tokens around it stay apart."""
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL)


def _read(path: Path, config: Config) -> list[Statement]:
    return split_statements(render(path.read_text(encoding="utf-8"), config, path), path)


def _ordered_by_dependency(statements: list[tuple[str, Statement]]) -> list[Statement]:
    """Views may read other views: put each after the ones it names."""
    names = {name for name, _ in statements}
    pending = dict(statements)
    ordered: list[Statement] = []
    while pending:
        ready = [
            name
            for name, statement in sorted(pending.items())
            if not any(
                other != name and other in pending and re.search(rf"\b{re.escape(other)}\b", strip_comments(statement.text))
                for other in names
            )
        ]
        if not ready:
            cycle = ", ".join(sorted(pending))
            first = pending[sorted(pending)[0]]
            raise SqlFileError(first.path, first.first_line, f"views refer to each other in a cycle: {cycle}")
        for name in ready:
            ordered.append(pending.pop(name))
    return ordered


def _single_statement(path: Path, config: Config, kind: str) -> Statement:
    statements = _read(path, config)
    if len(statements) != 1:
        line = statements[1].first_line if len(statements) > 1 else 1
        raise SqlFileError(path, line, f"a {kind} file holds exactly one statement, found {len(statements)}")
    return statements[0]


def load_catalog(sql_dir: Path, source_connector: str, config: Config) -> Catalog:
    """Read every SQL file for a job whose raw records come from ``source_connector``."""
    connector_dir = sql_dir / "sources" / source_connector
    if not connector_dir.is_dir():
        raise SqlFileError(connector_dir, 1, f"no source definition for connector '{source_connector}'")
    base_path = connector_dir / f"{BASE_TABLE}.sql"
    if not base_path.is_file():
        raise SqlFileError(base_path, 1, f"connector '{source_connector}' must define {BASE_TABLE} in this file")
    base = _single_statement(base_path, config, "source")
    tables = [base] + [
        expand_like(_single_statement(path, config, "source"), base)
        for path in sorted((sql_dir / "sources").glob("*.sql"))
    ]

    views = _ordered_by_dependency(
        [(path.stem, _single_statement(path, config, "view")) for path in sorted((sql_dir / "views").glob("*.sql"))]
    )

    features = load_features(sql_dir, config)
    functions = [_single_statement(path, config, "function") for path in sorted((sql_dir / "functions").glob("*.sql"))]

    sinks: list[Statement] = []
    for path in sorted((sql_dir / "sinks").glob("*.sql")) + sorted((sql_dir / "sinks" / source_connector).glob("*.sql")):
        sinks += _read(path, config)
    return Catalog(tables, views, features, sinks, functions)


def load_features(sql_dir: Path, config: Config) -> list[Feature]:
    """The feature groups alone (what the serving and training reads need), in file-name order."""
    features = []
    for path in sorted((sql_dir / "features").glob("*.sql")):
        if not FEATURE_NAME.fullmatch(path.stem):
            raise SqlFileError(path, 1, "feature file names must be lower_snake_case (they name tables and folders)")
        query = _single_statement(path, config, "feature")
        if not re.match(r"(?is)\s*(SELECT|WITH)\b", strip_comments(query.text)):
            raise SqlFileError(path, query.first_line, "a feature file holds one SELECT (its sinks are derived from it)")
        features.append(Feature(path.stem, query))
    if not features:
        raise SqlFileError(sql_dir / "features", 1, "no feature files (*.sql) found")
    return features


def top_level_code(text: str, path: Path) -> str:
    """``text`` with comments, quoted text and parenthesized groups blanked out (same length), so
    keyword and comma searches see only the statement's own level."""
    kept = [" "] * len(text)
    depth = 0
    for i in _code_positions(text, path):
        char = text[i]
        if char == ")" and depth:
            depth -= 1
        elif char == "(":
            depth += 1
        elif depth == 0:
            kept[i] = char
    return "".join(kept)
