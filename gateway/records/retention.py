"""Retention: a small task of the gateway that deletes conversations older than the retention period.

Off unless a period is set (RecordSettings.retention_days). Every replica may run it: deleting is
idempotent, so two replicas deleting the same old conversation only repeat each other's work.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.records.access import ConversationAccess
from voice_agent.errors import ServiceError

log = logging.getLogger(__name__)

BATCH = 100  # conversations deleted per store query: one sweep never holds the store for long
MAX_INTERVAL_S = 3600.0


def sweep_interval_s(retention_s: float) -> float:
    """How often to sweep: a tenth of the period (a conversation outlives it by at most that), at most hourly."""
    return max(1.0, min(retention_s / 10, MAX_INTERVAL_S))


async def sweep(access: ConversationAccess, retention_s: float, *, now_ms: int | None = None) -> int:
    """Deletes every conversation started more than ``retention_s`` ago, with its recording; how many."""
    cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - int(retention_s * 1000)
    deleted = 0
    while ids := await access.records.started_before(cutoff, limit=BATCH):
        for conversation_id in ids:
            record = await access.records.get(conversation_id)
            if record is not None:
                await access.erase(record)
                deleted += 1
        if len(ids) < BATCH:
            break
    return deleted


async def run_retention(access: ConversationAccess, retention_s: float) -> None:
    """Sweeps now and then every sweep_interval_s, until cancelled; a failed sweep is retried next time."""
    interval = sweep_interval_s(retention_s)
    log.info("retention: deleting conversations older than %.0f s, every %.0f s", retention_s, interval)
    while True:
        try:
            deleted = await sweep(access, retention_s)
            if deleted:
                log.info("retention: deleted %d conversations", deleted)
        except (ServiceError, *access.store_failures) as error:
            log.warning(
                "retention: the sweep failed (%s: %s); next try in %.0f s", type(error).__name__, error, interval
            )
        await asyncio.sleep(interval)
