package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/skyedge/skyedge/protocol/spec"
)

// probeClient makes HTTP probes: no redirects followed (a 3xx passes) and
// no idle connections kept between probes seconds apart.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// probe runs h's check once; ctx carries the probe's timeout.
func probe(ctx context.Context, h *spec.Health, inst instance) error {
	switch {
	case h.HTTP != nil:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.HTTP.URL, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "skyedge-agent-probe")
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("GET %s: HTTP %d", h.HTTP.URL, resp.StatusCode)
		}
		return nil
	case h.TCP != nil:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", h.TCP.Address)
		if err != nil {
			return err
		}
		return c.Close()
	case h.Exec != nil:
		if err := inst.exec(ctx, h.Exec.Command); err != nil {
			return fmt.Errorf("%s: %w", h.Exec.Command[0], err)
		}
		return nil
	}
	return fmt.Errorf("health check without a probe")
}

// healthKey tells health specs apart, to restart the prober on a change.
func healthKey(h *spec.Health) string {
	if h == nil {
		return ""
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// ensureProber runs the prober of u's health check, restarting it when the
// check changed.
func (s *supervisor) ensureProber(u *unit) {
	key := healthKey(u.spec.Health)
	if key == s.probeKey && (key == "" || s.probes != nil) {
		return
	}
	s.stopProber()
	s.probeKey = key
	if u.spec.Health == nil {
		return
	}
	h := *u.spec.Health
	ctx, cancel := context.WithCancel(s.instCtx)
	ch := make(chan error, 1)
	s.probes, s.probeStop = ch, cancel
	s.probeWG.Add(1)
	go func() {
		defer s.probeWG.Done()
		s.probeLoop(ctx, &h, s.inst, ch)
	}()
}

func (s *supervisor) stopProber() {
	if s.probeStop != nil {
		s.probeStop()
		s.probeWG.Wait()
	}
	s.probes, s.probeStop, s.probeKey = nil, nil, ""
}

// probeLoop probes every Interval and sends each result.
func (s *supervisor) probeLoop(ctx context.Context, h *spec.Health, inst instance, out chan<- error) {
	t := s.r.clock.NewTicker(h.Interval.Std())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		pctx, cancel := context.WithTimeout(ctx, h.Timeout.Std())
		err := probe(pctx, h, inst)
		cancel()
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- err:
		case <-ctx.Done():
			return
		}
	}
}

// onProbe counts a probe result; at FailureThreshold failures in a row the
// instance is unhealthy and is stopped, then restarted by the policy.
func (s *supervisor) onProbe(ctx context.Context, u *unit, err error) {
	if err == nil {
		s.fails = 0
		note := s.inst.view().note
		s.update(func(st *Status) { st.State, st.Reason = StateRunning, note })
		return
	}
	s.fails++
	threshold := u.spec.Health.FailureThreshold
	s.update(func(st *Status) { st.LastError = "health check: " + err.Error() })
	if s.fails < threshold {
		return
	}
	cause := fmt.Sprintf("health check failed %d times in a row", s.fails)
	s.log.Warn("workload unhealthy", "error", err, "failures", s.fails)
	s.update(func(st *Status) { st.State, st.Reason = StateUnhealthy, cause+"; stopping it" })
	if s.halt(ctx) {
		s.onExit(ctx, u, cause)
	}
}
