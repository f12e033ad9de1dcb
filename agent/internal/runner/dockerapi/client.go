// Package dockerapi is a small client for the Docker Engine API over its
// unix socket, written with net/http and encoding/json only: the Docker
// SDK would multiply the agent's size. It covers what the runner needs
// (containers: create, start, wait, inspect, stop, remove, list by label,
// logs, exec; images: pull, build, remove) and nothing else.
//
// Requests use API version 1.41 (Docker Engine 20.10, 2020), which every
// later engine still serves.
package dockerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// APIVersion is the Engine API version of every request.
const APIVersion = "1.41"

// DefaultSocket is where the Docker daemon listens.
const DefaultSocket = "/var/run/docker.sock"

// Errors callers branch on; match them with errors.Is.
var (
	// ErrUnavailable: the daemon cannot be reached (no socket, refused).
	ErrUnavailable = errors.New("docker unavailable")
	// ErrNotFound: no such container, image or exec instance (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name is taken or the object is in use (HTTP 409).
	ErrConflict = errors.New("conflict")
)

// Error is an error answer of the Engine API.
type Error struct {
	Op      string // e.g. "create container"
	Status  int    // HTTP status
	Message string // the daemon's message
}

// Error reads like "docker create container: name in use (HTTP 409)".
func (e *Error) Error() string {
	return fmt.Sprintf("docker %s: %s (HTTP %d)", e.Op, e.Message, e.Status)
}

// Is matches ErrNotFound for 404 and ErrConflict for 409.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound ||
		target == ErrConflict && e.Status == http.StatusConflict
}

// Client talks to one Docker daemon. It is safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the daemon at socket (DefaultSocket when
// empty). It does not connect: Ping checks the daemon.
func New(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:       4,
		DisableCompression: true,
	}
	// No client timeout: waits and stops block for as long as the
	// container takes; every call is bounded by its context.
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket returns the daemon's socket path.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, "ping", http.MethodGet, "/_ping", nil, nil, nil)
}

// do sends a request and decodes a JSON answer into out (when not nil).
// in is sent as JSON, or as is when it is an io.Reader.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, in, out any) error {
	resp, err := c.send(ctx, op, method, path, q, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("docker %s: decode answer: %w", op, err)
	}
	return nil
}

// send sends a request and returns the response of a 2xx or 304 status;
// other statuses become an *Error.
func (c *Client) send(ctx context.Context, op, method, path string, q url.Values, in any) (*http.Response, error) {
	var (
		body  io.Reader
		ctype string
	)
	switch v := in.(type) {
	case nil:
	case io.Reader:
		body, ctype = v, "application/x-tar"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("docker %s: %w", op, err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	u := "http://docker/v" + APIVersion + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("docker %s: %w", op, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("docker %s: %w", op, ctx.Err())
		}
		var op2 *net.OpError
		if errors.As(err, &op2) && op2.Op == "dial" {
			return nil, fmt.Errorf("docker %s: %w at %s: %w", op, ErrUnavailable, c.socket, op2.Err)
		}
		return nil, fmt.Errorf("docker %s: %w", op, err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var msg struct{ Message string }
	if json.Unmarshal(b, &msg) != nil || msg.Message == "" {
		msg.Message = strings.TrimSpace(string(b))
	}
	return nil, &Error{Op: op, Status: resp.StatusCode, Message: msg.Message}
}

// readProgress drains a stream of JSON progress messages (pull, build)
// and returns the first error message in it.
func readProgress(op string, r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string
			ErrorDetail struct{ Message string }
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("docker %s: read progress: %w", op, err)
		}
		if m.Error != "" || m.ErrorDetail.Message != "" {
			msg := m.ErrorDetail.Message
			if msg == "" {
				msg = m.Error
			}
			return fmt.Errorf("docker %s: %s", op, strings.TrimSpace(msg))
		}
	}
}
