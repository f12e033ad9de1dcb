package ingest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/internal/endpoint"
	"github.com/skyedge/skyedge/cloudcore-bridge/internal/registry"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// apply applies a decoded, validated envelope received on t.
func (in *Ingester) apply(t protocol.Topic, env *pb.Envelope, now time.Time) error {
	node := t.Node
	switch body := env.GetBody().(type) {
	case *pb.Envelope_Hello:
		in.hello(node, env, body.Hello, now)
	case *pb.Envelope_Goodbye:
		reason := "goodbye"
		switch body.Goodbye.GetReason() {
		case pb.Goodbye_REASON_LOST:
			reason = endpoint.ReasonWill
		case pb.Goodbye_REASON_SHUTDOWN:
			reason = endpoint.ReasonClean
		}
		stale := false
		in.reg.Update(node, func(n *registry.Node) {
			n.Counters.Messages++
			// A broker may publish the will of a connection after the node
			// has already reconnected (session takeover, broker shutdown).
			stale = reason == endpoint.ReasonWill && env.GetSentAtMs() < n.HelloAt.UnixMilli()
		})
		if stale {
			in.log.Debug("ignoring the last will of an older connection", "node", node)
			return nil
		}
		in.offline(node, reason, now, true)
	case *pb.Envelope_DesiredAck:
		in.touch(node, now)
		if in.wl != nil {
			in.wl.DesiredAck(node, body.DesiredAck.GetGeneration())
		}
		return nil
	case *pb.Envelope_LogsResponse:
		in.touch(node, now)
		if in.logs != nil {
			in.logs.Response(node, body.LogsResponse)
		}
		return nil
	case *pb.Envelope_Batch:
		envs := body.Batch.GetEnvelopes()
		for _, e := range envs {
			if !durable(e) {
				return &protocol.Error{Reason: protocol.ReasonWrongBody,
					Err: fmt.Errorf("%s envelope (seq %d) %w", protocol.BodyName(e), e.GetSeq(), errWrongBody)}
			}
		}
		if err := in.applyStatuses(node, envs, now); err != nil {
			return err
		}
		online := false
		dups := 0
		applied := make([]bool, len(envs))
		in.reg.Update(node, func(n *registry.Node) {
			online = seen(n, now)
			dups = 0
			for i, e := range envs {
				applied[i] = applySequenced(n, e, now)
				if !applied[i] {
					dups++
				}
			}
		})
		if online {
			in.cameOnline(node)
		}
		if dups > 0 {
			in.m.Duplicates.Add(float64(dups))
		}
		for i, e := range envs {
			if applied[i] {
				in.observeLatency(e, now)
			}
		}
		return nil
	default:
		if err := in.applyStatuses(node, []*pb.Envelope{env}, now); err != nil {
			return err
		}
		online, applied := false, false
		in.reg.Update(node, func(n *registry.Node) {
			online = seen(n, now)
			applied = applySequenced(n, env, now)
		})
		if online {
			in.cameOnline(node)
		}
		if !applied {
			// A resend of something applied: acknowledged again at the
			// next flush, not applied, and not a latency sample.
			in.m.Duplicates.Inc()
			return nil
		}
	}
	in.observeLatency(env, now)
	return nil
}

func (in *Ingester) observeLatency(env *pb.Envelope, now time.Time) {
	if ms := env.GetSentAtMs(); ms > 0 {
		if d := now.Sub(time.UnixMilli(ms)); d >= 0 {
			in.m.IngestLatency.Observe(d.Seconds())
		}
	}
}

