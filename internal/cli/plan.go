package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
)

// errIncomplete is returned, after the plan is printed, when a dry run
// could not place every replica.
var errIncomplete = errors.New("not every replica can be placed")

// runPlan is `skyedge plan -f FILE`: a dry run of a workload document.
// It exits 1 when some replica would find no site.
func runPlan(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "plan")
	api := apiFlags(env, fs)
	file := fs.String("f", "", "workload document, YAML or JSON (required)")
	output := fs.String("o", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if err := checkOutput(output); err != nil {
		return err
	}
	doc, err := readDocument(*file)
	if err != nil {
		return err
	}
	raw, err := api.do(ctx, http.MethodPost, "/api/v1/plan", doc)
	if err != nil {
		return rejected(*file, err)
	}
	var p apiv1.Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("decode plan: %w", err)
	}
	if *output == "json" {
		err = writeJSON(env.Stdout, raw)
	} else {
		err = planTable(env.Stdout, &p)
	}
	if err == nil && p.Error != "" {
		return fmt.Errorf("%s: %w", p.Workload, errIncomplete)
	}
	return err
}

// planTable writes the chosen sites, a verdict per candidate site and
// the summary.
func planTable(out io.Writer, p *apiv1.Plan) error {
	fmt.Fprintf(out, "Workload %s: %d/%d replicas placed, %s/h\n", p.Workload, len(p.Chosen), p.Wanted, dollars(p.CostPerHour))
	if len(p.Chosen) > 0 {
		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SLOT\tCHOSEN SITE\tKIND\tSCORE\tCOST/H\tRTT\tRESIDENCY\tPREEMPTS")
		for _, c := range p.Chosen {
			rtt := "-"
			if c.RTTSource != "" {
				rtt = fmt.Sprintf("%.1fms %s", c.RTTMillis, c.RTTSource)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n", c.Slot, c.Site, c.Kind, c.Score, dollars(c.CostPerHour),
				rtt, residency(c), orDash(strings.Join(c.Victims, ",")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(p.Candidates) > 0 {
		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SITE\tKIND\tVERDICT\tSCORE\tCOST/H\tREASON")
		for _, c := range p.Candidates {
			verdict, score, reason := c.Filter, "-", c.Reason
			switch {
			case c.Chosen:
				verdict = "chosen"
			case c.Feasible:
				verdict = "feasible"
			}
			if c.Feasible {
				score = fmt.Sprintf("%.2f", c.Score)
				if reason == "" {
					reason = terms(c.Terms)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Site, orDash(c.Kind), orDash(verdict), score, dollars(c.CostPerHour), orDash(reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	if p.Summary != "" {
		fmt.Fprintln(out, p.Summary)
	}
	if p.Error != "" {
		fmt.Fprintf(out, "error: %s\n", p.Error)
	}
	return nil
}

// residency is the chosen site's jurisdiction and the rule allowing it.
func residency(c apiv1.PlannedReplica) string {
	switch {
	case c.Residency == "":
		return orDash(c.Jurisdiction)
	case c.Jurisdiction == "" || c.Residency == c.Jurisdiction || strings.HasPrefix(c.Residency, c.Jurisdiction+" "):
		return c.Residency
	}
	return c.Jurisdiction + ": " + c.Residency
}

// terms writes a score's parts, "cost 96.47, balance 99.96", by name.
func terms(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for k, n := range names {
		parts[k] = fmt.Sprintf("%s %.2f", n, m[n])
	}
	return strings.Join(parts, ", ")
}
