"""Server-sent events framing: split a byte stream into whole events, keep their raw bytes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(frozen=True, slots=True)
class Event:
    raw: bytes
    data: str | None
    event: str | None = None

    @property
    def done(self) -> bool:
        return self.data == "[DONE]"


def parse_event(raw: bytes) -> Event:
    data: list[str] = []
    name = None
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            name = line[6:].strip()
    return Event(raw=raw + b"\n\n", data="\n".join(data) if data else None, event=name)


async def events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Whole events from arbitrary chunks. A trailing partial event is yielded as it is."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while True:
            match = _BOUNDARY.search(buffer)
            if match is None:
                break
            raw, buffer = buffer[: match.start()], buffer[match.end() :]
            if raw.strip():
                yield parse_event(raw)
    if buffer.strip():
        yield parse_event(buffer)
