package logs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node answers the requests published to it, or records them.
type node struct {
	mu       sync.Mutex
	requests []*pb.LogsRequest
	topics   []string
	answer   func(*pb.LogsRequest) // nil: do not answer
	fail     error
}

func (n *node) Publish(topic string, payload []byte) error {
	if n.fail != nil {
		return n.fail
	}
	env, err := protocol.Decode(payload)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.requests = append(n.requests, env.GetLogsRequest())
	n.topics = append(n.topics, topic)
	n.mu.Unlock()
	if n.answer != nil {
		go n.answer(env.GetLogsRequest())
	}
	return nil
}

func TestFetch(t *testing.T) {
	n := &node{}
	b := New(Config{Publisher: n})
	n.answer = func(r *pb.LogsRequest) {
		b.Response("n1", &pb.LogsResponse{RequestId: "someone-else"}) // dropped
		b.Response("n2", &pb.LogsResponse{RequestId: r.GetRequestId(), Lines: []string{"spoofed"}})
		b.Response("n1", &pb.LogsResponse{RequestId: r.GetRequestId(), Workload: r.GetWorkload(), Lines: []string{"a", "b"}})
	}
	resp, err := b.Fetch(context.Background(), "n1", "web", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetLines(); len(got) != 2 || got[0] != "a" {
		t.Errorf("Fetch lines = %q, want [a b]", got)
	}
	if n.topics[0] != protocol.DownTopic("n1", protocol.StreamLogs) || n.requests[0].GetTailLines() != 2 || n.requests[0].GetWorkload() != "web" {
		t.Errorf("request %v on %s", n.requests[0], n.topics[0])
	}
	if b.Waiting() != 0 {
		t.Errorf("Waiting = %d after the answer, want 0", b.Waiting())
	}
}

func TestFetchFailures(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	t.Run("offline", func(t *testing.T) {
		b := New(Config{Publisher: &node{}, Online: func(string) bool { return false }})
		if _, err := b.Fetch(context.Background(), "n1", "web", 0); !errors.Is(err, ErrOffline) {
			t.Errorf("Fetch = %v, want ErrOffline", err)
		}
	})
	t.Run("node error", func(t *testing.T) {
		n := &node{}
		b := New(Config{Publisher: n})
		n.answer = func(r *pb.LogsRequest) {
			b.Response("n1", &pb.LogsResponse{RequestId: r.GetRequestId(), Error: "no workload web"})
		}
		if _, err := b.Fetch(context.Background(), "n1", "web", 0); !errors.Is(err, ErrNode) {
			t.Errorf("Fetch = %v, want ErrNode", err)
		}
	})
	t.Run("send failure", func(t *testing.T) {
		b := New(Config{Publisher: &node{fail: errors.New("not connected")}})
		if _, err := b.Fetch(context.Background(), "n1", "web", 0); err == nil {
			t.Error("Fetch succeeded although the request could not be sent")
		}
	})
	t.Run("timeout and bound", func(t *testing.T) {
		n := &node{}
		b := New(Config{Publisher: n, Clock: clk, Timeout: 5 * time.Second, MaxWaiting: 1})
		done := make(chan error, 1)
		go func() {
			_, err := b.Fetch(context.Background(), "n1", "web", 0)
			done <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for b.Waiting() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if _, err := b.Fetch(context.Background(), "n2", "web", 0); !errors.Is(err, ErrBusy) {
			t.Errorf("second Fetch = %v, want ErrBusy", err)
		}
		for {
			clk.Advance(time.Second)
			select {
			case err := <-done:
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("Fetch = %v, want ErrTimeout", err)
				}
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		b := New(Config{Publisher: &node{}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.Fetch(ctx, "n1", "web", 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch = %v, want context.Canceled", err)
		}
	})
}
