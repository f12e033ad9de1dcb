// Package bench holds SkyEdge's whole-system benchmarks, the scenarios
// behind `skyedge bench`: ingest (a fleet of simulated agents against a
// bridge, next to the raw broker rate), storm (every link cut and
// restored at once), outbox (durable enqueue and drain against raw
// Badger), footprint (one real agent process: memory, CPU, bytes on the
// wire) and schedule (placement rate and latency over a synthetic fleet).
//
// Simulated agents are real agent.Agent values fed by a synthetic Source,
// each with its own certificate from a development CA cached on disk,
// over real TLS on loopback. The bridge under test runs in a child
// process (this program, re-executed), so its CPU and memory are read
// from /proc for it alone. Every scenario stops by itself; figures come
// from the bridge's own metrics, never from what a publisher believes it
// sent.
//
// Each scenario returns a Result whose JSON keys are stable, so runs on
// different machines compare; Markdown renders a suite of results for
// BENCHMARKS.md.
package bench
