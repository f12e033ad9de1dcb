package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/skyedge/skyedge/internal/pki"
)

func runCerts(_ context.Context, env Env, args []string) error {
	sub, args, err := subcommand(args, "init", "issue")
	if err != nil {
		return err
	}
	fs := newFlags(env, "certs "+sub)
	dir := fs.String("dir", "", "PKI directory holding ca.crt and ca.key (required)")
	name := fs.String("name", "", "issue: certificate name; for a node, its node ID")
	server := fs.Bool("server", false, "issue: a server certificate (the bridge), valid for --host")
	hosts := fs.String("host", "", "issue --server: comma-separated DNS names and IP addresses")
	validity := fs.Duration("validity", pki.LeafValidity, "issue: how long the certificate is valid")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	now := time.Now()
	switch sub {
	case "init":
		if _, err := pki.InitCA(*dir, now); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "created CA %s and %s\n", filepath.Join(*dir, pki.CACertFile), filepath.Join(*dir, pki.CAKeyFile))
		return nil
	default:
		if *name == "" {
			return fmt.Errorf("%w: --name is required", errUsage)
		}
		ca, err := pki.LoadCA(*dir)
		if err != nil {
			return err
		}
		var hostList []string
		if *hosts != "" {
			hostList = strings.Split(*hosts, ",")
		}
		certPath, keyPath, err := ca.IssueFiles(*dir, pki.Options{Name: *name, Server: *server, Hosts: hostList, Validity: *validity}, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "issued %s and %s\n", certPath, keyPath)
		return nil
	}
}
