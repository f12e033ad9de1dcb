package protocol

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func report(node string, seq uint64) *pb.Envelope {
	return &pb.Envelope{
		NodeId: node, BootEpoch: 3, Seq: seq, SentAtMs: 1_790_000_000_000, Capability: CapabilityVersion,
		Body: &pb.Envelope_Report{Report: &pb.ResourceReport{CpuCores: 4, CpuPermille: 123, MemTotalKib: 4 << 20}},
	}
}

func mustMarshal(t *testing.T, env *pb.Envelope) []byte {
	t.Helper()
	b, err := Marshal(env)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

func TestDecodeFrom(t *testing.T) {
	good := mustMarshal(t, report("truck-042", 7))
	batch := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_Batch{Batch: &pb.Batch{
		Envelopes: []*pb.Envelope{report("truck-042", 1), report("truck-042", 2)}}}})
	nested := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_Batch{Batch: &pb.Batch{
		Envelopes: []*pb.Envelope{{NodeId: "truck-042", Body: &pb.Envelope_Batch{Batch: &pb.Batch{}}}}}}})
	spoofBatch := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_Batch{Batch: &pb.Batch{
		Envelopes: []*pb.Envelope{report("sat-1", 1)}}}})
	noBody, _ := proto.Marshal(&pb.Envelope{NodeId: "truck-042"})
	manyLabels := map[string]string{}
	for i := range MaxLabels + 1 {
		manyLabels[strings.Repeat("k", i+1)] = "v"
	}
	labels, _ := proto.Marshal(&pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_Hello{Hello: &pb.Hello{Labels: manyLabels}}})
	desired := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_Desired{Desired: &pb.DesiredState{
		Generation: 2, Assignments: []*pb.WorkloadAssignment{{Name: "hello-exec", Generation: 2, SpecJson: []byte(`{"runtime":"exec"}`)}}}}})
	desiredAck := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_DesiredAck{DesiredAck: &pb.DesiredAck{Generation: 2}}})
	status := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Seq: 9, Body: &pb.Envelope_Status{Status: &pb.WorkloadStatus{
		Name: "hello-exec", State: pb.WorkloadStatus_STATE_RUNNING}}})
	logsReq := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_LogsRequest{LogsRequest: &pb.LogsRequest{RequestId: "r1", Workload: "hello-exec"}}})
	logsResp := mustMarshal(t, &pb.Envelope{NodeId: "truck-042", Body: &pb.Envelope_LogsResponse{LogsResponse: &pb.LogsResponse{RequestId: "r1", Lines: []string{"hi"}}}})

	for _, tc := range []struct {
		name    string
		topic   string
		payload []byte
		reason  Reason // "" means accepted
	}{
		{"report", UpTopic("truck-042", StreamReport), good, ""},
		{"batch", UpTopic("truck-042", StreamBatch), batch, ""},
		{"oversized", UpTopic("truck-042", StreamReport), make([]byte, MaxPayload+1), ReasonOversized},
		{"garbage", UpTopic("truck-042", StreamReport), []byte{0xff, 0xff, 0xff}, ReasonMalformed},
		{"bad topic", "skyedge/v1/n/truck-042/up/nope", good, ReasonBadTopic},
		{"node mismatch", UpTopic("sat-1", StreamReport), good, ReasonSpoofed},
		{"wrong stream", UpTopic("truck-042", StreamEvent), good, ReasonWrongBody},
		{"nested batch", UpTopic("truck-042", StreamBatch), nested, ReasonInvalid},
		{"spoofed inside batch", UpTopic("truck-042", StreamBatch), spoofBatch, ReasonSpoofed},
		{"no body", UpTopic("truck-042", StreamReport), noBody, ReasonInvalid},
		{"too many labels", UpTopic("truck-042", StreamHello), labels, ReasonInvalid},
		{"desired state down", DownTopic("truck-042", StreamDesired), desired, ""},
		{"desired state up", UpTopic("truck-042", StreamDesired), desired, ReasonWrongBody},
		{"desired ack up", UpTopic("truck-042", StreamDesired), desiredAck, ""},
		{"desired ack down", DownTopic("truck-042", StreamDesired), desiredAck, ReasonWrongBody},
		{"workload status", UpTopic("truck-042", StreamEvent), status, ""},
		{"logs request down", DownTopic("truck-042", StreamLogs), logsReq, ""},
		{"logs request up", UpTopic("truck-042", StreamLogs), logsReq, ReasonWrongBody},
		{"logs response up", UpTopic("truck-042", StreamLogs), logsResp, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, env, err := DecodeFrom(tc.topic, tc.payload)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("DecodeFrom(%s) = %v, want accepted", tc.name, err)
				}
				if env.GetNodeId() != "truck-042" {
					t.Errorf("node = %q", env.GetNodeId())
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeFrom(%s) accepted, want %s", tc.name, tc.reason)
			}
			if got := ReasonOf(err); got != tc.reason {
				t.Errorf("DecodeFrom(%s) reason = %s (%v), want %s", tc.name, got, err, tc.reason)
			}
		})
	}
}

