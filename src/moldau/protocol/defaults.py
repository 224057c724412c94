"""What the generated message classes (``messages/``) share at run time, kept small: it is on the startup path.

- ``MISSING``: marks an ``__init__`` argument the caller left out, for defaults that must be new objects
  (a fresh ``[]`` or struct per instance).
- ``ZERO_UUID``: Kafka's ``Uuid.ZERO_UUID``, the default of uuid fields.
- ``Records``: the type of a ``records`` field. It holds whichever form fits the path: ``bytes`` built by
  the broker, a ``memoryview`` slice of the request frame after decoding (no copy), a file region for
  ``sendfile`` (anything with an integer ``size``), a list of those, or None.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

ZERO_UUID = uuid.UUID(int=0)

Records: TypeAlias = Any


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


MISSING: Any = _Missing()
