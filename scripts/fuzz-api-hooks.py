"""Schemathesis hooks of scripts/fuzz-api: adjust generated requests that would break a rule
the OpenAPI document can state only in prose, so that "schema-valid requests are accepted"
keeps checking everything else."""

from datetime import datetime, timedelta

import schemathesis

EXPORT = "GET /api/v1/exports/records"


def _instant(value):
    """An RFC 3339 instant with an offset, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@schemathesis.hook
def before_call(context, case, kwargs):
    """An export's `to` must be later than its `from` (400 otherwise): move an earlier or equal
    `to` a day after `from`."""
    if case.operation.label != EXPORT or not isinstance(case.query, dict):
        return
    start, end = _instant(case.query.get("from")), _instant(case.query.get("to"))
    if start is not None and end is not None and end <= start:
        try:
            case.query["to"] = (start + timedelta(days=1)).isoformat()
        except OverflowError:  # `from` is the last representable day: no later `to` exists
            case.query.pop("to", None)
