"""The one error of the record contract."""

from __future__ import annotations

from common.errors import UserError


class RecordError(UserError, ValueError):
    """Why a record cannot be rendered or written (the message is shown to the reader as is)."""


class RecordExistsError(RecordError, FileExistsError):
    """A record of that run id exists already: records are written once and never edited."""
