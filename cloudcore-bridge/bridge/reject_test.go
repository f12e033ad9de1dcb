package bridge

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestBadPayloadsAreCountedAndTheNodeCarriesOn(t *testing.T) {
	p := newPKI(t)
	b := start(t, embeddedConfig(t, p))
	broker := "tls://" + b.MQTTAddr()
	node := connect(t, broker, "rover-1", p.clientTLS(t, "rover-1"))
	bystander := connect(t, broker, "rover-2", p.clientTLS(t, "rover-2"))
	node.send(t, hello("rover-1", nil))
	bystander.send(t, hello("rover-2", nil))

	topic := protocol.UpTopic("rover-1", protocol.StreamReport)
	malformed := []byte{0x0a, 0xff, 0xff, 0xff, 0xff} // a field longer than the message
	oversized, err := proto.Marshal(&pb.Envelope{NodeId: "rover-1",
		Body: &pb.Envelope_Event{Event: &pb.Event{Message: string(make([]byte, protocol.MaxPayload))}}})
	if err != nil {
		t.Fatal(err)
	}
	// A rejected message gets no PUBACK, so these are not waited for.
	for range 3 {
		node.publish(t, topic, malformed, false)
		node.publish(t, protocol.UpTopic("rover-1", protocol.StreamEvent), oversized, false)
	}
	// The same connection's next valid report is applied, and so is
	// everyone else's.
	node.send(t, report("rover-1", 321))
	bystander.send(t, report("rover-2", 123))

	for _, tt := range []struct {
		reason string
		want   float64
	}{{"malformed", 3}, {"oversized", 3}} {
		series := fmt.Sprintf("skyedge_bridge_rejected_total{reason=%q}", tt.reason)
		eventually(t, 5*time.Second, func() string {
			if got := metric(t, b, series); got != tt.want {
				return fmt.Sprintf("%s = %v, want %v", series, got, tt.want)
			}
			return ""
		})
		if got := b.logs.count("rejected message from node", "node=rover-1", "reason="+tt.reason); got != 1 {
			t.Errorf("log lines for rover-1 %s = %d, want 1", tt.reason, got)
		}
	}
	for id, cpu := range map[string]uint32{"rover-1": 321, "rover-2": 123} {
		n, _ := getNode(t, b, id)
		if !n.Online || n.LastReport == nil || n.LastReport.CPUPermille != cpu {
			t.Errorf("%s after rover-1's bad payloads: online %v report %+v, want online with cpu %d", id, n.Online, n.LastReport, cpu)
		}
	}
	if n, _ := getNode(t, b, "rover-1"); n.Counters.Rejects != 6 || n.Counters.Messages != 2 {
		t.Errorf("rover-1 counters = %+v, want 6 rejects and 2 messages", n.Counters)
	}
}
