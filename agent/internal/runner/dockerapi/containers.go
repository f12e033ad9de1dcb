package dockerapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ContainerConfig is the body of a container create request: the subset
// of the Engine API's fields the runner sets.
type ContainerConfig struct {
	Image        string
	Cmd          []string            `json:",omitempty"`
	Env          []string            `json:",omitempty"`
	Labels       map[string]string   `json:",omitempty"`
	ExposedPorts map[string]struct{} `json:",omitempty"`
	HostConfig   HostConfig
}

// HostConfig is the host side of a container.
type HostConfig struct {
	PortBindings map[string][]PortBinding `json:",omitempty"`
	// NanoCpus is the CPU limit in 1e-9 CPUs.
	NanoCpus int64 `json:",omitempty"`
	// Memory is the memory limit in bytes.
	Memory        int64 `json:",omitempty"`
	RestartPolicy RestartPolicy
	LogConfig     LogConfig `json:",omitzero"`
}

// PortBinding publishes a container port on the host.
type PortBinding struct {
	HostIP   string `json:"HostIp,omitempty"`
	HostPort string
}

// RestartPolicy is Docker's own restart policy; "no" leaves restarts to
// the caller.
type RestartPolicy struct {
	Name string
}

// LogConfig selects the container's log driver and its options.
type LogConfig struct {
	Type   string            `json:",omitempty"`
	Config map[string]string `json:",omitempty"`
}

// Container is the answer of an inspect.
type Container struct {
	ID      string `json:"Id"`
	Name    string
	Image   string // the image ID
	Created time.Time
	Config  struct {
		Image  string
		Labels map[string]string
	}
	State      State
	HostConfig HostConfig
}

// State is a container's run state.
type State struct {
	Status     string // created, running, paused, restarting, removing, exited, dead
	Running    bool
	Pid        int
	ExitCode   int
	Error      string
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
	// Health is set when the image defines a HEALTHCHECK.
	Health *struct {
		Status        string // starting, healthy, unhealthy
		FailingStreak int
	}
}

// Summary is one container of a list.
type Summary struct {
	ID      string `json:"Id"`
	Names   []string
	Image   string
	Labels  map[string]string
	State   string
	Created int64 // Unix seconds
}

func cpath(id, suffix string) string { return "/containers/" + url.PathEscape(id) + suffix }

// Create creates a container named name (empty: Docker picks one) and
// returns its ID. A missing image is ErrNotFound.
func (c *Client) Create(ctx context.Context, name string, cfg *ContainerConfig) (string, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	var out struct {
		ID string `json:"Id"`
	}
	if err := c.do(ctx, "create container", http.MethodPost, "/containers/create", q, cfg, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// Start starts a created or exited container; an already running one is
// not an error.
func (c *Client) Start(ctx context.Context, id string) error {
	return c.do(ctx, "start container", http.MethodPost, cpath(id, "/start"), nil, nil, nil)
}

// Inspect returns the container's configuration and state.
func (c *Client) Inspect(ctx context.Context, id string) (*Container, error) {
	var out Container
	if err := c.do(ctx, "inspect container", http.MethodGet, cpath(id, "/json"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Wait blocks until the container is not running and returns its exit
// code; it returns at once for a container already stopped.
func (c *Client) Wait(ctx context.Context, id string) (int, error) {
	var out struct {
		StatusCode int
		Error      *struct{ Message string }
	}
	q := url.Values{"condition": {"not-running"}}
	if err := c.do(ctx, "wait container", http.MethodPost, cpath(id, "/wait"), q, nil, &out); err != nil {
		return 0, err
	}
	if out.Error != nil && out.Error.Message != "" {
		return out.StatusCode, fmt.Errorf("docker wait container: %s", out.Error.Message)
	}
	return out.StatusCode, nil
}

// Stop sends the container's stop signal (SIGTERM unless the image says
// otherwise) and kills it after grace, rounded up to whole seconds as the
// API counts. A stopped container is not an error.
func (c *Client) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int(math.Ceil(grace.Seconds()))
	q := url.Values{"t": {strconv.Itoa(max(secs, 0))}}
	return c.do(ctx, "stop container", http.MethodPost, cpath(id, "/stop"), q, nil, nil)
}

// Remove removes the container, killing it if it runs, with its
// anonymous volumes. A missing container is not an error.
func (c *Client) Remove(ctx context.Context, id string) error {
	q := url.Values{"force": {"1"}, "v": {"1"}}
	err := c.do(ctx, "remove container", http.MethodDelete, cpath(id, ""), q, nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// List returns every container, running or not, that carries all the
// labels ("key=value" or "key").
func (c *Client) List(ctx context.Context, labels ...string) ([]Summary, error) {
	f, err := json.Marshal(map[string][]string{"label": labels})
	if err != nil {
		return nil, err
	}
	q := url.Values{"all": {"1"}, "filters": {string(f)}}
	var out []Summary
	if err := c.do(ctx, "list containers", http.MethodGet, "/containers/json", q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Logs returns the last tail lines of the container's stdout and stderr
// (all when tail <= 0), oldest first.
func (c *Client) Logs(ctx context.Context, id string, tail int) ([]string, error) {
	t := "all"
	if tail > 0 {
		t = strconv.Itoa(tail)
	}
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}, "tail": {t}}
	resp, err := c.send(ctx, "container logs", http.MethodGet, cpath(id, "/logs"), q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	lines, err := Demux(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("docker container logs: %w", err)
	}
	return lines, nil
}

// Demux splits the Engine API's multiplexed stream (a container without a
// TTY) into lines: frames of an 8-byte header [stream, 0, 0, 0, size as a
// big-endian uint32] and size bytes of output. A line split over several
// frames of one stream is joined; stdout and stderr lines are kept in the
// order they end.
func Demux(r io.Reader) ([]string, error) {
	var (
		lines   []string
		partial [3][]byte // per stream: stdin, stdout, stderr
		hdr     [8]byte
	)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("frame header: %w", err)
		}
		s := hdr[0]
		if s > 2 {
			return nil, fmt.Errorf("frame of unknown stream %d", s)
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > 1<<24 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("frame body: %w", err)
		}
		buf = append(partial[s], buf...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			lines = append(lines, strings.TrimSuffix(string(buf[:i]), "\r"))
			buf = buf[i+1:]
		}
		partial[s] = append([]byte(nil), buf...)
	}
	for _, p := range partial {
		if len(p) > 0 {
			lines = append(lines, string(p))
		}
	}
	return lines, nil
}

// Exec runs cmd in the running container and returns its exit code. The
// command's output is discarded.
func (c *Client) Exec(ctx context.Context, id string, cmd []string) (int, error) {
	var created struct {
		ID string `json:"Id"`
	}
	err := c.do(ctx, "create exec", http.MethodPost, cpath(id, "/exec"), nil,
		map[string]any{"Cmd": cmd, "AttachStdout": false, "AttachStderr": false}, &created)
	if err != nil {
		return 0, err
	}
	epath := "/exec/" + url.PathEscape(created.ID)
	if err := c.do(ctx, "start exec", http.MethodPost, epath+"/start", nil, map[string]any{"Detach": true}, nil); err != nil {
		return 0, err
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var st struct {
			Running  bool
			ExitCode *int
		}
		if err := c.do(ctx, "inspect exec", http.MethodGet, epath+"/json", nil, nil, &st); err != nil {
			return 0, err
		}
		if !st.Running && st.ExitCode != nil {
			return *st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("docker exec: %w", ctx.Err())
		case <-t.C:
		}
	}
}
