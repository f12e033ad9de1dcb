package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// runSites is `skyedge sites`: the edge nodes and cloud regions the
// scheduler places on, with their capacity and what is placed there.
func runSites(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "sites")
	api := apiFlags(env, fs)
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
	raw, err := api.get(ctx, "/api/v1/sites")
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(env.Stdout, raw)
	}
	var list apiv1.SiteList
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode site list: %w", err)
	}
	return siteTable(env.Stdout, list.Items, time.Now())
}

// siteTable writes a row per site in the order served (edge nodes, then
// cloud regions).
func siteTable(out io.Writer, sites []apiv1.Site, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tKIND\tLINK\tWHERE\tJURISDICTION\tCPU\tMEMORY\tREPLICAS\tCPU-H\tNOTES")
	for _, s := range sites {
		where := s.Provider
		if s.Region != "" {
			where = strings.TrimPrefix(where+"/"+s.Region, "/")
		}
		if s.Location != nil {
			where = strings.TrimSpace(fmt.Sprintf("%s (%.2f, %.2f)", where, s.Location.Lat, s.Location.Lon))
		}
		cpu := spec.FormatMilliCPU(s.AllocatedMilliCPU) + "/" + spec.FormatMilliCPU(s.CapacityMilliCPU)
		mem := spec.FormatBytes(s.AllocatedMemory) + "/" + spec.FormatBytes(s.CapacityMemory)
		var notes []string
		if s.CapacityErrorUntil.After(now) {
			notes = append(notes, "capacity error: avoided until "+s.CapacityErrorUntil.UTC().Format(time.RFC3339))
		}
		notes = append(notes, s.Problems...)
		price := "-"
		if s.CPUHour > 0 {
			price = dollars(s.CPUHour)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Kind, orDash(s.Link), orDash(where),
			orDash(s.Jurisdiction), cpu, mem, s.Replicas, price, orDash(strings.Join(notes, "; ")))
	}
	return tw.Flush()
}
