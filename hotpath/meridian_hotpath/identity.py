"""The node's number, kept in its data directory as ``node.json``: ``{"node_number": N}``.

The number (0-65535) goes into the top bits of every trade id the node makes
(``meridian.executions.trade_id_base``), so it belongs to the journal it numbered: replaying that
journal from scratch must give the same trade ids, and so must a restore in the recovery region.
It is written once, atomically, on the node's first start and never changed: a node asked to run
on a data directory numbered otherwise refuses to start. A data directory used before numbers
existed (it holds a journal or snapshots but no ``node.json``) numbered its trades as node 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from meridian.executions import MAX_NODE_NUMBER
from meridian_hotpath.journal import fsync_directory

IDENTITY_FILE = "node.json"
_TEMPORARY = IDENTITY_FILE + ".tmp"
UNNUMBERED = 0  # the number of a data directory that has none


class NodeIdentityError(Exception):
    """The identity file exists but cannot be read as a node number."""


class NodeNumberMismatchError(Exception):
    """The node was asked to run as another number than the one its data directory holds."""


def identity_path(data_dir: Path) -> Path:
    return data_dir / IDENTITY_FILE


def stored_node_number(data_dir: Path) -> int | None:
    """The number in ``data_dir``'s identity file; None when there is none."""
    path = identity_path(data_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NodeIdentityError(f"cannot read {path}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NodeIdentityError(f"{path} is not JSON: {exc}") from None
    number = document.get("node_number") if isinstance(document, dict) else None
    if type(number) is not int or not 0 <= number <= MAX_NODE_NUMBER:
        raise NodeIdentityError(f'{path} must hold {{"node_number": 0-{MAX_NODE_NUMBER}}}, not {text!r}')
    return number


def data_dir_node_number(data_dir: Path) -> int:
    """The number that numbered ``data_dir``'s trades (the stored one, else 0)."""
    stored = stored_node_number(data_dir)
    return UNNUMBERED if stored is None else stored


def write_node_number(data_dir: Path, number: int) -> None:
    """Write the identity file atomically: a crash leaves the whole file or none."""
    if not 0 <= number <= MAX_NODE_NUMBER:
        raise ValueError(f"node number must be 0-{MAX_NODE_NUMBER}, got {number}")
    temporary = data_dir / _TEMPORARY
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, json.dumps({"node_number": number}).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, identity_path(data_dir))
    fsync_directory(data_dir)


def claim_node_number(data_dir: Path, requested: int | None) -> int:
    """The number the node runs as in ``data_dir``, written there on first use.

    ``requested`` (the ``--node-number`` flag) must agree with the stored number; without one the
    stored number holds. A directory without an identity takes ``requested`` (default 0), unless
    it already holds state: that state was numbered as node 0 and only 0 may continue it.
    Raises ``NodeNumberMismatchError`` (touching nothing) when the numbers disagree.
    """
    stored = stored_node_number(data_dir)
    if stored is not None:
        if requested is not None and requested != stored:
            raise NodeNumberMismatchError(
                f"data dir {data_dir} belongs to node number {stored}, not {requested}: "
                f"its trade ids carry {stored}; start with --node-number {stored} or another data dir"
            )
        return stored
    number = UNNUMBERED if requested is None else requested
    if number != UNNUMBERED and _holds_state(data_dir):
        raise NodeNumberMismatchError(
            f"data dir {data_dir} has no {IDENTITY_FILE} but holds state numbered as node {UNNUMBERED}; "
            f"it cannot continue as node number {number}: start it with --node-number {UNNUMBERED}"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    write_node_number(data_dir, number)
    return number


def _holds_state(data_dir: Path) -> bool:
    """Whether any earlier run left data (a non-empty file besides the identity) in ``data_dir``."""
    if not data_dir.is_dir():
        return False
    return any(
        path.is_file() and path.stat().st_size > 0
        for path in data_dir.rglob("*")
        if path.parent != data_dir or path.name not in (IDENTITY_FILE, _TEMPORARY)
    )
