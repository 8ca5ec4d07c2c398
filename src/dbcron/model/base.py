"""What every part of the task model shares: strict models, durations, names."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)

from dbcron import durations

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
EARLIEST_AT_YEAR = 2000
CONDITION = re.compile(
    r"^\s*(?P<column>[A-Za-z_]\w*)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[^<>=!\s].*?)\s*$"
)

Duration = Annotated[
    timedelta,
    BeforeValidator(durations.parse_duration),
    PlainSerializer(durations.format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\s*(\d+\s*[smhdw]\s*)+$", "examples": ["30s", "15m", "2h"]}
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
