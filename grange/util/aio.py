"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


def first_error(eg: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The first leaf exception of a (nested) exception group."""
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def run_all(*aws: Awaitable[Any]) -> list[Any]:
    """Run concurrently; if one fails, cancel the others and raise *its* exception (not a group)."""
    if len(aws) == 1:
        return [await aws[0]]
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(_as_coro(a)) for a in aws]
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    return [t.result() for t in tasks]


async def _as_coro(aw: Awaitable[Any]) -> Any:
    return await aw
