package agent

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/skyedge/skyedge/sync/drain"
	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/badgerq"
)

// OutboxFileConfig is the file's outbox section: what the agent keeps
// while the cloud is unreachable, and how fast it sends the backlog when
// the cloud is back.
//
//	outbox:
//	  control:   {quota: 4Mi,  ttl: 168h}  # alarms and gap markers; refused when full
//	  event:     {quota: 16Mi, ttl: 168h}  # other events; refused when full
//	  telemetry: {quota: 32Mi, ttl: 72h}   # reports; compacted into summaries, then oldest dropped
//	  maxDisk: 256Mi                       # the database's cap on disk
//	  drainProfile: aws-iot-core           # or unlimited
//
// Every field is optional; the values above are the defaults. A ttl of 0
// keeps messages until the cloud acknowledges them or the quota pushes
// them out.
type OutboxFileConfig struct {
	Control   ClassFileConfig `yaml:"control"`
	Event     ClassFileConfig `yaml:"event"`
	Telemetry ClassFileConfig `yaml:"telemetry"`
	MaxDisk   Size            `yaml:"maxDisk"`
	// DrainProfile paces the backlog drain: aws-iot-core (100 messages
	// and 512 KiB a second, which every broker accepts) or unlimited (for
	// a broker under the operator's control).
	DrainProfile string `yaml:"drainProfile"`
}

// ClassFileConfig is one outbox class's quota and maximum age.
type ClassFileConfig struct {
	Quota Size          `yaml:"quota"`
	TTL   time.Duration `yaml:"ttl"`
}

// Bounds of the outbox section.
const (
	// MinOutboxQuota is the smallest class quota: room for an alarm and
	// the gap markers that account for what a class drops.
	MinOutboxQuota = 64 * KiB
	// MinOutboxMaxDisk is the smallest database cap: Badger's working set
	// (memtables, a value-log file, a few tables) needs tens of MiB.
	MinOutboxMaxDisk = 64 * MiB
	// MinOutboxTTL is the shortest TTL other than 0; expiry runs once a
	// minute.
	MinOutboxTTL = time.Minute
)

// drainProfiles are the profiles drainProfile may name.
var drainProfiles = map[string]drain.Profile{
	drain.AWSIoTCore.Name: drain.AWSIoTCore,
	drain.Unlimited.Name:  drain.Unlimited,
}

// DrainProfileNames lists the names drainProfile accepts.
func DrainProfileNames() []string {
	names := make([]string, 0, len(drainProfiles))
	for n := range drainProfiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// defaultOutboxFileConfig is the outbox section's defaults, taken from
// the outbox's, the Badger queue's and the drainer's.
func defaultOutboxFileConfig() OutboxFileConfig {
	oc := outbox.DefaultConfig()
	class := func(c outbox.Class) ClassFileConfig {
		return ClassFileConfig{Quota: Size(oc.Policies[c].Quota), TTL: oc.Policies[c].TTL}
	}
	return OutboxFileConfig{
		Control:      class(outbox.Control),
		Event:        class(outbox.Event),
		Telemetry:    class(outbox.Telemetry),
		MaxDisk:      Size(badgerq.DefaultOptions("").MaxDiskBytes),
		DrainProfile: drain.DefaultConfig().Profile.Name,
	}
}

func (o *OutboxFileConfig) classes() [outbox.NumClasses]ClassFileConfig {
	return [outbox.NumClasses]ClassFileConfig{outbox.Control: o.Control, outbox.Event: o.Event, outbox.Telemetry: o.Telemetry}
}

func (o *OutboxFileConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var total Size
	for c, cc := range o.classes() {
		name := "outbox." + outbox.Class(c).String()
		if cc.Quota < MinOutboxQuota {
			add("%s.quota %s: must be at least %s", name, cc.Quota, MinOutboxQuota)
		}
		if cc.TTL < 0 || cc.TTL > 0 && cc.TTL < MinOutboxTTL {
			add("%s.ttl %s: must be 0 (keep until acknowledged) or at least %s", name, cc.TTL, MinOutboxTTL)
		}
		total += cc.Quota
	}
	switch {
	case o.MaxDisk < MinOutboxMaxDisk:
		add("outbox.maxDisk %s: must be at least %s", o.MaxDisk, MinOutboxMaxDisk)
	case total > o.MaxDisk/2:
		// Quotas count messages; Badger needs as much again for its own
		// files and for deletes until it compacts them.
		add("outbox quotas total %s: must be at most half of outbox.maxDisk %s (raise maxDisk to %s or lower the quotas)",
			total, o.MaxDisk, 2*total)
	}
	if _, ok := drainProfiles[o.DrainProfile]; !ok {
		add("outbox.drainProfile %q: must be %s", o.DrainProfile, strings.Join(DrainProfileNames(), " or "))
	}
	return errs
}

// apply writes the section into cfg; o must be valid.
func (o *OutboxFileConfig) apply(cfg *Config) {
	for c, cc := range o.classes() {
		cfg.Outbox.Policies[c].Quota = int64(cc.Quota)
		cfg.Outbox.Policies[c].TTL = cc.TTL
	}
	cfg.OutboxStorage.MaxDiskBytes = int64(o.MaxDisk)
	cfg.Drain.Profile = drainProfiles[o.DrainProfile]
}