func TestMarshalRefusesOversized(t *testing.T) {
	env := &pb.Envelope{NodeId: "a", Body: &pb.Envelope_Event{Event: &pb.Event{Message: strings.Repeat("x", MaxPayload)}}}
	if _, err := Marshal(env); ReasonOf(err) != ReasonOversized {
		t.Fatalf("Marshal(oversized) = %v, want %s", err, ReasonOversized)
	}
}

func TestStreamOfEveryBody(t *testing.T) {
	// Every oneof member must map to a stream, or it could never be sent.
	oneofs := (&pb.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	for i := range oneofs.Len() {
		f := oneofs.Get(i)
		env := &pb.Envelope{}
		env.ProtoReflect().Set(f, env.ProtoReflect().NewField(f))
		if StreamOf(env) == "" || BodyName(env) == "none" {
			t.Errorf("body %s has no stream or name", f.Name())
		}
	}
}

// FuzzDecodeFrom checks that no payload or topic makes the decoder panic,
// and that whatever it accepts re-encodes and decodes to the same message.
func FuzzDecodeFrom(f *testing.F) {
	for _, env := range []*pb.Envelope{
		report("truck-042", 1),
		{NodeId: "truck-042", Body: &pb.Envelope_Hello{Hello: &pb.Hello{Labels: map[string]string{"a": "b"}}}},
		{NodeId: "truck-042", Body: &pb.Envelope_Desired{Desired: &pb.DesiredState{Generation: 3, BaseGeneration: 1,
			Assignments: []*pb.WorkloadAssignment{{Name: "w", Generation: 3, SpecJson: []byte(`{}`)}}, Removed: []string{"old"}}}},
		{NodeId: "truck-042", Seq: 4, Body: &pb.Envelope_Status{Status: &pb.WorkloadStatus{Name: "w", State: pb.WorkloadStatus_STATE_EXITED, ExitCode: proto.Int32(-1)}}},
		{NodeId: "truck-042", Body: &pb.Envelope_LogsResponse{LogsResponse: &pb.LogsResponse{RequestId: "r", Lines: []string{"a", "b"}}}},
	} {
		b, _ := Marshal(env)
		f.Add(Topic{Node: "truck-042", Dir: DirOf(env), Stream: StreamOf(env)}.String(), b)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		_, env, err := DecodeFrom(topic, payload)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		// The fast decoder agrees with the reference one.
		ref := new(pb.Envelope)
		if err := proto.Unmarshal(payload, ref); err != nil {
			t.Fatalf("Decode accepted what proto.Unmarshal refuses: %v", err)
		}
		if !proto.Equal(env, ref) {
			t.Fatalf("Decode = %v, proto.Unmarshal = %v", env, ref)
		}
		b, err := Marshal(env)
		if err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
		again, err := Decode(b)
		if err != nil || !proto.Equal(env, again) {
			t.Fatalf("round trip changed the envelope: %v", err)
		}
	})
}

// TestDecodeRefusesInvalidUTF8 checks proto3's UTF-8 rule on the fast
// decoding path, for a report (checked by hand) and a hello (checked by
// reflection). proto.Marshal refuses such strings, so the payloads are
// built field by field.
func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	str := func(b []byte, num protowire.Number, v string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	msg := func(b []byte, num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
	}
	envelope := func(field protowire.Number, body []byte) []byte {
		return msg(str(nil, 1, "truck-042"), field, body)
	}
	report := msg(nil, 10, str(nil, 1, "/d\xffata"))
	hello := msg(nil, 10, str(str(nil, 1, "zone"), 2, "eu\xfe"))
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"report disk mount", envelope(11, report)},
		{"hello label value", envelope(10, hello)},
		{"report in a batch", envelope(14, msg(nil, 1, envelope(11, report)))},
	} {
		if _, err := Decode(tc.payload); ReasonOf(err) != ReasonMalformed {
			t.Errorf("Decode(%s) = %v, want %s", tc.name, err, ReasonMalformed)
		}
		if err := proto.Unmarshal(tc.payload, new(pb.Envelope)); err == nil {
			t.Errorf("proto.Unmarshal(%s) accepted it: the test payload is wrong", tc.name)
		}
	}
	// The same shapes with valid strings decode.
	if _, err := Decode(envelope(11, msg(nil, 10, str(nil, 1, "/data")))); err != nil {
		t.Fatalf("Decode(valid) = %v", err)
	}
}
