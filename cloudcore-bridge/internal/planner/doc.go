// Package planner turns what the bridge knows (the fleet registry, the
// cloud catalog, the copies that exist and the regions that reported a
// capacity error) into the scheduler's Snapshot, and the scheduler's
// decisions into the documents of the HTTP API (apiv1): plans with their
// explanation, the site list and the residency audit. It is pure: no I/O,
// no clock (the time is passed in), no goroutines.
//
// # Edge sites from the registry
//
// Every node that has said hello (its facts carry CPU cores and memory)
// is an edge site with:
//
//   - Capacity: the node's cores × 1000 millicores and its memory in
//     bytes, minus a system reserve for the operating system and the agent
//     itself: 10 % of the CPU, and 10 % of the memory but at most 256 MiB
//     (ReserveCPUPercent, ReserveMemoryPercent, MaxReserveMemory).
//   - Allocated: the sum of the resources of the copies placed on it.
//   - Labels as the node reports them, and from well-known labels:
//     skyedge.io/lat and skyedge.io/lon (decimal degrees, both or neither)
//     for latency estimates, skyedge.io/jurisdiction (ISO 3166-1 alpha-2,
//     or a zone such as EU), skyedge.io/provider and skyedge.io/region. A
//     malformed value is ignored (the site has no location, or no
//     jurisdiction, which any jurisdiction constraint refuses) and
//     LabelProblems says why; one bad node never fails the snapshot.
//   - Link: online while connected; disconnected since it was last seen
//     otherwise, each workload's disconnect.lostAfter deciding when its
//     copies are lost; lost at once when its offline reason is
//     ReasonRemoved or ReasonDecommissioned, or when it has been silent for
//     longer than Inputs.NodeLostAfter.
//
// A node whose ID is also a catalog region ID is left out: the region
// keeps the ID.
//
// # Cloud regions and their agents
//
// Cloud regions come from the catalog, with CapacityErrorUntil from
// Inputs.CapacityErrors. A region's workloads are run by agents labelled
// skyedge.io/site=<region ID> (an agent in the region's network that
// starts them there, through the region's executor): such an agent is not
// an edge site itself, whatever its facts. RegionAgents lists the online
// agents of each catalog region; an agent naming a region the catalog does
// not hold is left out of both.
package planner
