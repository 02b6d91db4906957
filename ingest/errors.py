"""Errors ingest answers with; each becomes a JSON body naming the field and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas.errors import FirebreakError


@dataclass
class Problem:
    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


@dataclass
class IngestError(FirebreakError):
    """A request refused before anything reached Kafka: its HTTP status, a reason code, a message saying what
    is wrong and what to do, the fields at fault, and response headers (e.g. Retry-After) to send with it."""

    status: int
    reason: str  # bounded vocabulary: used as a metric label
    message: str
    problems: list[Problem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {"error": self.reason, "message": self.message, "problems": [p.as_dict() for p in self.problems]}


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(body)"


def from_validation_error(
    exc: ValidationError, prefix: tuple[int | str, ...] = (), reason: str = "invalid_alert", subject: str = "the alerts"
) -> IngestError:
    """400 when the body is not JSON at all, 422 `reason` when it is JSON of the wrong shape (`subject` names it)."""
    errors = exc.errors(include_url=False)
    if any(err["type"] == "json_invalid" for err in errors):
        detail = next(err["msg"] for err in errors if err["type"] == "json_invalid")
        return IngestError(400, "malformed_json", f"the body is not valid JSON ({detail}); send UTF-8 JSON")
    problems = [Problem(_field_path(prefix + tuple(err["loc"])), err["msg"]) for err in errors[:50]]
    more = f" (and {len(errors) - 50} more)" if len(errors) > 50 else ""
    summary = "; ".join(f"{p.field}: {p.problem}" for p in problems[:3])
    verb = "do" if subject.endswith("s") else "does"
    return IngestError(422, reason, f"{subject} {verb} not match the schema: {summary}{more}", problems)
