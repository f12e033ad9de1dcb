package brokertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
	"github.com/skyedge/skyedge/sync/acks"
)

// DefaultAckEvery is how often a Cloud sends the acks it owes.
const DefaultAckEvery = 50 * time.Millisecond

// Cloud is a fake SkyEdge cloud for agent tests: the bridge's half of the
// acknowledged link, written from the protocol alone so the agent is
// tested against the contract rather than the bridge's code. It reads
// every up topic on its Broker, keeps per node the set of applied
// sequence numbers (acks.Set, the dedupe watermark), answers each hello
// with a Welcome carrying that set, and acknowledges what it applied with
// coalesced Acks (cumulative plus ranges) every AckEvery.
//
// A hello whose outbox ID differs from the node's last one, or whose
// next_seq is below the watermark, starts a new sequence space: the
// applied set is reset, the history is kept.
//
// It also keeps a history that nothing resets, to check for losses and
// duplicates: every durable envelope that arrived, in arrival order, and
// how many times each sequence number arrived.
type Cloud struct {
	b        *Broker
	t        testing.TB
	ackEvery time.Duration
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}

	mu       sync.Mutex // guards the fields below
	inbox    []Message
	nodes    map[string]*cloudNode
	silent   bool // neither acks nor watermarks in welcomes
	dropNext int  // MQTT messages of durable envelopes still to drop
	dropped  int
}

// Applied is one durable envelope the cloud applied.
type Applied struct {
	Seq      uint64
	Body     string // protocol.BodyName
	Kind     string // an event's kind
	SentAtMs int64
	Batch    bool // arrived inside a batch
	At       time.Time
	// Settles lists the sequence numbers a gap or summary accounts for.
	Settles []acks.Range
}

type cloudNode struct {
	outboxID string
	set      *acks.Set
	dirty    bool // an ack is owed
	history  []Applied
	arrivals map[uint64]int
	hellos   []*pb.Envelope
	welcomes []*pb.Welcome
	acks     int
	resets   int
}

// NewCloud starts a fake cloud on b. It stops when the test ends.
func NewCloud(t testing.TB, b *Broker) *Cloud {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cloud{
		b: b, t: t, ackEvery: DefaultAckEvery,
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		nodes: map[string]*cloudNode{},
	}
	b.Observe(c.observe)
	go c.run(ctx)
	t.Cleanup(c.stop)
	return c
}

func (c *Cloud) stop() {
	c.cancel()
	<-c.done
}

// SetAcking turns acknowledgements on or off. While off the cloud still
// applies and records messages and answers hellos, but its Welcomes carry
// no watermark or ranges and it sends no Acks: the agent hears nothing
// that would let it delete a message.
func (c *Cloud) SetAcking(on bool) {
	c.mu.Lock()
	c.silent = !on
	for _, n := range c.nodes {
		n.dirty = true // owe the acks held back
	}
	c.mu.Unlock()
	c.kick()
}

// Forget drops every node's applied set, as a bridge without persistence
// does when it restarts. The history is kept, so the duplicates that
// follow show.
func (c *Cloud) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		n.set = acks.NewSet(0, 0)
		n.outboxID = ""
		n.dirty = false
	}
}

// DropNext ignores the next n MQTT messages that carry durable envelopes
// (reports, events, gaps, summaries, batches), as if they were lost
// between the broker and the cloud.
func (c *Cloud) DropNext(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropNext = n
}

// Dropped is how many messages DropNext has dropped.
func (c *Cloud) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// History returns node's applied envelopes in the order they arrived.
func (c *Cloud) History(node string) []Applied {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		return append([]Applied(nil), n.history...)
	}
	return nil
}

// Count is how many durable envelopes of node the cloud applied.
func (c *Cloud) Count(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		return len(n.history)
	}
	return 0
}

// Duplicates returns the sequence numbers of node that arrived more than
// once, with how many times each did.
func (c *Cloud) Duplicates(node string) map[uint64]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[uint64]int{}
	if n := c.nodes[node]; n != nil {
		for seq, k := range n.arrivals {
			if k > 1 {
				out[seq] = k
			}
		}
	}
	return out
}

// Watermark is the cumulative part of node's applied set.
func (c *Cloud) Watermark(node string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		return n.set.Cumulative()
	}
	return 0
}

// Hellos returns the hello envelopes node sent.
func (c *Cloud) Hellos(node string) []*pb.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		return append([]*pb.Envelope(nil), n.hellos...)
	}
	return nil
}

// Welcomes returns the Welcomes sent to node.
func (c *Cloud) Welcomes(node string) []*pb.Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		return append([]*pb.Welcome(nil), n.welcomes...)
	}
	return nil
}

// Resets is how many times node started a new sequence space.
func (c *Cloud) Resets(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node]; n != nil {
		return n.resets
	}
	return 0
}

