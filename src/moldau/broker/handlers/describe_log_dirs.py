"""DescribeLogDirs (35): per log directory, the partitions it holds, their sizes and offset lags."""

from __future__ import annotations

import shutil

from moldau.protocol import messages
from moldau.protocol.errors import ErrorCode

API_KEY = 35
Response = messages.DescribeLogDirsResponse


def _wanted(request) -> dict[str, set[int]] | None:
    if request.topics is None:
        return None
    return {t.topic: set(t.partitions) for t in request.topics}


async def handle(conn, header, request: messages.DescribeLogDirsRequest) -> Response:
    log_manager = conn.broker.log_manager
    wanted = _wanted(request)
    results = []
    for log_dir in log_manager.log_dirs:
        by_topic: dict[str, list[Response.DescribeLogDirsPartition]] = {}
        for log in sorted(log_manager.all_logs(), key=lambda lg: (lg.topic, lg.partition)):
            if log.dir.parent != log_dir:
                continue
            if wanted is not None and log.partition not in wanted.get(log.topic, ()):
                continue
            by_topic.setdefault(log.topic, []).append(Response.DescribeLogDirsPartition(
                partition_index=log.partition,
                partition_size=log.size_in_bytes,
                # Kafka's getLogEndOffsetLag for a current replica: how far the HW trails the log end.
                offset_lag=max(log.high_watermark - log.log_end_offset, 0),
                is_future_key=False,
            ))
        try:
            usage = shutil.disk_usage(log_dir)
            total, usable, error = usage.total, usage.free, ErrorCode.NONE
        except OSError:
            total, usable, error = -1, -1, ErrorCode.KAFKA_STORAGE_ERROR
        if log_manager.failure_channel.is_offline(log_dir):  # Kafka lists an offline dir with this error
            error = ErrorCode.KAFKA_STORAGE_ERROR
        results.append(Response.DescribeLogDirsResult(
            error_code=error,
            log_dir=str(log_dir.resolve()),
            topics=[Response.DescribeLogDirsTopic(name=name, partitions=parts) for name, parts in by_topic.items()],
            total_bytes=total,
            usable_bytes=usable,
            is_cordoned=False,
        ))
    return Response(throttle_time_ms=0, error_code=ErrorCode.NONE, results=results)
