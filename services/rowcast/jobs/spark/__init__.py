"""Materialisation on Spark with a bulk load of HFiles (issue 15): `engine.materialize_spark`
is what `rowcast.jobs.materialize.materialize(spark=SparkOptions(...))` runs.

Modules: `options` (what a run is given), `driver` (the Spark application, run as its own
process: score in the executors, write HFiles, bulk-load), `engine` (this process's side: the
table, the driver process, progress, cancel, clean-up, the verification gate, READY/FAILED),
`build` (the JVM helper in java/, built by scripts/setup). docs/materialize.md describes it.
"""
