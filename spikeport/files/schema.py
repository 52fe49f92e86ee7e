"""Validated config files: a strict pydantic v2 base model and one-line errors that name file and field.

A model derived from :class:`StrictModel` refuses unknown keys, never converts types (``"8"`` is not
an integer, ``1`` is not ``true``), and refuses NaN and infinities. :func:`error_line` turns pydantic's
multi-line ``ValidationError`` into the one-line :class:`SpikeportError` the CLI prints::

    examples/x.toml: field 'augment_shift': input should be less than or equal to 8, got 9
    examples/x.toml: unknown field(s) agument_shift

A rule that ties several fields together raises :class:`FieldError` from a ``model_validator``, so its
line names the field to change too.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from spikeport.errors import SpikeportError

GOT_CHARS = 40  # the offending value is quoted up to this many characters


class StrictModel(BaseModel):
    """Base of every config-file model: unknown keys, type conversions and NaN / inf are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=True)


class FieldError(ValueError):
    """A rule across fields failed; ``field`` is the one the user should change."""

    def __init__(self, field: str, why: str):
        super().__init__(why)
        self.field, self.why = field, why


class Invalid(SpikeportError):
    """A model's ``__init__`` refused its fields: the one line with source "config", plus pydantic's
    ``error`` so a caller that knows the file can say it (:func:`error_line` with its own source)."""

    def __init__(self, error: ValidationError, source: str = "config"):
        super().__init__(str(error_line(error, source)))
        self.error = error


def _where(loc: tuple) -> str:
    """('hidden', 2) -> "hidden[2]"; ('profiles', 'loihi', 'e_syn') -> "profiles.loihi.e_syn"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= GOT_CHARS else text[:GOT_CHARS - 3] + "..."


def error_line(err: ValidationError, source: str) -> SpikeportError:
    """One line for the first problem in ``err`` (all unknown keys at once), prefixed by ``source``."""
    errors = err.errors(include_url=False)
    extra = [_where(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        return SpikeportError(f"{source}: unknown field(s) {', '.join(sorted(extra))}")
    first = errors[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return SpikeportError(f"{source}: field '{cause.field}': {cause.why}")
    msg = first["msg"]
    msg = msg[:1].lower() + msg[1:]
    if first["type"] == "missing":
        return SpikeportError(f"{source}: field '{_where(first['loc'])}': {msg}")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"field '{_where(first['loc'])}'" if first["loc"] else "top level"
    return SpikeportError(f"{source}: {where}: {msg}, got {_got(first['input'])}{more}")
