package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestTopicsFitBrokerLimits(t *testing.T) {
	longest := strings.Repeat("n", MaxNodeIDLength)
	for _, name := range []string{
		UpTopic(longest, StreamReport), DownTopic(longest, StreamAck),
		UpTopic("truck-042", StreamBatch), UpFilter(longest), DownFilter(longest), AllUpFilter,
	} {
		if err := CheckTopicLimits(name); err != nil {
			t.Errorf("CheckTopicLimits(%q) = %v, want nil", name, err)
		}
	}
	if got := strings.Count(SharedUpFilter("skyedge-bridge"), "/"); got > MaxTopicSlashes+2 {
		t.Errorf("shared filter has %d slashes", got)
	}
}

func TestCheckTopicLimits(t *testing.T) {
	for _, tc := range []struct {
		name, topic string
		ok          bool
	}{
		{"plain", "skyedge/v1/n/a/up/report", true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxTopicLength+1), false},
		{"eight slashes", "a/b/c/d/e/f/g/h/i", false},
		{"seven slashes", "a/b/c/d/e/f/g/h", true},
		{"dollar", "$aws/things/x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTopicLimits(tc.topic)
			if (err == nil) != tc.ok {
				t.Errorf("CheckTopicLimits(%q) = %v, want ok=%v", tc.topic, err, tc.ok)
			}
		})
	}
}

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		topic string
		want  Topic
		err   string
	}{
		{"up report", "skyedge/v1/n/truck-042/up/report", Topic{"truck-042", DirUp, StreamReport}, ""},
		{"down ack", "skyedge/v1/n/sat-1/down/ack", Topic{"sat-1", DirDown, StreamAck}, ""},
		{"round trip", UpTopic("f.7", StreamHello), Topic{"f.7", DirUp, StreamHello}, ""},
		{"other prefix", "skyedge/v2/n/a/up/report", Topic{}, "does not start"},
		{"missing stream", "skyedge/v1/n/a/up", Topic{}, "want skyedge"},
		{"extra level", "skyedge/v1/n/a/up/report/x", Topic{}, "want skyedge"},
		{"wildcard node", "skyedge/v1/n/+/up/report", Topic{}, "invalid node ID"},
		{"empty node", "skyedge/v1/n//up/report", Topic{}, "invalid node ID"},
		{"bad direction", "skyedge/v1/n/a/sideways/report", Topic{}, "direction"},
		{"unknown up stream", "skyedge/v1/n/a/up/ack", Topic{}, "unknown up stream"},
		{"unknown down stream", "skyedge/v1/n/a/down/report", Topic{}, "unknown down stream"},
		{"too long", TopicPrefix + strings.Repeat("a", 300), Topic{}, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTopic(tc.topic)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadTopic) {
					t.Fatalf("ParseTopic(%q) = %v, %v; want error containing %q", tc.topic, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseTopic(%q) = %v, %v; want %v", tc.topic, got, err, tc.want)
			}
			if got.String() != tc.topic {
				t.Errorf("String() = %q, want %q", got.String(), tc.topic)
			}
		})
	}
}

func TestValidateNodeID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"truck-042", true}, {"a", true}, {"sat_1.eu", true}, {strings.Repeat("x", MaxNodeIDLength), true},
		{"", false}, {strings.Repeat("x", MaxNodeIDLength+1), false}, {"Truck", false}, {"-a", false},
		{"a-", false}, {"a/b", false}, {"a+b", false}, {"a#", false}, {"$sys", false}, {"a b", false},
		{"é", false},
	} {
		if err := ValidateNodeID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateNodeID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
	if err := ValidateNodeID("Truck"); err == nil || !strings.Contains(err.Error(), `"truck"`) {
		t.Errorf("ValidateNodeID(Truck) = %v, want a hint naming the lower-case form", err)
	}
}

func BenchmarkParseTopic(b *testing.B) {
	topic := UpTopic("truck-042", StreamReport)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTopic(topic); err != nil {
			b.Fatal(err)
		}
	}
}
