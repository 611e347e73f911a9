"""The base of the SDK's models (``models.py``, generated from the API's OpenAPI contract).

A model reads like the JSON it came from as well as like an object: ``order.status`` and
``order["status"]`` are the same, ``{**order}`` and ``order.get("fills")`` work, so code written
against the API's JSON keeps working on the typed answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel


class ApiModel(BaseModel):
    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in type(self).model_fields else default

    def keys(self) -> Iterator[str]:
        return iter(type(self).model_fields)

    def __contains__(self, name: object) -> bool:
        return name in type(self).model_fields

    def to_json(self) -> dict[str, Any]:
        """The answer as the API sent it (JSON types: prices as strings, times as ISO text)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data
