package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
)

// runLogs is `skyedge logs NAME`: the last lines of a workload's output,
// which the bridge fetches from the node running it.
func runLogs(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "logs")
	api := apiFlags(env, fs)
	node := fs.String("node", "", "the node whose copy to read (default: the bridge picks a replica's node)")
	tail := fs.Int("tail", 0, "at most this many lines (default: the bridge's)")
	name, err := nameArg(fs, args, "logs NAME [--node N] [--tail N]")
	if err != nil {
		return err
	}
	if *tail < 0 {
		return fmt.Errorf("%w: --tail %d: want 0 or more", errUsage, *tail)
	}
	q := url.Values{}
	if *node != "" {
		q.Set("node", *node)
	}
	if *tail > 0 {
		q.Set("tail", strconv.Itoa(*tail))
	}
	path := "/api/v1/workloads/" + url.PathEscape(name) + "/logs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	raw, err := api.get(ctx, path)
	if err != nil {
		return err
	}
	var logs apiv1.Logs
	if err := json.Unmarshal(raw, &logs); err != nil {
		return fmt.Errorf("decode logs: %w", err)
	}
	for _, l := range logs.Lines {
		fmt.Fprintln(env.Stdout, l)
	}
	if logs.Truncated {
		fmt.Fprintf(env.Stderr, "(%d lines from %s; older output was cut)\n", len(logs.Lines), logs.Node)
	}
	return nil
}
