"""``python -m bench.compaction [--series N] [--chunks K] [--workers W]``: the compactor alone.

Seeds ``--series`` series of ``--chunks`` one-point chunks each (what a
minute of 1 Hz logging leaves with many live series) in a fresh database,
then runs ``--workers`` :class:`ingest._compaction.ChunkCompactor` passes at
once, each on its own pool, as that many ingest workers would, and prints
series/s and points/s over the wall clock, and how the series were shared.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
import numpy as np

from bench.services import Infra, Sandbox
from ingest._compaction import ChunkCompactor
from ingest._partitions import PointPartitions, utc_day
from runstream.chunks import CHUNK_COLUMNS, PointColumns, encode_chunks


async def _seed(pool: asyncpg.Pool, series: int, chunks: int) -> None:
    day = utc_day()
    await PointPartitions(pool).ensure(day)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO experiments (name) VALUES ('compaction')")
        run = await conn.fetchval(
            "INSERT INTO runs (id, experiment_id, status, created_at)"
            " SELECT gen_random_uuid(), id, 'Running', now() FROM experiments RETURNING id"
        )
        ids = await conn.fetchval(
            "WITH s AS (INSERT INTO series (run_id, name, kind, value_type, small_chunks, small_since, first_day,"
            " last_day) SELECT $1, 'm' || i, 'scalar', 'float', $3, now() - interval '1 hour', $4, $4"
            " FROM generate_series(1, $2) i RETURNING id) SELECT array_agg(id ORDER BY id) FROM s",
            run,
            series,
            chunks,
            day,
        )
        t0 = time.time() - chunks
        for k in range(chunks):
            one = [np.array([k]), np.array([t0 + k]), np.array([k]), np.array([k * 0.5])]
            records = encode_chunks(ids, [PointColumns(*one)] * len(ids))
            await conn.copy_records_to_table(
                "point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=[(*r, day) for r in records]
            )


async def _main(args: argparse.Namespace) -> None:
    infra = await asyncio.to_thread(Infra.start_local)
    try:
        async with Sandbox(infra, "compaction") as sandbox:
            dsn = sandbox.settings.database_url
            async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
                await _seed(pool, args.series, args.chunks)
            shares: list[list[int]] = [[] for _ in range(args.workers)]
            pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=2) for _ in range(args.workers)]
            try:
                compactors = [
                    ChunkCompactor(p, pass_seconds=3600, observe=lambda s, _p, _t, mine=shares[i]: mine.append(s))
                    for i, p in enumerate(pools)
                ]
                started = time.perf_counter()
                await asyncio.gather(*(c.compact() for c in compactors))
                seconds = time.perf_counter() - started
            finally:
                for p in pools:
                    await p.close()
            merged = sum(map(sum, shares))
            print(
                f"{merged:,} series ({merged * args.chunks:,} one-point chunks) merged by {args.workers} compactors"
                f" in {seconds:.2f} s: {merged / seconds:,.0f} series/s, {merged * args.chunks / seconds:,.0f}"
                f" points/s; series per compactor {[sum(s) for s in shares]}"
            )
    finally:
        infra.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compaction", description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
