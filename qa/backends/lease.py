"""One writer per collection, across machines: a lease kept in Milvus itself.

Milvus has no compare-and-set, but it hands out generated primary keys in time order (from its
timestamp oracle), and a strong read sees every insert that finished before it. So a writer
inserts a ticket row into ``NAME_writers`` and holds the lease when its ticket is the oldest among
the writers still alive. A writer stays alive by adding a fresh row every ``RENEW`` seconds, while
it waits and while it writes (rows are never updated: an upsert would hand out a new key); one
whose newest row has expired (a crashed build) stops counting ``TTL`` seconds after its last
sign of life, and its rows are removed by whoever sees them. A writer that finds itself first
looks again ``SETTLE`` seconds later, so that a ticket handed out just before its own but not yet
visible is seen. Expiry times come from the writers' clocks: machines whose clocks differ by
more than ``TTL`` would see each other's leases lapse early or late.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager

from ..errors import QAError
from .milvus import NO_VECTOR, create_plain

log = logging.getLogger(__name__)

TTL = 60.0
RENEW = 15.0
SETTLE = 1.0
POLL = 1.0


class WriterLease:
    """``with WriterLease(client, alias).held(wait):`` one writer of ``alias`` at a time."""

    def __init__(self, client, alias: str) -> None:
        self.client, self.alias, self.name = client, alias, f"{alias}_writers"
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()

    @contextmanager
    def held(self, wait: float):
        """Hold the lease inside the block; wait up to ``wait`` seconds for another writer to finish.

        Raises:
            QAError: another writer still held it after ``wait`` seconds (it is named).
        """
        self._ensure()
        self._sign()
        renewing = threading.Thread(target=self._renew, daemon=True, name=f"lease {self.name}")
        renewing.start()
        try:
            self._wait_turn(wait)
            yield
        finally:
            self._stop.set()
            renewing.join()
            self.client.delete(self.name, filter=f'holder == "{self.holder}"')

    def _wait_turn(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        told = None
        while True:
            first = self._first()
            if first == self.holder:
                time.sleep(SETTLE)
                if self._first() == self.holder:
                    return
            elif first != told:
                log.warning("Milvus collection %s: waiting for the build of %s to finish", self.alias, first)
                told = first
            if time.monotonic() > deadline:
                raise QAError(f"another build of Milvus collection {self.alias!r} holds its write lock ({first}); "
                              f"waited {wait:.0f} s. Try again when it has finished (the lock of a build that "
                              f"crashed lapses {TTL:.0f} s after it stopped)")
            time.sleep(POLL)

    def _first(self) -> str | None:
        """The living writer with the oldest ticket; the dead ones' rows are removed on the way."""
        rows = self.client.query(self.name, filter="id >= 0", output_fields=["id", "holder", "expires"],
                                 consistency_level="Strong", limit=16384)
        ticket: dict[str, int] = {}
        alive: dict[str, int] = {}
        for r in rows:
            ticket[r["holder"]] = min(ticket.get(r["holder"], r["id"]), r["id"])
            alive[r["holder"]] = max(alive.get(r["holder"], 0), r["expires"])
        now = _now_ms()
        dead = [h for h, until in alive.items() if until <= now and h != self.holder]
        if dead:
            self.client.delete(self.name, filter=f"holder in {json.dumps(dead)}")
        living = {h: t for h, t in ticket.items() if h not in dead}
        return min(living, key=living.get) if living else None

    def _renew(self) -> None:
        while not self._stop.wait(RENEW):
            try:
                self._sign()
            except Exception as exc:  # the server went away: the build itself fails with its own message
                log.warning("Milvus collection %s: could not renew the write lock: %s", self.alias, exc)

    def _sign(self) -> None:
        """A fresh row: alive for TTL more seconds (the first row written is the ticket)."""
        self.client.insert(self.name, [{"holder": self.holder, "expires": _now_ms() + int(TTL * 1000), **NO_VECTOR}])

    def _ensure(self) -> None:
        if self.client.has_collection(self.name):
            return
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("holder", DataType.VARCHAR, max_length=256)
        schema.add_field("expires", DataType.INT64)
        create_plain(self.client, self.name, schema)  # two writers creating it at once is fine: same schema
        self.client.load_collection(self.name)


def _now_ms() -> int:
    return int(time.time() * 1000)
