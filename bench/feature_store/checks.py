"""Is a historical result right? Row counts, and every cell against an independent reference.

The reference is computed here with plain SQL (no ASOF join): for each entity row and feature
set, the source row of the same entity with the greatest event time in [t - TTL, t]. Every
entity has at most one row per day and set, so there are no ties to break.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from bench.feature_store.data import ENTITY_KEY, TIMESTAMP, Dataset


def reference(dataset: Dataset, out: Path) -> Path:
    """Write the correct answer for the dataset's entity frame to `out` (request_id + every feature)."""
    spec = dataset.spec
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    selects, joins = [], []
    for i in range(spec.sets):
        names = spec.feature_names(i)
        cols = ", ".join(f"arg_max(s.{n}, s.{TIMESTAMP}) AS {n}" for n in names)
        joins.append(
            f"""LEFT JOIN (
                SELECT e.request_id, {cols}
                FROM read_parquet('{dataset.entities}') e
                JOIN read_parquet('{dataset.source(i)}') s
                  ON s.{ENTITY_KEY} = e.{ENTITY_KEY}
                 AND s.{TIMESTAMP} <= e.{TIMESTAMP}
                 AND s.{TIMESTAMP} >= e.{TIMESTAMP} - INTERVAL {spec.ttl_days} DAY
                GROUP BY e.request_id
            ) t{i} USING (request_id)"""
        )
        selects += [f"t{i}.{n}" for n in names]
    sql = f"SELECT e.request_id, {', '.join(selects)} FROM read_parquet('{dataset.entities}') e {' '.join(joins)}"
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
    con.close()
    return out


@dataclass
class Verdict:
    """How one system's historical result compares with the entity frame and the reference."""

    rows: int
    entity_rows: int
    missing_rows: int  # entity rows absent from the result
    duplicate_rows: int  # result rows beyond one per entity row
    cells: int  # feature cells compared (rows present x features)
    wrong_cells: int  # value differs from the reference, or null where the reference has one, or the reverse
    null_cells: int  # null cells in the result
    expected_null_cells: int  # null cells in the reference, over the same rows
    unmatched_columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _column(columns: list[str], set_name: str, feature: str) -> str | None:
    for candidate in (feature, f"{set_name}__{feature}", f"{set_name}:{feature}", f"{set_name}.{feature}"):
        if candidate in columns:
            return candidate
    return None


def verdict(dataset: Dataset, result: Path, ref: Path) -> Verdict:
    """Compare `result` (must carry the entity frame's request_id) with the reference `ref`."""
    spec = dataset.spec
    con = duckdb.connect()
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{result}')").fetchall()]
    entity_rows = con.execute(f"SELECT count(*) FROM read_parquet('{dataset.entities}')").fetchone()[0]  # type: ignore[index]
    rows, distinct = con.execute(  # type: ignore[misc]
        f"SELECT count(*), count(DISTINCT request_id) FROM read_parquet('{result}')"
    ).fetchone()
    wrong_terms, null_terms, ref_null_terms, unmatched = [], [], [], []
    for i in range(spec.sets):
        for name in spec.feature_names(i):
            col = _column(columns, spec.set_name(i), name)
            if col is None:
                unmatched.append(f"{spec.set_name(i)}:{name}")
                continue
            a, b = f'r."{col}"', f"f.{name}"
            wrong_terms.append(
                f"sum(CASE WHEN {a} IS NULL AND {b} IS NULL THEN 0 WHEN {a} IS NULL OR {b} IS NULL THEN 1 "
                f"WHEN abs({a}::DOUBLE - {b}::DOUBLE) > 1e-9 THEN 1 ELSE 0 END)"
            )
            null_terms.append(f"sum(CASE WHEN {a} IS NULL THEN 1 ELSE 0 END)")
            ref_null_terms.append(f"sum(CASE WHEN {b} IS NULL THEN 1 ELSE 0 END)")
    compared = len(wrong_terms)
    wrong = nulls = ref_nulls = 0
    present = distinct
    if compared:
        sql = (
            f"SELECT count(*), {' + '.join(wrong_terms)}, {' + '.join(null_terms)}, {' + '.join(ref_null_terms)} "
            f"FROM (SELECT DISTINCT ON (request_id) * FROM read_parquet('{result}')) r "
            f"JOIN read_parquet('{ref}') f USING (request_id)"
        )
        present, wrong, nulls, ref_nulls = con.execute(sql).fetchone()  # type: ignore[misc]
    con.close()
    return Verdict(
        rows=rows,
        entity_rows=entity_rows,
        missing_rows=entity_rows - distinct,
        duplicate_rows=rows - distinct,
        cells=present * compared,
        wrong_cells=int(wrong or 0),
        null_cells=int(nulls or 0),
        expected_null_cells=int(ref_nulls or 0),
        unmatched_columns=unmatched,
    )
