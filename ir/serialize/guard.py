"""One contract for every reader: malformed input raises only SerializationError, naming the file."""
from __future__ import annotations

from typing import Callable, TypeVar

from tosac.errors import SerializationError

T = TypeVar("T")


def parse_guarded(parse: Callable[[], T], source: str, what: str) -> T:
    """Run ``parse``; any failure becomes a SerializationError prefixed with ``source``."""
    try:
        return parse()
    except SerializationError as e:
        msg = str(e)
        raise SerializationError(msg if msg.startswith(source) else f"{source}: {msg}") from None
    except Exception as e:   # noqa: BLE001 - malformed input must never escape as another exception
        raise SerializationError(f"{source}: malformed {what} ({type(e).__name__}: {e})") from None
