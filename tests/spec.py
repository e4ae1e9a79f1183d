"""The admin API contract (`../shared/spec/garage-admin-v2.json`) as a test oracle."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "spec" / "garage-admin-v2.json"


@cache
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        raise AssertionError(f"admin API contract not found at {SPEC_PATH} (../shared must sit beside the repo)")
    return json.loads(SPEC_PATH.read_text())


def operation_names() -> set[str]:
    return {p.removeprefix("/v2/") for p in spec()["paths"] if p.startswith("/v2/")}


def _response_schema(op: str) -> dict[str, Any]:
    path = spec()["paths"][f"/v2/{op}"]
    method = path.get("get") or path.get("post")
    return method["responses"]["200"]["content"]["application/json"]["schema"]


def assert_matches_spec(op: str, answer: Any) -> None:
    """Raise if `answer` does not validate against the 200 response schema of `op`."""
    schema = {**_response_schema(op), "components": spec()["components"]}
    jsonschema.validate(answer, schema, cls=jsonschema.Draft202012Validator)
