package protocol

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// Reason classifies why a message was rejected. Reasons are stable strings
// used as metric labels and log keys.
type Reason string

// Rejection reasons.
const (
	ReasonOversized Reason = "oversized"  // payload over MaxPayload
	ReasonMalformed Reason = "malformed"  // not a valid protobuf Envelope
	ReasonInvalid   Reason = "invalid"    // decodes, but breaks a rule
	ReasonBadTopic  Reason = "bad_topic"  // topic outside the layout
	ReasonSpoofed   Reason = "spoofed"    // identity mismatch
	ReasonWrongBody Reason = "wrong_body" // body not allowed on the stream
)

// Error is a rejected message: a Reason for counting and an error for the
// log.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the rejection reason of err, or ReasonInvalid when err
// is not an *Error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonInvalid
}

func reject(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}

// Marshal encodes env deterministically and checks the result against
// MaxPayload.
func Marshal(env *pb.Envelope) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("marshal envelope: %w", err)
	}
	if len(b) > MaxPayload {
		return nil, reject(ReasonOversized, "envelope of %d bytes over the %d-byte limit", len(b), MaxPayload)
	}
	return b, nil
}

// Decode parses and validates one envelope payload.
func Decode(payload []byte) (*pb.Envelope, error) {
	if len(payload) > MaxPayload {
		return nil, reject(ReasonOversized, "payload of %d bytes over the %d-byte limit", len(payload), MaxPayload)
	}
	env := new(pb.Envelope)
	// The generated fast path (vtprotobuf): the same wire rules as
	// proto.Unmarshal, UTF-8 checks included, at a fraction of the cost and
	// allocations; it is on every message the cloud receives.
	if err := env.UnmarshalVT(payload); err != nil {
		return nil, reject(ReasonMalformed, "decode envelope: %w", err)
	}
	if !validUTF8(env) {
		return nil, reject(ReasonMalformed, "decode envelope: a string field is not valid UTF-8")
	}
	if err := Validate(env); err != nil {
		return nil, err
	}
	return env, nil
}

// DecodeFrom decodes a payload received on topic and checks that it may be
// there: the topic is in the layout, the envelope's node is the topic's
// node, and the body belongs on the stream. It does not check who sent it;
// the caller compares Topic.Node with the sender's authenticated identity.
func DecodeFrom(topic string, payload []byte) (Topic, *pb.Envelope, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return Topic{}, nil, &Error{Reason: ReasonBadTopic, Err: err}
	}
	env, err := DecodeOn(t, payload)
	return t, env, err
}

// DecodeOn is DecodeFrom for a topic the caller has already parsed.
func DecodeOn(t Topic, payload []byte) (*pb.Envelope, error) {
	env, err := Decode(payload)
	if err != nil {
		return nil, err
	}
	if env.GetNodeId() != t.Node {
		return nil, reject(ReasonSpoofed, "envelope node %q on topic of node %q", env.GetNodeId(), t.Node)
	}
	if want := StreamOf(env); want != t.Stream {
		return nil, reject(ReasonWrongBody, "%s body on stream %q, want %q", BodyName(env), t.Stream, want)
	}
	if want := DirOf(env); want != t.Dir {
		return nil, reject(ReasonWrongBody, "%s body on a %s topic, want %s", BodyName(env), t.Dir, want)
	}
	return env, nil
}

// DirOf is the direction an envelope's body travels in: DirDown for what
// the cloud sends (ack, welcome, desired state, logs request), DirUp for
// everything else.
func DirOf(env *pb.Envelope) string {
	switch env.GetBody().(type) {
	case *pb.Envelope_Ack, *pb.Envelope_Welcome, *pb.Envelope_Desired, *pb.Envelope_LogsRequest:
		return DirDown
	}
	return DirUp
}

// Validate checks the rules the type system cannot: identity, a body, no
// nested batches, bounded batches and labels, and the same node in every
// envelope of a batch.
func Validate(env *pb.Envelope) error {
	if err := ValidateNodeID(env.GetNodeId()); err != nil {
		return &Error{Reason: ReasonInvalid, Err: err}
	}
	switch b := env.GetBody().(type) {
	case nil:
		return reject(ReasonInvalid, "envelope from %q has no body", env.GetNodeId())
	case *pb.Envelope_Hello:
		if n := len(b.Hello.GetLabels()); n > MaxLabels {
			return reject(ReasonInvalid, "hello from %q has %d labels, limit %d", env.GetNodeId(), n, MaxLabels)
		}
		for k, v := range b.Hello.GetLabels() {
			if k == "" || len(k) > MaxLabelLength || len(v) > MaxLabelLength {
				return reject(ReasonInvalid, "hello from %q: label %q: key must be 1..%d bytes and value at most %d", env.GetNodeId(), k, MaxLabelLength, MaxLabelLength)
			}
		}
	case *pb.Envelope_Batch:
		envs := b.Batch.GetEnvelopes()
		if len(envs) == 0 || len(envs) > MaxBatchEnvelopes {
			return reject(ReasonInvalid, "batch from %q has %d envelopes, want 1..%d", env.GetNodeId(), len(envs), MaxBatchEnvelopes)
		}
		for i, e := range envs {
			if _, nested := e.GetBody().(*pb.Envelope_Batch); nested {
				return reject(ReasonInvalid, "batch from %q: envelope %d is a nested batch", env.GetNodeId(), i)
			}
			if e.GetNodeId() != env.GetNodeId() {
				return reject(ReasonSpoofed, "batch from %q: envelope %d claims node %q", env.GetNodeId(), i, e.GetNodeId())
			}
			if err := Validate(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// StreamOf is the stream an envelope's body travels on.
func StreamOf(env *pb.Envelope) string {
	switch env.GetBody().(type) {
	case *pb.Envelope_Hello:
		return StreamHello
	case *pb.Envelope_Report, *pb.Envelope_Summary:
		return StreamReport
	case *pb.Envelope_Event, *pb.Envelope_Gap, *pb.Envelope_Status:
		return StreamEvent
	case *pb.Envelope_Batch:
		return StreamBatch
	case *pb.Envelope_Goodbye:
		return StreamBye
	case *pb.Envelope_Ack, *pb.Envelope_Welcome:
		return StreamAck
	case *pb.Envelope_Desired, *pb.Envelope_DesiredAck:
		return StreamDesired
	case *pb.Envelope_LogsRequest, *pb.Envelope_LogsResponse:
		return StreamLogs
	}
	return ""
}

// BodyName names an envelope's body type for logs and metrics.
func BodyName(env *pb.Envelope) string {
	switch env.GetBody().(type) {
	case *pb.Envelope_Hello:
		return "hello"
	case *pb.Envelope_Report:
		return "report"
	case *pb.Envelope_Summary:
		return "summary"
	case *pb.Envelope_Event:
		return "event"
	case *pb.Envelope_Gap:
		return "gap"
	case *pb.Envelope_Batch:
		return "batch"
	case *pb.Envelope_Goodbye:
		return "goodbye"
	case *pb.Envelope_Ack:
		return "ack"
	case *pb.Envelope_Welcome:
		return "welcome"
	case *pb.Envelope_Desired:
		return "desired"
	case *pb.Envelope_DesiredAck:
		return "desired_ack"
	case *pb.Envelope_Status:
		return "status"
	case *pb.Envelope_LogsRequest:
		return "logs_request"
	case *pb.Envelope_LogsResponse:
		return "logs_response"
	}
	return "none"
}
