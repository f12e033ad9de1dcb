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
		req.Header.Set("Content-Type", "application/json")
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
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return raw, nil
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
