"""``python -m gateway.records.migrate [--url URL]``: applies the record store's migrations not yet
applied, prints ``{"url", "applied"}`` and exits (the Helm chart's hook Job runs it in the gateway's image;
``voice-agent conversations migrate`` is the same). The gateway also migrates when it opens the store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from gateway.records.sql import SqlRecordStore
from gateway.records.store import open_record_store, redacted

URL_VARIABLE = "VOICE_GATEWAY_RECORDS_URL"


async def migrate(url: str) -> list[int]:
    """The versions applied now; ValueError for a store without a schema, RuntimeError for a refusal."""
    store = open_record_store(url)
    if not isinstance(store, SqlRecordStore):
        raise ValueError(f"{redacted(url)} has no schema to migrate")
    try:
        return await store.migrate()
    except (OSError, ValueError):
        raise
    except Exception as error:  # the driver's own (a refused login, a failed statement): said plainly
        raise RuntimeError(f"{redacted(url)}: {type(error).__name__}: {error}") from None
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.records.migrate", description=__doc__)
    parser.add_argument(
        "--url", default=os.environ.get(URL_VARIABLE, ""), help=f"the record store [env {URL_VARIABLE}]"
    )
    args = parser.parse_args(argv)
    if not args.url:
        parser.error(f"name the record store: --url or {URL_VARIABLE}")
    try:
        applied = asyncio.run(migrate(args.url))
    except (OSError, RuntimeError, ValueError) as error:
        print(json.dumps({"error": {"code": type(error).__name__, "message": str(error)}}))
        sys.exit(1)
    print(json.dumps({"url": redacted(args.url), "applied": applied}))


if __name__ == "__main__":
    main()
