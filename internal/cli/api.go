package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiClient talks to the bridge's HTTP API.
type apiClient struct {
	server *string
	token  *string
	client *http.Client
}

// apiFlags registers --server and --token, defaulting to $SKYEDGE_SERVER
// and $SKYEDGE_TOKEN.
func apiFlags(env Env, fs *flag.FlagSet) *apiClient {
	server := env.Getenv("SKYEDGE_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	return &apiClient{
		server: fs.String("server", server, "bridge API URL ($SKYEDGE_SERVER)"),
		token:  fs.String("token", env.Getenv("SKYEDGE_TOKEN"), "bearer token for the bridge API ($SKYEDGE_TOKEN)"),
		client: &http.Client{Timeout: 30 * time.Second},
	}
}

func (a *apiClient) get(ctx context.Context, path string) ([]byte, error) {
	return a.do(ctx, http.MethodGet, path, nil)
}

func (a *apiClient) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	u := strings.TrimRight(*a.server, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if *a.token != "" {
		req.Header.Set("Authorization", "Bearer "+*a.token)
	}
	if body != nil {
		// Workload documents go as written: YAML unless they open with '{'.
		ct := "application/json"
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] != '{' {
			ct = "application/yaml"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is the bridge running? --server / $SKYEDGE_SERVER)", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Method: method, URL: u, Status: resp.Status, Code: resp.StatusCode}
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &body) == nil {
			e.Message = body.Error
		}
		return nil, e
	}
	return raw, nil
}

// apiError is an error answer of the bridge API.
type apiError struct {
	Method, URL, Status string
	Code                int
	// Message is the answer's {"error": ...}, if any.
	Message string
}

func (e *apiError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s %s: %s: %s", e.Method, e.URL, e.Status, e.Message)
	}
	return fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
}

// writeJSON re-indents raw JSON for people.
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("bridge answered with invalid JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
