"""`rowcast chaos audit`: the proof that the audit path loses and duplicates nothing.

A run drives Predict load on loopback while it kill -9s the AuditService, prediction servers and
the HBase JVMs, and SIGSTOPs HBase, restarting what it killed; then it waits for the spools to
drain and checks every decision id a client received against the audit tables.

    services.py   the service processes (`rowcast serve ...`) a run starts, kills, restarts
    cluster.py    HBase + AuditService + prediction servers of one run, and their teardown
    load.py       the Predict load driver: what each client actually received
    faults.py     the fault schedule (kill -9, SIGSTOP/SIGCONT) and the restarts
    spools.py     how much of each prediction server's spool is not yet acknowledged
    check.py      every acknowledged decision on record exactly once, every field as received
    report.py     the result (JSON)
    run.py        one run, end to end

`rowcast chaos serving`: the proof that serving goes on while a multi-node HBase loses region
servers and gateways (docs/scaling.md), built from the same load driver, services and check:

    serving_stack.py    the cluster (rowcast_dev.hbase.cluster) and the services of a run
    meta.py             where a table's region replicas are served, from hbase:meta
    serving_faults.py   kill -9 / SIGSTOP of region servers, kill -9 of gateways, restarts
    serving_report.py   per-window latency and failures, the goals and their verdicts
    serving.py          one run, end to end
    serving_scaling.py  throughput with 3, 2 and 1 region servers
"""
