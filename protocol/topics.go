package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Topic layout of the cloud link:
//
//	skyedge/v1/n/{node}/up/{stream}     agent -> cloud
//	skyedge/v1/n/{node}/down/{stream}   cloud -> agent
//
// Five slashes, leaving two spare levels under AWS IoT Core's seven; no
// leading '$', which brokers reserve for their own topics.
const (
	TopicPrefix = "skyedge/v1/n/"
	DirUp       = "up"
	DirDown     = "down"
)

// Streams from agent to cloud.
const (
	StreamHello   = "hello"   // Hello, on every connect
	StreamReport  = "report"  // ResourceReport, TelemetrySummary
	StreamEvent   = "event"   // Event, Gap, WorkloadStatus
	StreamBatch   = "batch"   // Batch of durable envelopes (backlog drain)
	StreamBye     = "bye"     // Goodbye: clean shutdown or last will
	StreamDesired = "desired" // DesiredAck (up), DesiredState (down)
	StreamLogs    = "logs"    // LogsResponse (up), LogsRequest (down)
)

// Streams from cloud to agent.
const (
	StreamAck = "ack" // Ack, Welcome
	// StreamDesired and StreamLogs go both ways.
)

// UpStreams lists the streams an agent publishes on.
var UpStreams = []string{StreamHello, StreamReport, StreamEvent, StreamBatch, StreamBye, StreamDesired, StreamLogs}

var upStreams = map[string]bool{
	StreamHello: true, StreamReport: true, StreamEvent: true, StreamBatch: true, StreamBye: true,
	StreamDesired: true, StreamLogs: true,
}

var downStreams = map[string]bool{StreamAck: true, StreamDesired: true, StreamLogs: true}

// ErrBadTopic is wrapped by ParseTopic's errors.
var ErrBadTopic = errors.New("topic outside the SkyEdge layout")

// Topic is a parsed SkyEdge topic.
type Topic struct {
	Node   string
	Dir    string // DirUp or DirDown
	Stream string
}

// String returns the topic name.
func (t Topic) String() string { return TopicPrefix + t.Node + "/" + t.Dir + "/" + t.Stream }

// UpTopic is the topic a node publishes stream on.
func UpTopic(node, stream string) string { return Topic{node, DirUp, stream}.String() }

// DownTopic is the topic the cloud publishes stream to a node on.
func DownTopic(node, stream string) string { return Topic{node, DirDown, stream}.String() }

// UpFilter matches everything a node may publish.
func UpFilter(node string) string { return TopicPrefix + node + "/" + DirUp + "/#" }

// DownFilter matches everything the cloud sends to a node; it is the only
// filter a node may subscribe to.
func DownFilter(node string) string { return TopicPrefix + node + "/" + DirDown + "/#" }

// AllUpFilter matches every node's up topics.
const AllUpFilter = TopicPrefix + "+/" + DirUp + "/#"

// SharedUpFilter is AllUpFilter as a shared subscription of group, so that
// several bridges split a fleet's traffic between them.
func SharedUpFilter(group string) string { return "$share/" + group + "/" + AllUpFilter }

// ParseTopic parses and checks a topic name (not a filter): the layout, the
// node ID, and that the stream is one this protocol version defines for
// its direction.
func ParseTopic(name string) (Topic, error) {
	if len(name) > MaxTopicLength {
		return Topic{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadTopic, len(name), MaxTopicLength)
	}
	rest, ok := strings.CutPrefix(name, TopicPrefix)
	if !ok {
		return Topic{}, fmt.Errorf("%w: %q does not start with %q", ErrBadTopic, name, TopicPrefix)
	}
	// strings.Cut, not Split: this runs for every message the cloud
	// receives, and must not allocate.
	node, rest, ok1 := strings.Cut(rest, "/")
	dir, stream, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || strings.IndexByte(stream, '/') >= 0 {
		return Topic{}, fmt.Errorf("%w: %q: want %s{node}/{up|down}/{stream}", ErrBadTopic, name, TopicPrefix)
	}
	t := Topic{Node: node, Dir: dir, Stream: stream}
	if err := ValidateNodeID(t.Node); err != nil {
		return Topic{}, fmt.Errorf("%w: %w", ErrBadTopic, err)
	}
	switch {
	case t.Dir == DirUp && upStreams[t.Stream], t.Dir == DirDown && downStreams[t.Stream]:
		return t, nil
	case t.Dir != DirUp && t.Dir != DirDown:
		return Topic{}, fmt.Errorf("%w: %q: direction %q, want up or down", ErrBadTopic, name, t.Dir)
	default:
		return Topic{}, fmt.Errorf("%w: %q: unknown %s stream %q", ErrBadTopic, name, t.Dir, t.Stream)
	}
}

// CheckTopicLimits reports whether name fits the limits every supported
// broker accepts.
func CheckTopicLimits(name string) error {
	if name == "" || len(name) > MaxTopicLength {
		return fmt.Errorf("topic %q: length %d, want 1..%d", name, len(name), MaxTopicLength)
	}
	if n := strings.Count(name, "/"); n > MaxTopicSlashes {
		return fmt.Errorf("topic %q: %d slashes, limit %d", name, n, MaxTopicSlashes)
	}
	if strings.HasPrefix(name, "$") {
		return fmt.Errorf("topic %q: names starting with '$' are reserved for brokers", name)
	}
	return nil
}
