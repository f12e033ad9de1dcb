package agent

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Flags are the command-line settings that override a configuration
// file, or form the whole configuration when there is no file. Only the
// flags given on the command line override anything.
type Flags struct {
	fs                                               *flag.FlagSet
	node, broker, ca, cert, key, serverName, dataDir string
	logLevel, logFormat, drainProfile, dockerSocket  string
	interval                                         time.Duration
	workloads                                        bool
	labels                                           labelsFlag
}

// RegisterFlags defines the override flags on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, labels: labelsFlag{}}
	fs.StringVar(&f.node, "node", "", "node ID (node.name); must equal the certificate's common name")
	fs.StringVar(&f.broker, "broker", "", "broker URL (cloud.broker), e.g. tls://bridge.example:8883")
	fs.StringVar(&f.ca, "ca", "", "CA bundle file (cloud.caFile)")
	fs.StringVar(&f.cert, "cert", "", "node certificate file (cloud.certFile)")
	fs.StringVar(&f.key, "key", "", "node private key file (cloud.keyFile)")
	fs.StringVar(&f.serverName, "server-name", "", "name to check in the broker's certificate (cloud.serverName)")
	fs.Var(f.labels, "label", "node label key=value (node.labels); repeatable")
	fs.StringVar(&f.dataDir, "data-dir", "", "state directory (dataDir)")
	fs.DurationVar(&f.interval, "interval", 0, "resource report interval (report.interval), e.g. 10s")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (log.level)")
	fs.StringVar(&f.logFormat, "log-format", "", "text or json (log.format)")
	fs.StringVar(&f.drainProfile, "drain-profile", "", "backlog pacing (outbox.drainProfile): "+strings.Join(DrainProfileNames(), " or "))
	fs.BoolVar(&f.workloads, "workloads", true, "run the workloads the cloud assigns (workloads.enabled); -workloads=false turns them off")
	fs.StringVar(&f.dockerSocket, "docker-socket", "", "Docker daemon socket (workloads.dockerSocket)")
	return f
}

// Apply writes the flags given on the command line into c. Labels are
// merged: a -label replaces the file's value for its key only.
func (f *Flags) Apply(c *FileConfig) {
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "node":
			c.Node.Name = f.node
		case "broker":
			c.Cloud.Broker = f.broker
		case "ca":
			c.Cloud.CAFile = f.ca
		case "cert":
			c.Cloud.CertFile = f.cert
		case "key":
			c.Cloud.KeyFile = f.key
		case "server-name":
			c.Cloud.ServerName = f.serverName
		case "label":
			if c.Node.Labels == nil {
				c.Node.Labels = make(map[string]string, len(f.labels))
			}
			maps.Copy(c.Node.Labels, f.labels)
		case "data-dir":
			c.DataDir = f.dataDir
		case "interval":
			c.Report.Interval = f.interval
		case "log-level":
			c.Log.Level = f.logLevel
		case "log-format":
			c.Log.Format = f.logFormat
		case "drain-profile":
			c.Outbox.DrainProfile = f.drainProfile
		case "workloads":
			c.Workloads.Enabled = f.workloads
		case "docker-socket":
			c.Workloads.DockerSocket = f.dockerSocket
		}
	})
}

// labelsFlag collects repeated -label key=value flags.
type labelsFlag map[string]string

func (l labelsFlag) String() string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (l labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	l[k] = v
	return nil
}
