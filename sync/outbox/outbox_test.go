package outbox

import (
	"testing"
	"time"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestClassOf(t *testing.T) {
	tests := []struct {
		name   string
		env    *pb.Envelope
		want   Class
		wantOK bool
	}{
		{"gap", &pb.Envelope{Body: &pb.Envelope_Gap{Gap: &pb.Gap{}}}, Control, true},
		{"alarm", &pb.Envelope{Body: &pb.Envelope_Event{Event: &pb.Event{Severity: pb.Event_SEVERITY_ALARM}}}, Control, true},
		{"warning", &pb.Envelope{Body: &pb.Envelope_Event{Event: &pb.Event{Severity: pb.Event_SEVERITY_WARNING}}}, Event, true},
		{"report", &pb.Envelope{Body: &pb.Envelope_Report{Report: &pb.ResourceReport{}}}, Telemetry, true},
		{"summary", &pb.Envelope{Body: &pb.Envelope_Summary{Summary: &pb.TelemetrySummary{}}}, Telemetry, true},
		{"hello", &pb.Envelope{Body: &pb.Envelope_Hello{Hello: &pb.Hello{}}}, 0, false},
		{"ack", &pb.Envelope{Body: &pb.Envelope_Ack{Ack: &pb.Ack{}}}, 0, false},
		{"batch", &pb.Envelope{Body: &pb.Envelope_Batch{Batch: &pb.Batch{}}}, 0, false},
		{"none", &pb.Envelope{}, 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ClassOf(tt.env)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ClassOf(%v) = %v, %v; want %v, %v", tt.env, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCursorAdvance(t *testing.T) {
	c := Cursor{}.Advance(Item{Seq: 5, Class: Event}).Advance(Item{Seq: 3, Class: Event}).Advance(Item{Seq: 9, Class: Telemetry})
	if want := (Cursor{After: [NumClasses]uint64{Event: 5, Telemetry: 9}}); c != want {
		t.Errorf("Advance() = %v, want %v", c, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"bad node", func(c *Config) { c.NodeID = "Node 1" }, false},
		{"zero quota", func(c *Config) { c.Policies[Event].Quota = 0 }, false},
		{"negative ttl", func(c *Config) { c.Policies[Control].TTL = -time.Second }, false},
		{"compact events", func(c *Config) { c.Policies[Event].WhenFull = Compact }, false},
		{"unknown policy", func(c *Config) { c.Policies[Event].WhenFull = 9 }, false},
		{"drop oldest control", func(c *Config) { c.Policies[Control].WhenFull = DropOldest }, true},
		{"compaction without tiers", func(c *Config) { c.Tiers = nil }, false},
		{"no tiers when dropping", func(c *Config) { c.Tiers = nil; c.Policies[Telemetry].WhenFull = DropOldest }, true},
		{"sub-second window", func(c *Config) { c.Tiers[0].Window = 500 * time.Millisecond }, false},
		{"min age below window", func(c *Config) { c.Tiers[0].MinAge = time.Second }, false},
		{"windows not multiples", func(c *Config) { c.Tiers[1].Window = 90 * time.Second }, false},
		{"windows shrinking", func(c *Config) { c.Tiers[2].Window = time.Minute }, false},
		{"no sync interval", func(c *Config) { c.SyncInterval = 0 }, false},
		{"no gap ranges", func(c *Config) { c.MaxGapRanges = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.NodeID = "node-1"
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Control.String(), "control"}, {Event.String(), "event"}, {Telemetry.String(), "telemetry"}, {Class(7).String(), "unknown"},
		{Refuse.String(), "refuse"}, {DropOldest.String(), "drop-oldest"}, {Compact.String(), "compact"},
		{PressureNone.String(), "none"}, {PressureSoft.String(), "soft"}, {PressureHard.String(), "hard"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}
