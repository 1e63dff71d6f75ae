"""The JSON Schema of doc/capacity-notification.schema.json, per event type."""

import functools
import json
import pathlib

import jsonschema

SCHEMA_PATH = pathlib.Path(__file__).resolve().parent.parent / "doc" / "capacity-notification.schema.json"


@functools.cache
def validator(event_type):
    document = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    schema = {**document, "$ref": f"#/$defs/{event_type}"}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def problems(event_type, payload):
    """Every way ``payload`` breaks the documented schema of ``event_type`` (empty: valid)."""
    return [
        f"{event_type}: {error.json_path}: {error.message}"
        for error in validator(event_type).iter_errors(payload)
    ]
