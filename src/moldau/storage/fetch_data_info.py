"""What a log read returns (Kafka's ``FetchDataInfo``)."""

from __future__ import annotations

from dataclasses import dataclass

from moldau.storage.file_region import FileRegion


@dataclass(slots=True, frozen=True)
class FetchDataInfo:
    """The result of :meth:`Log.read`.

    ``records`` is ``None`` when there is nothing to return (at the log end or the ``max_offset`` bound,
    or the first batch is larger than ``max_bytes`` and ``min_one_message`` is off, which Kafka reports
    as ``first_entry_incomplete``).
    """

    fetch_offset: int
    records: FileRegion | None
    first_entry_incomplete: bool = False
