"""The order function behind the local API Gateway: ``functions/orders_api/app.py``'s handler."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from meridian_local.cloud.sam_template import REPO_ROOT

FUNCTION_DIR = REPO_ROOT / "functions" / "orders_api"
_HANDLER_MODULE = "orders_api_app"


def load_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """``functions/orders_api/app.py``'s ``lambda_handler`` (every function has an ``app`` module, so
    it is loaded by path under its own name)."""
    module = sys.modules.get(_HANDLER_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(_HANDLER_MODULE, FUNCTION_DIR / "app.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {FUNCTION_DIR / 'app.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_HANDLER_MODULE] = module
        spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler
