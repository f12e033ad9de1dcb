package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
)

func runWorkloads(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "apply", "list", "get", "delete", "explain")
	if err != nil {
		return err
	}
	fs := newFlags(env, "workloads "+sub)
	api := apiFlags(env, fs)
	var file, output *string
	switch sub {
	case "apply":
		file = fs.String("f", "", "workload document, YAML or JSON (required)")
	case "list", "get", "explain":
		output = fs.String("o", "table", "output: table or json")
	}
	var name string
	if sub == "apply" || sub == "list" {
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
		}
	} else if name, err = nameArg(fs, args, "workloads "+sub+" NAME"); err != nil {
		return err
	}
	if err := checkOutput(output); err != nil {
		return err
	}
	switch sub {
	case "apply":
		return applyWorkload(ctx, env, api, *file)
	case "list":
		return listWorkloads(ctx, env, api, *output)
	}
	path := "/api/v1/workloads/" + url.PathEscape(name)
	switch sub {
	case "get":
		return getWorkload(ctx, env, api, path, *output)
	case "delete":
		return deleteWorkload(ctx, env, api, path)
	}
	raw, err := api.get(ctx, path+"/explain")
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(env.Stdout, raw)
	}
	var p apiv1.Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("decode plan: %w", err)
	}
	return planTable(env.Stdout, &p)
}

// nameArg parses fs from args, accepting the one positional NAME before
// or after the flags.
func nameArg(fs *flag.FlagSet, args []string, usage string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "" || len(rest) > 0 {
		return "", fmt.Errorf("%w: %s", errUsage, usage)
	}
	return name, nil
}

func checkOutput(output *string) error {
	if output != nil && *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	return nil
}

// readDocument reads a workload document from a file.
func readDocument(file string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("%w: -f FILE is required", errUsage)
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read workload: %w", err)
	}
	return doc, nil
}

// rejected turns a 4xx answer to a workload document into an error that
// names the file and lists the problems, one per line.
func rejected(file string, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Code < 400 || ae.Code >= 500 || ae.Code == http.StatusUnauthorized || ae.Message == "" {
		return err
	}
	return fmt.Errorf("%s: rejected by the bridge (%s):\n  %s", file, ae.Status, strings.ReplaceAll(ae.Message, "\n", "\n  "))
}

func applyWorkload(ctx context.Context, env Env, api *apiClient, file string) error {
	doc, err := readDocument(file)
	if err != nil {
		return err
	}
	raw, err := api.do(ctx, http.MethodPost, "/api/v1/workloads", doc)
	if err != nil {
		return rejected(file, err)
	}
	var w apiv1.Workload
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("decode workload: %w", err)
	}
	fmt.Fprintf(env.Stdout, "workload %s applied (revision %s)\n", w.Name, w.Revision)
	if w.Unschedulable != "" {
		fmt.Fprintf(env.Stdout, "  not every replica is placed yet: %s\n", w.Unschedulable)
	}
	return nil
}

func listWorkloads(ctx context.Context, env Env, api *apiClient, output string) error {
	raw, err := api.get(ctx, "/api/v1/workloads")
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(env.Stdout, raw)
	}
	var list apiv1.WorkloadList
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode workload list: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	now := time.Now()
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRUNNING/WANTED\tREPLICAS\tCOST/H\tAGE")
	for _, w := range list.Items {
		reps := make([]string, 0, len(w.Replicas))
		for _, r := range w.Replicas {
			reps = append(reps, replicaNode(r)+":"+replicaState(r))
		}
		counts := fmt.Sprintf("%d/%d", w.Running, w.Wanted)
		if w.Deleting {
			counts += " (deleting)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.Name, counts, orDash(strings.Join(reps, ",")), dollars(w.CostPerHour), age(now, w.CreatedAt))
	}
	return tw.Flush()
}

func getWorkload(ctx context.Context, env Env, api *apiClient, path, output string) error {
	raw, err := api.get(ctx, path)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(env.Stdout, raw)
	}
	var w apiv1.Workload
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("decode workload: %w", err)
	}
	return workloadTable(env.Stdout, &w, time.Now())
}

// workloadTable writes a header about w, then a row per replica.
func workloadTable(out io.Writer, w *apiv1.Workload, now time.Time) error {
	what := string(w.Spec.Runtime)
	switch {
	case w.Spec.Docker != nil:
		what += " " + w.Spec.Docker.Image
	case w.Spec.Exec != nil:
		what += " " + w.Spec.Exec.Command
	}
	fmt.Fprintf(out, "Name:      %s\n", w.Name)
	fmt.Fprintf(out, "Revision:  %s\n", w.Revision)
	fmt.Fprintf(out, "Runs:      %s\n", what)
	fmt.Fprintf(out, "Replicas:  %d/%d running\n", w.Running, w.Wanted)
	fmt.Fprintf(out, "Cost:      %s/h\n", dollars(w.CostPerHour))
	fmt.Fprintf(out, "Age:       %s (updated %s ago)\n", age(now, w.CreatedAt), age(now, w.UpdatedAt))
	if w.Deleting {
		fmt.Fprintln(out, "Deleting:  replicas are being stopped")
	}
	if w.Unschedulable != "" {
		fmt.Fprintf(out, "Unplaced:  %s\n", w.Unschedulable)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tNODE\tSTATE\tRESTARTS\tEXIT\tREASON")
	for _, r := range w.Replicas {
		node := replicaNode(r)
		if r.Site != "" && r.Node != r.Site {
			node += " (" + r.Site + ")"
		}
		state := replicaState(r)
		if r.Desired == "stop" {
			state += " (stopping)"
		}
		if r.Generation > r.AckedGeneration {
			state += " (not yet acked)"
		}
		exit := "-"
		if r.ExitCode != nil {
			exit = strconv.Itoa(*r.ExitCode)
		}
		reason := r.Reason
		if r.LastError != "" {
			reason = strings.TrimPrefix(reason+": "+r.LastError, ": ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", r.Slot, node, state, r.Restarts, exit, orDash(reason))
	}
	return tw.Flush()
}

func deleteWorkload(ctx context.Context, env Env, api *apiClient, path string) error {
	raw, err := api.do(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	var w apiv1.Workload
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("decode workload: %w", err)
	}
	if n := len(w.Replicas); n > 0 {
		fmt.Fprintf(env.Stdout, "workload %s deleted; %d replica(s) stopping\n", w.Name, n)
		return nil
	}
	fmt.Fprintf(env.Stdout, "workload %s deleted\n", w.Name)
	return nil
}

// replicaNode is the agent running r, or its site while it has none.
func replicaNode(r apiv1.Replica) string {
	if r.Node != "" {
		return r.Node
	}
	return orDash(r.Site)
}

func replicaState(r apiv1.Replica) string { return orDash(r.State) }

// dollars formats a price in US dollars: to a thousandth of a cent
// below a dollar, where cloud prices differ.
func dollars(v float64) string {
	switch {
	case v == 0:
		return "$0"
	case v < 1:
		return fmt.Sprintf("$%.5f", v)
	}
	return fmt.Sprintf("$%.2f", v)
}

// age formats the time since t in its two largest units: 45s, 12m,
// 1h30m, 3d4h.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	two := func(a int, ua string, b int, ub string) string {
		if b == 0 {
			return strconv.Itoa(a) + ua
		}
		return strconv.Itoa(a) + ua + strconv.Itoa(b) + ub
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return two(int(d.Hours()), "h", int(d.Minutes())%60, "m")
	}
	return two(int(d.Hours())/24, "d", int(d.Hours())%24, "h")
}
