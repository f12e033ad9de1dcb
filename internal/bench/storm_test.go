package bench

import (
	"context"
	"testing"
	"time"
)

func TestStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bridge and agents behind fault proxies")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const agents = 20
	res, err := Storm(ctx, testEnv(t), StormConfig{Agents: agents, Outage: 3 * time.Second, Interval: 200 * time.Millisecond, Settle: time.Minute, UpFor: time.Second})
	if err != nil {
		t.Fatalf("Storm: %v", err)
	}
	t.Logf("%+v", res)
	checkKeys(t, res, []string{"scenario", "agents", "reconnect_s", "drain_s", "buffered", "lost", "duplicates"})
	if res.ReconnectS <= 0 || res.DrainS < res.ReconnectS {
		t.Errorf("reconnect %vs, drain %vs: want 0 < reconnect <= drain", res.ReconnectS, res.DrainS)
	}
	if res.Online != agents {
		t.Errorf("%d nodes online at the end, want %d", res.Online, agents)
	}
	// 20 agents at 5 reports/s for a 3 s outage: about 300 reports were
	// made offline; each was either kept or dropped.
	if res.Offline < 200 || res.Buffered+res.Dropped == 0 {
		t.Errorf("%d reports made offline, %d buffered, %d dropped: want about 300 made, each kept or dropped", res.Offline, res.Buffered, res.Dropped)
	}
	// The books balance: everything produced was applied, lost or
	// applied twice (nothing is still held once production has stopped
	// for a while), and the bridge's own count agrees.
	if res.Held != 0 {
		t.Errorf("agents still hold %d reports at the end, want 0", res.Held)
	}
	if res.Produced+res.Duplicates != res.Applied+res.Lost {
		t.Errorf("produced %d + duplicates %d != applied %d + lost %d", res.Produced, res.Duplicates, res.Applied, res.Lost)
	}
	if res.AppliedGlobal != res.Applied {
		t.Errorf("applied %d per node, %d by the bridge's metrics: want equal", res.Applied, res.AppliedGlobal)
	}
	// A report the agent did not drop is not lost.
	if res.Lost > res.Dropped {
		t.Errorf("%d reports lost but the agents dropped only %d", res.Lost, res.Dropped)
	}
}
