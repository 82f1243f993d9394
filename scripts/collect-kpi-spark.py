#!/usr/bin/env python3
"""Runs the KPI SQL of docs/collect.md with pyspark in local mode over a `relgate collect`
dataset and prints the figures per repository as JSON.

Usage: scripts/collect-kpi-spark.py DATASET_DIR [--doc docs/collect.md] [--check-duckdb]

The SQL is extracted from the doc (the ```sql blocks that start with `-- kpi: NAME`), so the
doc, the DuckDB test and this script run the same statements. The one function the SQL uses
that Spark lacks, DuckDB's `epoch(timestamp)` (seconds since 1970), is registered here as a
Python UDF. Needs `pip install pyspark` and Java 17+.

--check-duckdb also runs every block with DuckDB (`pip install duckdb`) over the same files and
exits 1 when any figure differs: two independent SQL engines, one dataset.
"""
import argparse
import json
import os
import sys


def kpi_blocks(doc_path):
    blocks = {}
    with open(doc_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sql":
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            block = lines[i + 1 : j]
            if block and block[0].strip().startswith("-- kpi: "):
                blocks[block[0].strip()[len("-- kpi: ") :].strip()] = "\n".join(block)
            i = j
        i += 1
    return blocks


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--doc", default=os.path.join(here, "..", "docs", "collect.md"))
    parser.add_argument(
        "--check-duckdb",
        action="store_true",
        help="run the same SQL with DuckDB and exit 1 when a figure differs",
    )
    args = parser.parse_args()
    blocks = kpi_blocks(args.doc)
    if not blocks:
        sys.exit(f"no `-- kpi:` SQL blocks in {args.doc}")

    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("relgate-collect-kpis")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    base = os.path.abspath(args.dataset)
    records = spark.read.option("basePath", base).parquet(os.path.join(base, "repo=*", "date=*"))
    records.createOrReplaceTempView("records")
    # DuckDB's epoch(timestamp): whole seconds are all the KPIs need (record times are).
    spark.udf.register("epoch", lambda t: None if t is None else t.timestamp(), "double")
    out = {}
    for name, sql in sorted(blocks.items()):
        rows = spark.sql(sql).collect()
        out[name] = {r[0]: [v for v in r[1:]] for r in rows}
    spark.stop()
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    if args.check_duckdb:
        differences = compare(out, duckdb_kpis(base, blocks))
        for line in differences:
            print(line, file=sys.stderr)
        if differences:
            sys.exit(1)
        print(f"DuckDB gives the same figures for all {len(out)} KPIs", file=sys.stderr)


def duckdb_kpis(base, blocks):
    """The KPI blocks run with DuckDB over the dataset at `base`, shaped like Spark's."""
    import duckdb

    con = duckdb.connect()
    glob = os.path.join(base, "repo=*", "date=*", "*.parquet").replace("'", "''")
    con.execute(
        f"CREATE VIEW records AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    return {
        name: {r[0]: list(r[1:]) for r in con.execute(sql).fetchall()}
        for name, sql in sorted(blocks.items())
    }


def compare(spark, duck):
    """One line per figure that differs (numbers compared as floats: Spark and DuckDB may
    type a median differently)."""

    def same(a, b):
        if a is None or b is None:
            return a is b
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
        except (TypeError, ValueError):
            return str(a) == str(b)

    out = []
    for name in sorted(set(spark) | set(duck)):
        s, d = spark.get(name, {}), duck.get(name, {})
        for repo in sorted(set(s) | set(d), key=str):
            a, b = s.get(repo), d.get(repo)
            if a is None or b is None or len(a) != len(b) or not all(map(same, a, b)):
                out.append(f"{name} {repo}: spark {a} duckdb {b}")
    return out


if __name__ == "__main__":
    main()