// observe queues a message from the broker; it runs on the publisher's
// connection goroutine and never blocks.
func (c *Cloud) observe(m Message) {
	if t, err := protocol.ParseTopic(m.Topic); err != nil || t.Dir != protocol.DirUp {
		return
	}
	c.mu.Lock()
	c.inbox = append(c.inbox, m)
	c.mu.Unlock()
	c.kick()
}

func (c *Cloud) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Cloud) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(c.ackEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			c.process()
		case <-tick.C:
			c.flushAcks()
		}
	}
}

// process applies the queued messages in order.
func (c *Cloud) process() {
	c.mu.Lock()
	msgs := c.inbox
	c.inbox = nil
	c.mu.Unlock()
	for _, m := range msgs {
		t, env, err := protocol.DecodeFrom(m.Topic, m.Payload)
		if err != nil {
			c.t.Errorf("fake cloud: message on %s: %v", m.Topic, err)
			continue
		}
		if env.GetHello() != nil {
			c.hello(t.Node, env)
			continue
		}
		if env.GetGoodbye() != nil {
			continue
		}
		c.durable(t.Node, env, m.At)
	}
}

func (c *Cloud) node(id string) *cloudNode {
	n := c.nodes[id]
	if n == nil {
		n = &cloudNode{set: acks.NewSet(0, 0), arrivals: map[uint64]int{}}
		c.nodes[id] = n
	}
	return n
}

// hello starts a new sequence space if the node's changed, and answers
// with a Welcome.
func (c *Cloud) hello(node string, env *pb.Envelope) {
	h := env.GetHello()
	c.mu.Lock()
	n := c.node(node)
	n.hellos = append(n.hellos, env)
	if (n.outboxID != "" && h.GetOutboxId() != n.outboxID) || h.GetNextSeq() < n.set.Cumulative() {
		n.set = acks.NewSet(0, 0)
		n.resets++
	}
	n.outboxID = h.GetOutboxId()
	w := &pb.Welcome{ServerTimeMs: time.Now().UnixMilli(), Capability: protocol.CapabilityVersion}
	if !c.silent {
		w.Watermark, w.Applied = n.set.Cumulative(), acks.ToProto(n.set.Ranges())
	}
	n.welcomes = append(n.welcomes, w)
	c.mu.Unlock()
	c.send(node, &pb.Envelope{NodeId: node, SentAtMs: w.ServerTimeMs, Capability: protocol.CapabilityVersion, Body: &pb.Envelope_Welcome{Welcome: w}})
}

// durable applies a message of durable envelopes, unless told to drop it.
func (c *Cloud) durable(node string, env *pb.Envelope, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropNext > 0 {
		c.dropNext--
		c.dropped++
		return
	}
	n := c.node(node)
	if b := env.GetBatch(); b != nil {
		for _, e := range b.GetEnvelopes() {
			n.apply(e, true, at)
		}
		return
	}
	n.apply(env, false, at)
}

func (n *cloudNode) apply(env *pb.Envelope, batch bool, at time.Time) {
	seq := env.GetSeq()
	n.arrivals[seq]++
	n.dirty = true
	if seq == 0 || n.set.Contains(seq) {
		return // unsequenced, or a duplicate: acknowledged again, not applied
	}
	n.set.Add(seq)
	a := Applied{Seq: seq, Body: protocol.BodyName(env), Kind: env.GetEvent().GetKind(), SentAtMs: env.GetSentAtMs(), Batch: batch, At: at}
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Gap:
		a.Settles = acks.FromProto(b.Gap.GetSeqs())
	case *pb.Envelope_Summary:
		a.Settles = acks.FromProto(b.Summary.GetCovers())
	}
	for _, r := range a.Settles {
		n.set.AddRange(r.First, r.Last)
	}
	n.history = append(n.history, a)
}

// flushAcks sends every ack owed.
func (c *Cloud) flushAcks() {
	c.mu.Lock()
	if c.silent {
		c.mu.Unlock()
		return
	}
	type owed struct {
		node string
		ack  *pb.Ack
	}
	var out []owed
	for id, n := range c.nodes {
		if n.dirty {
			n.dirty = false
			n.acks++
			out = append(out, owed{id, n.set.ToAck()})
		}
	}
	c.mu.Unlock()
	for _, o := range out {
		ok := c.send(o.node, &pb.Envelope{NodeId: o.node, SentAtMs: time.Now().UnixMilli(), Capability: protocol.CapabilityVersion, Body: &pb.Envelope_Ack{Ack: o.ack}})
		if !ok {
			c.mu.Lock()
			c.nodes[o.node].dirty = true // the broker is down: try again
			c.mu.Unlock()
		}
	}
}

// send publishes env on node's down/ack topic and reports whether the
// broker took it.
func (c *Cloud) send(node string, env *pb.Envelope) bool {
	b, err := protocol.Marshal(env)
	if err != nil {
		c.t.Errorf("fake cloud: %v", err)
		return false
	}
	return c.b.Publish(protocol.DownTopic(node, protocol.StreamAck), b) == nil
}
