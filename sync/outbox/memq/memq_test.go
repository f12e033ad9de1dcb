package memq_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/sync/outbox"
	"github.com/skyedge/skyedge/sync/outbox/faultyq"
	"github.com/skyedge/skyedge/sync/outbox/memq"
	"github.com/skyedge/skyedge/sync/outbox/outboxtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, _ string, cfg outbox.Config) outbox.Queue {
	q, err := memq.Open(cfg)
	if err != nil {
		t.Fatalf("memq.Open() error = %v", err)
	}
	return q
}

const notPersistent = "memq keeps nothing across Close"

func TestContract(t *testing.T) {
	outboxtest.Run(t, outboxtest.Impl{Open: open, NotPersistent: notPersistent})
}

// TestContractThroughFaultyq checks that the fault injector, with no
// faults set, is a transparent wrapper.
func TestContractThroughFaultyq(t *testing.T) {
	outboxtest.Run(t, outboxtest.Impl{
		Open: func(t *testing.T, dir string, cfg outbox.Config) outbox.Queue {
			return faultyq.New(open(t, dir, cfg))
		},
		NotPersistent: notPersistent,
	})
}

func TestOutage(t *testing.T) {
	outboxtest.SimulateOutage(t, outboxtest.Impl{Open: open, NotPersistent: notPersistent}, outboxtest.DefaultOutage())
}
