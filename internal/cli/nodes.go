package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// nodeView is what the CLI shows of a node record from the bridge API;
// unknown fields are ignored so older CLIs keep working with newer bridges.
type nodeView struct {
	ID            string            `json:"id"`
	Labels        map[string]string `json:"labels"`
	Online        bool              `json:"online"`
	OfflineReason string            `json:"offlineReason"`
	LastSeen      time.Time         `json:"lastSeen"`
	AgentVersion  string            `json:"agentVersion"`
	Facts         struct {
		Arch     string `json:"arch"`
		CPUCores uint32 `json:"cpuCores"`
	} `json:"facts"`
	LastReport *struct {
		CPUPermille uint32 `json:"cpuPermille"`
		MemTotalKiB uint64 `json:"memTotalKiB"`
		MemUsedKiB  uint64 `json:"memUsedKiB"`
		Load1Centi  uint32 `json:"load1Centi"`
	} `json:"lastReport"`
}

func runNodes(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "list", "get")
	if err != nil {
		return err
	}
	fs := newFlags(env, "nodes "+sub)
	api := apiFlags(env, fs)
	output := fs.String("o", "table", "output: table or json")
	selector := fs.String("l", "", "list: label selector, e.g. role=vehicle,zone=eu-central")
	// Accept flags after the node name too: `nodes get N -o json`.
	var name string
	if sub == "get" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	if sub == "get" {
		if name == "" && fs.NArg() == 1 {
			name = fs.Arg(0)
		}
		if name == "" {
			return fmt.Errorf("%w: nodes get NODE", errUsage)
		}
		raw, err := api.get(ctx, "/api/v1/nodes/"+url.PathEscape(name))
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeJSON(env.Stdout, raw)
		}
		var n nodeView
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("decode node: %w", err)
		}
		return nodeTable(env.Stdout, []nodeView{n}, time.Now())
	}
	path := "/api/v1/nodes"
	if *selector != "" {
		path += "?selector=" + url.QueryEscape(*selector)
	}
	raw, err := api.get(ctx, path)
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(env.Stdout, raw)
	}
	var list struct {
		Items []nodeView `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode node list: %w", err)
	}
	return nodeTable(env.Stdout, list.Items, time.Now())
}

func nodeTable(w io.Writer, nodes []nodeView, now time.Time) error {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tLAST SEEN\tARCH\tCPU\tMEMORY\tLOAD\tVERSION\tLABELS")
	for _, n := range nodes {
		status := "online"
		if !n.Online {
			status = "offline"
			if n.OfflineReason != "" {
				status += " (" + n.OfflineReason + ")"
			}
		}
		cpu, memory, load := "-", "-", "-"
		if r := n.LastReport; r != nil {
			cpu = fmt.Sprintf("%.1f%% of %d", float64(r.CPUPermille)/10, n.Facts.CPUCores)
			memory = fmt.Sprintf("%s/%s", kib(r.MemUsedKiB), kib(r.MemTotalKiB))
			load = fmt.Sprintf("%.2f", float64(r.Load1Centi)/100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, status, ago(now, n.LastSeen),
			orDash(n.Facts.Arch), cpu, memory, load, orDash(n.AgentVersion), labelString(n.Labels))
	}
	return tw.Flush()
}

func kib(v uint64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.1fGi", float64(v)/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.0fMi", float64(v)/(1<<10))
	default:
		return fmt.Sprintf("%dKi", v)
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func labelString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}
