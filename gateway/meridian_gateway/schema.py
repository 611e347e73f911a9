"""``python -m meridian_gateway.schema [PATH]``: the protocol's JSON Schema, generated from ``models``
(``docs/api/streaming.schema.json``; a test keeps the file equal to the models)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from meridian_gateway import models

REQUESTS = (models.Subscribe, models.Unsubscribe, models.Resync, models.Ping)
MESSAGES = (models.Welcome, models.Subscribed, models.Pong, models.Heartbeat, models.Error,
            models.BookSnapshot, models.BookUpdate, models.Trade, models.OrderUpdate)  # fmt: skip


def document() -> dict[str, Any]:
    _, schema = models_json_schema(
        [(model, "validation") for model in REQUESTS + MESSAGES], ref_template="#/$defs/{model}"
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Meridian streaming gateway protocol"
    schema["description"] = (
        "Client requests (one JSON object a text frame) and server messages (a JSON array of them a frame)."
    )
    schema["properties"] = {
        "request": {"oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in REQUESTS]},
        "message": {"oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in MESSAGES]},
    }
    return schema


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "docs/api/streaming.schema.json")
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