func (in *Ingester) hello(node string, env *pb.Envelope, h *pb.Hello, now time.Time) {
	var wasOnline, restarted, isNew bool
	var change outboxChange
	in.reg.Update(node, func(n *registry.Node) {
		isNew = n.Counters.Messages == 0 && n.AgentVersion == ""
		restarted = n.BootEpoch != 0 && n.BootEpoch != env.GetBootEpoch()
		wasOnline = n.Online
		if !n.Online {
			n.ConnectedSince = now
		}
		n.Online = true
		n.OfflineReason = ""
		n.LastSeen = now
		n.Counters.Messages++
		n.AgentVersion = h.GetAgentVersion()
		n.Capability = env.GetCapability()
		n.BootEpoch = env.GetBootEpoch()
		if ms := env.GetSentAtMs(); ms > n.HelloAt.UnixMilli() {
			n.HelloAt = time.UnixMilli(ms).UTC()
		}
		n.Labels = nil
		if len(h.GetLabels()) > 0 {
			n.Labels = maps.Clone(h.GetLabels())
		}
		n.SetFacts(h)
		change = bindOutbox(n, h)
		// The Welcome waits for the flush that makes its watermark durable.
		n.RequestWelcome()
	})
	if !wasOnline {
		in.m.ConnectedNodes.Set(float64(in.reg.OnlineCount()))
	}
	switch {
	case isNew:
		in.log.Info("new node", "node", node, "agent_version", h.GetAgentVersion(), "capability", env.GetCapability())
	case restarted:
		in.log.Info("node restarted", "node", node, "boot_epoch", env.GetBootEpoch(), "agent_version", h.GetAgentVersion())
	}
	change.log(in.log, node, h)
	if in.wl != nil {
		if env.GetCapability() >= protocol.CapWorkloads {
			in.wl.Hello(node, h.GetAppliedGeneration())
		} else if !wasOnline {
			in.wl.LinkChanged(node)
		}
	}
}

// touch records a message that is not sequenced from node.
func (in *Ingester) touch(node string, now time.Time) {
	online := false
	in.reg.Update(node, func(n *registry.Node) { online = seen(n, now) })
	if online {
		in.cameOnline(node)
	}
}

// applyStatuses hands the workload statuses among envs that node's
// applied set does not hold yet to the workload side, in sequence order.
// It runs before they are marked applied, so that a status is stored
// before the flush that acknowledges it; a status stored twice (a resend
// racing with its first copy, or a crash between the two steps) is
// harmless, as the store keeps the newest by sequence number.
func (in *Ingester) applyStatuses(node string, envs []*pb.Envelope, now time.Time) error {
	if in.wl == nil {
		return nil
	}
	var sts []*pb.Envelope
	for _, e := range envs {
		if e.GetStatus() != nil {
			sts = append(sts, e)
		}
	}
	if len(sts) == 0 {
		return nil
	}
	var outbox string
	fresh := make([]*pb.Envelope, 0, len(sts))
	known := in.reg.View(node, func(n *registry.Node) {
		outbox = n.AppliedOutbox()
		for _, e := range sts {
			if !n.HasApplied(e.GetSeq()) {
				fresh = append(fresh, e)
			}
		}
	})
	if !known {
		fresh = sts
	}
	slices.SortStableFunc(fresh, func(a, b *pb.Envelope) int { return cmp.Compare(a.GetSeq(), b.GetSeq()) })
	for _, e := range fresh {
		at := now
		if ms := e.GetSentAtMs(); ms > 0 {
			at = time.UnixMilli(ms).UTC()
		}
		if err := in.wl.Status(node, outbox, e.GetSeq(), e.GetStatus(), at); err != nil {
			return &protocol.Error{Reason: ReasonUnavailable, Err: err}
		}
	}
	return nil
}

// seen records a message from n. A message proves the node is connected:
// through an external broker the bridge learns of connections only from
// messages, and may have missed the hello while it was itself away.
// Call it inside Update.
// It reports whether the node came online.
func seen(n *registry.Node, now time.Time) bool {
	n.LastSeen = now
	n.Counters.Messages++
	if n.Online {
		return false
	}
	n.Online, n.OfflineReason, n.ConnectedSince = true, "", now
	return true
}

// cameOnline records a node that seen found offline.
func (in *Ingester) cameOnline(node string) {
	in.m.ConnectedNodes.Set(float64(in.reg.OnlineCount()))
	in.log.Info("node online without a hello (the bridge missed it)", "node", node)
	in.linkChanged(node)
}

