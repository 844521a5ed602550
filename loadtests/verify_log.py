"""How long `messaging verify-log` takes to recompute 100,000 chained events.

    python -m loadtests.verify_log [--events 100000] [--conversations 100]

Starts its own Postgres, writes the events through the service's own append path (so they are
chained exactly as in production), then times the verification of the whole log.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from messaging.devservices import start_postgres
from messaging.store.log import Append, accept, append_batch
from messaging.store.pool import create_pool, migrate
from messaging.store.roster import import_roster
from messaging.store.verify import verify_log

ROSTER = {
    "schools": [{"id": "bench", "name": "École Banc d'essai"}],
    "groups": [{"id": "bench-g", "school": "bench", "name": "Groupe", "grade": 3}],
    "staff": [
        {
            "id": "bench-t",
            "name": "Enseignante Fictive",
            "locale": "fr",
            "roles": [{"school": "bench", "role": "teacher", "groups": ["bench-g"]}],
        }
    ],
    "students": [
        {
            "id": "bench-s",
            "school": "bench",
            "grade": 3,
            "groups": ["bench-g"],
            "name": "Élève Fictif",
        }
    ],
    "parents": [
        {"id": "bench-p", "name": "Parent Fictif", "locale": "fr", "children": ["bench-s"]}
    ],
}


async def run(events: int, conversations: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="messaging-bench-verify-", dir="/tmp") as tmp:
        pg = start_postgres(Path(tmp), persistent=False)
        try:
            await migrate(pg.owner_dsn, "messaging_app")
            pool = await create_pool(pg.app_dsn, min_size=1, max_size=2)
            try:
                await import_roster(pool, ROSTER)
                convs = [f"c_bench_{i:05d}" for i in range(conversations)]
                async with pool.acquire() as conn:
                    await conn.executemany(
                        "INSERT INTO conversations (id, school, kind, owner)"
                        " VALUES ($1, 'bench', 'direct', 'bench-t')",
                        [(c,) for c in convs],
                    )
                    await conn.executemany(
                        "INSERT INTO members (conv, user_id, role) VALUES ($1, $2, $3)",
                        [
                            (c, u, r)
                            for c in convs
                            for u, r in (("bench-t", "staff"), ("bench-p", "parent"))
                        ],
                    )
                started = time.perf_counter()
                written = 0
                while written < events:
                    batch = [
                        Append(
                            conv=convs[(written + i) % conversations],
                            actor="bench-t",
                            kind="message",
                            rule=accept,
                            body=f"Message fictif n° {written + i} : sortie au musée.",
                            data={"attachments": []},
                            cid=f"m{written + i}",
                            lang="fr",
                        )
                        for i in range(min(1000, events - written))
                    ]
                    async with pool.acquire() as conn, conn.transaction():
                        await append_batch(conn, batch)
                    written += len(batch)
                write_s = time.perf_counter() - started
                async with pool.acquire() as conn:
                    report = await verify_log(conn)
            finally:
                await pool.close()
        finally:
            pg.stop()
    assert report.ok and report.events == events, report
    return {"events": events, "write_s": write_s, "verify_s": report.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=100)
    args = parser.parse_args()
    r = asyncio.run(run(args.events, args.conversations))
    print(
        f"verify-log: {r['events']:,} events recomputed in {r['verify_s']:.2f} s "
        f"({r['events'] / r['verify_s']:,.0f} events/s; target: under 10 s, ratio "
        f"{r['verify_s'] / 10:.2f}); writing them took {r['write_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
