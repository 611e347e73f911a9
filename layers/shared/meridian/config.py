"""How a function reads its configuration: its environment variables into a typed pydantic model.

Each field comes from the variable of its name in upper case (``orders_table`` from
``ORDERS_TABLE``); a variable not set leaves the field's default, and a value the field refuses
fails loudly at the first read, naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


def from_environment(model: type[Model], environ: Mapping[str, str] | None = None) -> Model:
    """``model`` read from ``environ`` (the process environment by default)."""
    env = os.environ if environ is None else environ
    values = {name: env[name.upper()] for name in model.model_fields if name.upper() in env}
    return model.model_validate(values)
