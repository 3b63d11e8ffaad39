"""`rowcast bench`: honest measurements of the prediction hot path.

One run measures rowcast against its floors (a bare grpc.aio echo server, a raw happybase
`row()` loop) and against the alternative it replaces (a LightGBM server that computes on
request), with ghz as the load generator pinned to one core and the servers to the other.

Modules:
  plan, measurement    options, server environment; Measurement and RunResult records
  tools, protoset      ghz (installed with `go install`), taskset; the contract for ghz
  workload             realistic inputs, ghz data and the checked-in configs (bench/ghz)
  ghz, rawstore        one ghz run, parsed; the happybase floor
  echo, compute        the comparison servers (`python -m rowcast_bench.echo|compute`)
  processes            pinned server subprocesses, always stopped
  cpu, quiet           background-load accounting; repeat runs that others' load spoiled
  fixture              HBase (reused or started), the published and the large model
  session, runner      the measurements in order; one whole run
  ratios, report, plots  the goals of issues 4 and 13; JSON, markdown, PNG
  interceptor_cost     the metrics interceptor's own CPU per call, timed in process
"""