// durable reports whether env's body is a durable message, the only kind
// that may travel in a batch.
func durable(env *pb.Envelope) bool {
	switch env.GetBody().(type) {
	case *pb.Envelope_Report, *pb.Envelope_Summary, *pb.Envelope_Event, *pb.Envelope_Gap, *pb.Envelope_Status:
		return true
	}
	return false
}

// applySequenced applies durable env to n unless its sequence number is
// already in n's applied set, and reports whether it applied it. Call it
// inside Update.
func applySequenced(n *registry.Node, env *pb.Envelope, now time.Time) bool {
	if !n.MarkApplied(env.GetSeq()) {
		n.Counters.Duplicates++
		return false
	}
	n.Counters.Applied++
	applyDurable(n, env, now)
	return true
}

// applyDurable applies a report, summary, event or gap to n. A workload
// status has been stored by applyStatuses already.
func applyDurable(n *registry.Node, env *pb.Envelope, now time.Time) {
	at := now
	if ms := env.GetSentAtMs(); ms > 0 {
		at = time.UnixMilli(ms).UTC()
	}
	switch body := env.GetBody().(type) {
	case *pb.Envelope_Report:
		// Restore what the report left out because the hello carries it.
		setReport(n, protocol.ExpandReport(body.Report, n.Statics(), env.GetSentAtMs()), at)
	case *pb.Envelope_Summary:
		s := body.Summary
		// The reports the summary replaces will never arrive.
		settle(n, s.GetCovers())
		if s.GetLast() != nil {
			end := at
			if ms := s.GetWindowEndMs(); ms > 0 {
				end = time.UnixMilli(ms).UTC()
			}
			setReport(n, protocol.ExpandReport(s.GetLast(), n.Statics(), s.GetWindowEndMs()), end)
		}
	case *pb.Envelope_Event:
		e := body.Event
		n.Counters.Events++
		addEvent(n, registry.Event{
			At:         at,
			Severity:   severity(e.GetSeverity()),
			Kind:       e.GetKind(),
			Message:    e.GetMessage(),
			Attributes: maps.Clone(e.GetAttributes()),
		})
	case *pb.Envelope_Gap:
		g := body.Gap
		n.Counters.Gaps++
		n.Counters.Dropped += g.GetDropped()
		// Nor will the messages the node dropped.
		settle(n, g.GetSeqs())
		addEvent(n, registry.Event{
			At:       at,
			Severity: "warning",
			Kind:     "skyedge.gap",
			Message:  fmt.Sprintf("node dropped %d %s messages (%s)", g.GetDropped(), g.GetClass(), g.GetReason()),
			Attributes: map[string]string{
				"class":   g.GetClass(),
				"reason":  g.GetReason(),
				"dropped": fmt.Sprint(g.GetDropped()),
			},
		})
	}
}

// settle adds sequence ranges that will never arrive to n's applied set.
func settle(n *registry.Node, rs []*pb.SeqRange) {
	for _, r := range rs {
		n.Settle(r.GetFirst(), r.GetLast())
	}
}

// setReport keeps r as the last report unless a newer one is already
// known: a backlog drained after an outage must not hide the fresh report
// that arrived first.
func setReport(n *registry.Node, r *pb.ResourceReport, at time.Time) {
	if !n.LastReportAt.IsZero() && at.Before(n.LastReportAt) {
		return
	}
	n.SetReport(r, at)
}

// addEvent appends e to n's recent events, keeping the last
// registry.MaxRecentEvents, in a new slice (records are copy-on-write).
func addEvent(n *registry.Node, e registry.Event) {
	keep := n.RecentEvents
	if len(keep) >= registry.MaxRecentEvents {
		keep = keep[len(keep)-registry.MaxRecentEvents+1:]
	}
	out := make([]registry.Event, 0, len(keep)+1)
	n.RecentEvents = append(append(out, keep...), e)
}

func severity(s pb.Event_Severity) string {
	switch s {
	case pb.Event_SEVERITY_INFO:
		return "info"
	case pb.Event_SEVERITY_WARNING:
		return "warning"
	case pb.Event_SEVERITY_ALARM:
		return "alarm"
	}
	return "unspecified"
}
