"""Validate payloads against the official Constant Contact V3 Swagger 2.0 spec.

The spec is a byte-for-byte copy of ``../shared/reference/constant-contact-v3-swagger.yaml`` kept in
``tests/data`` so the suite does not depend on anything outside the repository. Swagger 2.0
definitions are (close to) JSON Schema draft 4, so they are checked with ``Draft4Validator``, with
``$ref``s resolved against the whole spec document.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).resolve().parent / "data" / "constant-contact-v3-swagger.yaml"
SHARED_SPEC_PATH = (Path(__file__).resolve().parents[2]
                    / "shared/reference/constant-contact-v3-swagger.yaml")
SPEC_URI = "https://api.cc.email/v3/swagger.yaml"
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@functools.cache
def load_spec() -> dict[str, Any]:
    """The parsed spec (parsed once per test session)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(_UUID_RE.match(value))


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME_RE.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


def format_checker() -> FormatChecker:
    """Checks the two formats the tag and activity definitions use: ``uuid`` and ``date-time``."""
    checker = FormatChecker(formats=())
    checker.checks("uuid")(_is_uuid)
    checker.checks("date-time")(_is_date_time)
    return checker


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, DRAFT4.create_resource(load_spec()))


@functools.cache
def validator_for(definition_name: str) -> Draft4Validator:
    definitions = load_spec()["definitions"]
    if definition_name not in definitions:
        raise KeyError(f"the spec has no definition named {definition_name!r}")
    schema = {"$ref": f"{SPEC_URI}#/definitions/{definition_name}"}
    return Draft4Validator(schema, registry=_registry(), format_checker=format_checker())


def validate_against_spec(definition_name: str, payload: object) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` matches ``#/definitions/<name>``."""
    error = best_match(validator_for(definition_name).iter_errors(payload))
    if error is not None:
        raise error


def _definition_name(schema: dict[str, Any], where: str) -> str:
    ref = schema.get("$ref", "")
    if not ref.startswith("#/definitions/"):
        raise KeyError(f"{where} has no definition reference in the spec")
    return ref.removeprefix("#/definitions/")


def response_definition(path: str, method: str, status: int) -> str:
    """The definition name the spec gives for one response, e.g. ``("/contact_tags", "get", 200)``."""
    response = load_spec()["paths"][path][method.lower()]["responses"][str(status)]
    return _definition_name(response.get("schema", {}), f"{method.upper()} {path} -> {status}")


def request_body_definition(path: str, method: str) -> str:
    """The definition name of an operation's JSON body, e.g. ``TagIdList500Limit``."""
    parameters = load_spec()["paths"][path][method.lower()].get("parameters", [])
    body = next((p for p in parameters if p.get("in") == "body"), None)
    if body is None:
        raise KeyError(f"{method.upper()} {path} takes no body in the spec")
    return _definition_name(body["schema"], f"{method.upper()} {path} body")
