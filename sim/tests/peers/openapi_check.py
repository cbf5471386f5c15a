"""Independent check of the hub's API contract (openapi-spec-validator and jsonschema, not our code).

Usage: openapi_check.py DOC.json OPERATIONS.json PROBES.json
- DOC.json must be a valid OpenAPI document (3.0 or 3.1, whichever it declares);
- every operation's example must satisfy its own args_schema;
- prints, as a JSON list, whether each probe {"kind", "op", "args"} satisfies that operation's
  args_schema (Draft 2020-12), for the Rust side to compare with its parser.
"""
import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

doc = json.load(open(sys.argv[1]))
validate(doc)
operations = json.load(open(sys.argv[2]))
validators = {}
for operation in operations:
    Draft202012Validator.check_schema(operation["args_schema"])
    validator = Draft202012Validator(operation["args_schema"])
    errors = list(validator.iter_errors(operation["example"]))
    if errors:
        sys.exit(f"{operation['kind']} {operation['op']}: its example fails its schema: {errors[0].message}")
    validators[(operation["kind"], operation["op"])] = validator
probes = json.load(open(sys.argv[3]))
print(json.dumps([validators[(p["kind"], p["op"])].is_valid(p["args"]) for p in probes]))
