// Package desired versions the set of workloads the cloud wants a node to
// run, and carries it across a link that fails: the cloud keeps a Set per
// node, the agent keeps a Local.
//
// # The generation protocol
//
// A node's desired set has a generation that grows by one on every change
// (a workload assigned, changed or removed). The Set remembers, for every
// name, the generation at which it last changed, and keeps a tombstone for
// a removed name until the node has acknowledged a generation at or past
// the removal (Compact). So the Set can always answer "what changed since
// generation g?" for any g from its floor (the highest generation a
// compacted tombstone had) up to its current generation.
//
// The cloud sends those changes as pb.DesiredState messages: each covers
// the generations (base_generation, generation], and a diff too large for
// one MQTT message is split into several that chain (the generation of one
// is the base of the next). The agent applies a message only when its base
// is the generation it holds, stores the result, and answers with a
// pb.DesiredAck naming the generation it now holds; its Hello carries the
// same number after every connect. A message whose base is not the
// agent's generation is not applied: the agent acks what it holds and the
// cloud sends the diff from there. Applying a message twice changes
// nothing, so resending is always safe.
//
// When the cloud cannot compute a diff (the node claims a generation the
// cloud never reached, because the cloud's store was restored, or one
// below the floor, because tombstones were compacted), it sends full=true
// with the whole live set, which replaces everything the agent holds. A
// full set too large for one message is sent as a full message carrying
// the items that changed at or before some generation g, followed by
// ordinary diffs from g; a node interrupted in the middle holds g and
// resumes from there like any other.
//
// Both types are pure data: no I/O, no clock, not safe for concurrent use.
// The bridge persists a Set as JSON; the agent persists a Local as JSON in
// its outbox database.
package desired
