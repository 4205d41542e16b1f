"""The L2 book: equal to a plain-dict rebuild of the same messages, sequence gaps, resync."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tradeloop.core.market_events import BookDelta, BookSnapshot
from tradeloop.data.stream.book import BookSync, L2Book
from tradeloop.testing.streams import book_after, load_script


def _deltas(shared_data: Path) -> tuple[list[BookDelta], object]:
    script = load_script(shared_data, klines=1)
    out = [
        BookDelta("binance", "BTC/USDT", d.ts_ms * 10**6, 0, d.seq, d.seq - 1, d.bids, d.asks)
        for d in script.depth
    ]
    return out, script


def _reference(deltas: list[BookDelta]) -> tuple[dict[float, float], dict[float, float]]:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for d in deltas:
        for side, levels in ((bids, d.bids), (asks, d.asks)):
            for p, s in levels:
                if s == 0:
                    side.pop(p, None)
                else:
                    side[p] = s
    return bids, asks


def test_book_equals_dict_rebuild_of_every_recorded_update(shared_data: Path) -> None:
    deltas, script = _deltas(shared_data)
    book = L2Book("binance", "BTC/USDT")
    book.apply_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, deltas[0].prev_seq, (), ()))
    for i, d in enumerate(deltas):
        assert book.apply_delta(d)
        if i % 50 == 0 or i == len(deltas) - 1:
            bids, asks = _reference(deltas[: i + 1])
            got_b, got_a = book.levels()
            assert got_b == tuple(sorted(bids.items(), reverse=True))
            assert got_a == tuple(sorted(asks.items()))
    assert book.updates == len(deltas) == 451
    assert book.levels() == book_after(script, deltas[-1].seq)  # type: ignore[arg-type]
    # never crossed: the derived stream keeps best bid < best ask
    assert book.best_bid()[0] < book.best_ask()[0]  # type: ignore[index]


def test_random_updates_with_deletions_match_reference() -> None:
    rng = random.Random(7)
    book = L2Book("x", "S", capacity=4)  # grows
    book.apply_snapshot(BookSnapshot("x", "S", 0, 0, 0, (), ()))
    deltas = []
    for seq in range(1, 3001):
        bids = tuple((float(rng.randint(900, 999)), rng.choice([0.0, 1.0, 2.5])) for _ in range(3))
        asks = tuple((float(rng.randint(1001, 1100)), rng.choice([0.0, 3.0])) for _ in range(3))
        deltas.append(BookDelta("x", "S", seq, seq, seq, seq - 1, bids, asks))
    for d in deltas:
        assert book.apply_delta(d)
    ref_bids, ref_asks = _reference(deltas)
    assert book.levels() == (
        tuple(sorted(ref_bids.items(), reverse=True)),
        tuple(sorted(ref_asks.items())),
    )
    assert len(book) == len(ref_bids) + len(ref_asks)


def test_top_of_book_figures_by_hand() -> None:
    book = L2Book("x", "S")
    book.apply_snapshot(
        BookSnapshot("x", "S", 5, 6, 1, ((100.0, 3.0), (99.0, 1.0)), ((101.0, 1.0), (102.0, 4.0)))
    )
    top = book.top(2)
    assert top is not None
    assert (top.bid, top.bid_size, top.ask, top.ask_size) == (100.0, 3.0, 101.0, 1.0)
    assert top.spread == 1.0
    assert top.mid == 100.5
    assert top.microprice == pytest.approx((100.0 * 1.0 + 101.0 * 3.0) / 4.0)
    assert top.imbalance == pytest.approx((4.0 - 5.0) / 9.0)
    assert book.depth(1) == (3.0, 1.0)


def test_sequence_gap_unsyncs_and_resync_rebuilds_the_book(shared_data: Path) -> None:
    deltas, script = _deltas(shared_data)
    fetched: list[int] = []

    def snapshot() -> BookSnapshot:
        # the venue's REST depth: the book as of the newest update the venue has sent
        seq = deltas[min(len(deltas) - 1, 220)].seq
        fetched.append(seq)
        bids, asks = book_after(script, seq)  # type: ignore[arg-type]
        return BookSnapshot("binance", "BTC/USDT", 0, 0, seq, bids, asks)

    book = L2Book("binance", "BTC/USDT")
    sync = BookSync(book, snapshot)
    first = deltas[0]
    sync.on_snapshot(BookSnapshot("binance", "BTC/USDT", 0, 0, first.prev_seq, (), ()))
    for d in deltas[:200]:
        assert sync.on_delta(d)
    # updates 200..209 are lost on the way: the next one does not follow
    ok = sync.on_delta(deltas[210])
    assert book.gaps == 1
    assert sync.resyncs == 1
    assert fetched == [deltas[220].seq]
    assert ok
    assert book.synced
    assert book.seq == deltas[220].seq
    for d in deltas[211:]:
        assert sync.on_delta(d)  # 211..220 are stale (inside the snapshot), then live
    assert book.stale == 10
    assert book.levels() == book_after(script, deltas[-1].seq)  # type: ignore[arg-type]


def test_deltas_before_the_first_snapshot_are_buffered_and_replayed(shared_data: Path) -> None:
    deltas, script = _deltas(shared_data)
    seq = deltas[4].seq
    bids, asks = book_after(script, seq)  # type: ignore[arg-type]
    snap = BookSnapshot("binance", "BTC/USDT", 0, 0, seq, bids, asks)
    book = L2Book("binance", "BTC/USDT")
    calls = []
    sync = BookSync(book, lambda: calls.append(1) or snap)  # type: ignore[func-returns-value]
    for d in deltas[:30]:
        sync.on_delta(d)
    assert calls == [1]
    assert book.seq == deltas[29].seq
    assert book.levels() == book_after(script, deltas[29].seq)  # type: ignore[arg-type]


def test_columns_path_equals_message_path(shared_data: Path) -> None:
    import numpy as np

    deltas, _ = _deltas(shared_data)
    a, b = L2Book("x", "S"), L2Book("x", "S")
    for book in (a, b):
        book.apply_snapshot(BookSnapshot("x", "S", 0, 0, deltas[0].prev_seq, (), ()))
    for d in deltas:
        a.apply_delta(d)
        levels = d.bids + d.asks
        is_bid = np.array([True] * len(d.bids) + [False] * len(d.asks))
        price = np.array([p for p, _ in levels])
        size = np.array([s for _, s in levels])
        b.apply_columns(d.seq, d.ts, is_bid, price, size)
    assert a.levels() == b.levels()


def test_batched_messages_equal_the_message_path_and_stop_at_a_gap(shared_data: Path) -> None:
    import numpy as np

    deltas, script = _deltas(shared_data)
    rows = [
        (d.seq, d.prev_seq, lv, side)
        for d in deltas
        for side, lvs in ((1, d.bids), (0, d.asks))
        for lv in lvs
    ]
    counts = [len(d.bids) + len(d.asks) for d in deltas]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    is_bid = np.array([r[3] == 1 for r in rows])
    price = np.array([r[2][0] for r in rows])
    size = np.array([r[2][1] for r in rows])
    seqs = np.array([d.seq for d in deltas], np.int64)
    prevs = np.array([d.prev_seq for d in deltas], np.int64)
    book = L2Book("x", "S")
    book.apply_snapshot(BookSnapshot("x", "S", 0, 0, deltas[0].prev_seq, (), ()))
    assert book.apply_batch(seqs, prevs, offsets, is_bid, price, size) == len(deltas)
    assert book.levels() == book_after(script, deltas[-1].seq)  # type: ignore[arg-type]
    # message 100 lost: the batch stops right there and the book waits for a snapshot
    gap = L2Book("x", "S")
    gap.apply_snapshot(BookSnapshot("x", "S", 0, 0, deltas[0].prev_seq, (), ()))
    keep = np.ones(len(deltas), bool)
    keep[100] = False
    rows_keep = np.repeat(keep, counts)
    new_offsets = np.concatenate([[0], np.cumsum(np.array(counts)[keep])]).astype(np.int64)
    used = gap.apply_batch(
        seqs[keep], prevs[keep], new_offsets, is_bid[rows_keep], price[rows_keep], size[rows_keep]
    )
    assert used == 100
    assert gap.gaps == 1
    assert not gap.synced
    assert gap.levels() == book_after(script, deltas[99].seq)  # type: ignore[arg-type]


def test_pipeline_batches_deltas_and_resyncs_on_a_gap(shared_data: Path) -> None:
    from tradeloop.adapters.streams.pipeline import MarketPipeline

    deltas, script = _deltas(shared_data)
    calls: list[int] = []

    def fetch(venue: str, symbol: str) -> BookSnapshot:
        seq = deltas[260].seq
        calls.append(seq)
        bids, asks = book_after(script, seq)  # type: ignore[arg-type]
        return BookSnapshot(venue, symbol, 0, 0, seq, bids, asks)

    pipe = MarketPipeline("t", fetch_snapshot=fetch)
    first = BookSnapshot("binance", "BTC/USDT", 0, 0, deltas[0].prev_seq, (), ())
    lost = set(range(250, 255))
    stream = [first] + [d for i, d in enumerate(deltas) if i not in lost]
    out = []
    for i in range(0, len(stream), 64):  # chunks, as a queue drains them
        out += pipe.process(stream[i : i + 64])
    book = pipe.book("BTC/USDT")
    assert book is not None
    assert calls == [deltas[260].seq]
    q = pipe.metrics.source("binance")
    assert (q.gaps, q.resyncs) == (1, 1)
    assert q.messages == len(stream)
    assert book.levels() == book_after(script, deltas[-1].seq)  # type: ignore[arg-type]
    # delta 255 found the gap (held while resyncing), 256..260 were inside the snapshot
    assert book.stale == 260 - 255
