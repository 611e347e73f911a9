"""How the command line prints answers: tables (rich) or the API's JSON, and refusals."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

from meridian_client.api import ApiError
from meridian_client.base import ApiModel

Format = Literal["table", "json"]
Row = Mapping[str, Any] | ApiModel


def _plain(value: Any) -> Any:
    if isinstance(value, ApiModel):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


class Printer:
    def __init__(self, out: TextIO, fmt: Format = "table") -> None:
        self.out = out
        self.format = fmt
        self.console = Console(file=out, width=200, no_color=True, highlight=False, soft_wrap=True)

    def json(self, data: Any) -> None:
        print(json.dumps(_plain(data), indent=2, sort_keys=False, default=str), file=self.out)

    def record(self, record: Row, fills: bool = False) -> None:
        """One object: key and value per line (lists and objects left to ``--output json``)."""
        if self.format == "json":
            self.json(record)
            return
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for key in record.keys():  # noqa: SIM118 - a model iterates (name, value) pairs
            value = record[key]
            if not isinstance(value, list | dict | ApiModel):
                table.add_row(key, _cell(value))
        self.console.print(table)
        if fills and record.get("fills"):
            self.console.print()
            self.rows(record["fills"], ("execution_id", "price", "quantity", "liquidity"), force_table=True)

    def rows(
        self, rows: Sequence[Row], columns: Sequence[str], *, force_table: bool = False, key: str = ""
    ) -> None:
        """A list of objects as a table with ``columns`` (as ``{key: rows}`` with ``--output json``)."""
        if self.format == "json" and not force_table:
            self.json({key: list(rows)} if key else list(rows))
            return
        if not rows:
            print("(none)", file=self.out)
            return
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for column in columns:
            table.add_column(column.upper(), no_wrap=True)
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        self.console.print(table)

    def next_token(self, token: str | None) -> None:
        if token and self.format == "table":
            print(f"more: --next-token {token}  (or --all)", file=self.out)


def table_text(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """``rows`` as the command line's table, as text (for reports that print elsewhere)."""
    buffer = io.StringIO()
    Printer(buffer).rows(rows, columns)
    return buffer.getvalue().rstrip("\n")


def refusal(exc: ApiError, err: TextIO) -> None:
    """The API's refusal: its code and sentence, then each field it names."""
    print(f"refused: {exc.status} {exc.code}: {exc.message}", file=err)
    for detail in exc.details:
        where = ".".join(str(part) for part in detail.loc or [])
        kind = f" ({detail.type})" if detail.type else ""
        print(f"  {where or '-'}: {detail.msg or 'invalid'}{kind}", file=err)
