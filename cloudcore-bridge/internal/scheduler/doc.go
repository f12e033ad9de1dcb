// Package scheduler is SkyEdge's "sky" placement engine: it decides on
// which edge node or cloud region each replica of a workload runs.
//
// It is pure. Place and Reconcile are functions of a Snapshot (sites,
// existing copies and the time, all passed in) and the requests: no I/O,
// no clock, no goroutines. Equal inputs give equal outputs, whatever the
// order of the sites, so a decision can be replayed, tested and
// benchmarked without a network.
//
// Placement runs kube-scheduler-style plugins listed in a Profile:
// filters remove the sites a workload cannot use (link state, tier, node
// name, label selector, provider, region, jurisdiction, capacity-error
// cooldown, latency bound, free resources, spread), scorers rate the rest
// (cost, latency, balance, affinity) weighted by the workload's
// objective, and the best site wins, ties going to the lowest site ID.
// Every decision carries an Explanation covering every site.
//
// Reconcile compares the workloads with the copies that exist and returns
// the actions that converge them, applying each workload's disconnect
// policy (after Nomad's disconnect block): a node that merely went quiet
// keeps its work until lostAfter unless the workload asks for a
// replacement, and when it returns the reconcile policy picks the copy
// that stays.
package scheduler
