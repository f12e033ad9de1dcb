// Package runner runs the workloads assigned to an edge node, exec
// processes and Docker containers, and keeps them running with no cloud
// at all: it starts them at boot from the last desired set the agent
// stored, restarts them by their restart policy, probes their health, and
// stops them itself only when their disconnect policy says so
// (disconnect.stopAfter).
//
// It is built for a node that loses the cloud and the agent at any time:
//
//   - An agent restart, even by SIGKILL, does not touch the workloads.
//     Exec workloads run in their own session and write their output to a
//     file they hold open, never to a pipe through the agent; containers
//     have Docker's restart policy "no" and labels naming their workload.
//     The runner keeps state.json per workload (pid with its start time
//     and the boot ID, or the container ID, and the spec hash), written
//     atomically, and a new runner adopts what still runs the desired
//     spec instead of starting it twice. Run returning leaves everything
//     running.
//   - A workload that exits is restarted after InitialDelay, doubling to
//     MaxDelay, starting over once an instance ran StableAfter; MaxRestarts
//     caps restarts in a row. Start failures (a missing command, no Docker
//     daemon yet at boot) are retried with the same backoff and never give
//     up, so a node recovers once the cause goes.
//   - An exec workload gets a cgroup v2 with cpu.max and memory.max when
//     the host lets the agent create one; otherwise it runs without limits
//     and its status says why.
//
// Each workload has one supervisor goroutine that takes every decision for
// it; the Runner's own loop starts supervisors, applies the disconnect
// policy and rotates logs. Decisions that depend on time (backoff, stable
// runs, stopAfter) are pure functions of the injected clock.
//
// Layout of StateDir:
//
//	workloads/<name>/state.json     what runs (see record)
//	workloads/<name>/output.log     exec stdout+stderr, with .1 .. .N-1
package runner
