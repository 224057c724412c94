"""The errors the etcd metadata store raises to the requests that wait on it, with their Kafka error codes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import aetcd  # type: ignore[import-untyped]

from moldau.errors import ApiError
from moldau.protocol.errors import ErrorCode


class DuplicateBrokerRegistrationError(ApiError):
    def __init__(self, broker_id: int) -> None:
        super().__init__(ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                         f"Another broker is registered with broker.id {broker_id} and its session is alive; "
                         f"give each broker a unique broker.id")


class MetadataStoreTimeoutError(ApiError):
    """etcd did not answer in time (no quorum yet, or the member in use died mid-call): REQUEST_TIMED_OUT,
    which clients retry, as Kafka answers when the controller does not commit a change in time."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(ErrorCode.REQUEST_TIMED_OUT, f"The metadata store (etcd) did not answer: {cause}")


P = ParamSpec("P")
R = TypeVar("R")


def answers_timeout(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A write a request waits on: an etcd failure becomes MetadataStoreTimeoutError, which the request
    answers with its error code, instead of an unexpected error that closes the client's connection."""
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except aetcd.ClientError as exc:
            raise MetadataStoreTimeoutError(exc) from exc
    return call


__all__ = ["DuplicateBrokerRegistrationError", "MetadataStoreTimeoutError", "answers_timeout"]
