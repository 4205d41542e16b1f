"""DuckDB analytics store: idempotent feedback, weight versions, migrations."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tradeloop.store import SCHEMA_VERSION, AnalyticsStore, current_version, migrate


def _row(i: int, source: str = "ext", pnl: float = 1.0) -> dict[str, object]:
    return {
        "signal_id": f"s{i}",
        "source": source,
        "symbol": "BTCUSDT",
        "side": "long",
        "entry_price": 100.0,
        "exit_price": 101.0,
        "entry_ts": i,
        "exit_ts": i + 10,
        "pnl": pnl,
        "pnl_pct": pnl / 100,
    }


def test_insert_feedback_same_signal_and_source_stored_once() -> None:
    store = AnalyticsStore()
    assert store.insert_feedback([_row(1), _row(1), _row(2)]) == 2
    assert store.insert_feedback([_row(1), _row(2)]) == 0
    assert store.insert_feedback([_row(1, source="tradeloop")]) == 1
    assert store.feedback_count() == 3


def test_rolling_metrics_groups_by_source_and_component() -> None:
    store = AnalyticsStore()
    store.insert_feedback([_row(1, pnl=1.0), _row(2, pnl=-1.0), _row(3, pnl=2.0)])
    rows = {(r["source"], r["component"]): r for r in store.rolling_metrics(0)}
    total = rows[("*", "*")]
    assert total["count"] == 3
    assert abs(total["hit_rate"] - 2 / 3) < 1e-12
    assert abs(total["mean_pnl"] - 2 / 3) < 1e-12
    assert rows[("ext", "liquidation_zone")]["count"] == 3
    assert store.rolling_metrics(1_000)[0:] == []


def test_weights_versions_are_kept() -> None:
    store = AnalyticsStore()
    assert store.weights() is None
    v1 = store.save_weights({"a": 1.0, "b": 1.0}, 5, "initial")
    v2 = store.save_weights({"a": 1.5, "b": 0.5}, 6, "ema")
    assert (v1, v2) == (1, 2)
    assert store.weights()["weights"] == {"a": 1.5, "b": 0.5}
    assert store.weights(1)["reason"] == "initial"
    assert [h["version"] for h in store.weight_history()] == [1, 2]


def test_older_schema_file_is_upgraded_not_recreated(tmp_path: Path) -> None:
    # Arrange: a file at schema v1 with one feedback row
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=1)
    con.execute(
        "INSERT INTO signal_feedback VALUES ('old', 'ext', 'BTCUSDT', 'long', 1, 2, 0, 1, 1, 1)"
    )
    con.close()
    # Act
    store = AnalyticsStore(path)
    # Assert: upgraded in place, the old row kept with the new column's default
    assert current_version(store._con) == SCHEMA_VERSION
    rows = store.feedback()
    assert [r["signal_id"] for r in rows] == ["old"]
    assert rows[0]["component"] == "liquidation_zone"
    store.close()
    # reopening a current file changes nothing
    again = AnalyticsStore(path)
    assert again.feedback_count() == 1
