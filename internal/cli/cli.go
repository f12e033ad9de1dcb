// Package cli implements the skyedge operator command: its subcommands,
// flags and output. The command's main only wires it to the process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Env is what a command may touch of the process, injected so tests run
// commands in-process.
type Env struct {
	Args           []string
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Version        string
}

// errUsage marks an error caused by how the command was called (exit 2).
var errUsage = errors.New("usage")

type command struct {
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"bench":     {"measure the whole system (ingest, storm, outbox, footprint, schedule)", runBench},
		"certs":     {"make the fleet's certificates (init, issue)", runCerts},
		"logs":      {"print a workload's recent output, fetched from its node", runLogs},
		"nodes":     {"show the fleet as the bridge sees it (list, get)", runNodes},
		"plan":      {"dry-run placement of a workload document: chosen sites and every site's verdict", runPlan},
		"sites":     {"list the edge nodes and cloud regions workloads are placed on", runSites},
		"version":   {"print the version", func(_ context.Context, env Env, _ []string) error { fmt.Fprintln(env.Stdout, env.Version); return nil }},
		"workloads": {"manage workloads (apply, list, get, delete, explain)", runWorkloads},
	}
}

// Main runs the command line in env and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	cmds := commands()
	if len(env.Args) == 0 || env.Args[0] == "-h" || env.Args[0] == "--help" || env.Args[0] == "help" {
		usage(env.Stderr, cmds)
		if len(env.Args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[env.Args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "skyedge: unknown command %q\n", env.Args[0])
		usage(env.Stderr, cmds)
		return 2
	}
	err := c.run(ctx, env, env.Args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.Stderr, "skyedge %s: %v\n", env.Args[0], err)
		return 2
	default:
		fmt.Fprintf(env.Stderr, "skyedge %s: %v\n", env.Args[0], err)
		return 1
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: skyedge COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun `skyedge COMMAND -h` for a command's flags.")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(env Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("skyedge "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func subcommand(args []string, names ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%w: want a subcommand: %s", errUsage, strings.Join(names, ", "))
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("%w: unknown subcommand %q, want one of: %s", errUsage, args[0], strings.Join(names, ", "))
}
