package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/skyedge/skyedge/agent/internal/runner/dockerapi"
	"github.com/skyedge/skyedge/agent/internal/runner/proc"
	"github.com/skyedge/skyedge/internal/clock"
	"github.com/skyedge/skyedge/protocol/spec"
)

// Labels of every container the runner creates: they find a workload's
// containers again after an agent restart.
const (
	LabelManaged  = "skyedge.managed"   // "true"
	LabelWorkload = "skyedge.workload"  // the workload name
	LabelSpecHash = "skyedge.spec-hash" // the instance hash
	// LabelStateID names the runner's state directory, so two agents
	// sharing a Docker daemon never touch each other's containers.
	LabelStateID = "skyedge.state-id"
)

// dockerDriver runs containers through the Engine API. A workload's
// container is named skyedge-<workload>; it is restarted in place after
// an exit (keeping its logs) and replaced when the spec hash changes.
type dockerDriver struct {
	c           *dockerapi.Client
	stateID     string
	clock       clock.Clock
	log         *slog.Logger
	logMaxBytes int64
	logFiles    int
}

func containerName(workload string) string { return "skyedge-" + workload }

// managed lists the names of the workloads that have containers of this
// runner.
func (d *dockerDriver) managed(ctx context.Context) ([]string, error) {
	list, err := d.c.List(ctx, LabelManaged+"=true", LabelStateID+"="+d.stateID)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Labels[LabelWorkload])
	}
	return names, nil
}

// containers lists the managed containers of workload, newest first.
func (d *dockerDriver) containers(ctx context.Context, workload string) ([]dockerapi.Summary, error) {
	list, err := d.c.List(ctx, LabelManaged+"=true", LabelStateID+"="+d.stateID, LabelWorkload+"="+workload)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b dockerapi.Summary) int { return cmp.Compare(b.Created, a.Created) })
	return list, nil
}

// config is the create request of u's container.
func (d *dockerDriver) config(u *unit) (*dockerapi.ContainerConfig, error) {
	ds := u.spec.Docker
	cpu, err := u.spec.Resources.CPU.MilliCPU()
	if err != nil {
		return nil, err
	}
	mem, err := u.spec.Resources.Memory.Bytes()
	if err != nil {
		return nil, err
	}
	cfg := &dockerapi.ContainerConfig{
		Image: ds.Image,
		Cmd:   ds.Args,
		Env:   append([]string{"SKYEDGE_WORKLOAD=" + u.name}, envList(ds.Env)...),
		Labels: map[string]string{
			LabelManaged:  "true",
			LabelWorkload: u.name,
			LabelSpecHash: u.hash,
			LabelStateID:  d.stateID,
		},
		HostConfig: dockerapi.HostConfig{
			NanoCpus: cpu * 1_000_000,
			Memory:   mem,
			// The runner owns restarts: Docker must not race it.
			RestartPolicy: dockerapi.RestartPolicy{Name: "no"},
			LogConfig: dockerapi.LogConfig{Type: "json-file", Config: map[string]string{
				"max-size": strconv.FormatInt(d.logMaxBytes, 10),
				"max-file": strconv.Itoa(max(d.logFiles, 1)),
			}},
		},
	}
	for _, p := range ds.Ports {
		proto := cmp.Or(p.Protocol, "tcp")
		key := strconv.Itoa(p.Container) + "/" + proto
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
			cfg.HostConfig.PortBindings = map[string][]dockerapi.PortBinding{}
		}
		cfg.ExposedPorts[key] = struct{}{}
		host := cmp.Or(p.Host, p.Container)
		cfg.HostConfig.PortBindings[key] = append(cfg.HostConfig.PortBindings[key],
			dockerapi.PortBinding{HostPort: strconv.Itoa(host)})
	}
	return cfg, nil
}

func (d *dockerDriver) start(ctx context.Context, u *unit, _ string) (instance, error) {
	list, err := d.containers(ctx, u.name)
	if err != nil {
		return nil, err
	}
	// Restart the workload's container in place when it runs this spec;
	// remove any other. One found running (the daemon was unreachable
	// when the runner tried to adopt it) is adopted now.
	id, running := "", false
	for _, c := range list {
		if id == "" && c.Labels[LabelSpecHash] == u.hash {
			id, running = c.ID, c.State == "running"
			continue
		}
		if err := d.c.Remove(ctx, c.ID); err != nil {
			return nil, err
		}
	}
	if id == "" {
		if id, err = d.create(ctx, u); err != nil {
			return nil, err
		}
	}
	if err := d.c.Start(ctx, id); err != nil {
		return nil, err
	}
	return d.instance(ctx, id, u.hash, running)
}

// create creates u's container, pulling the image when the node does not
// have it.
func (d *dockerDriver) create(ctx context.Context, u *unit) (string, error) {
	cfg, err := d.config(u)
	if err != nil {
		return "", err
	}
	id, err := d.c.Create(ctx, containerName(u.name), cfg)
	if errors.Is(err, dockerapi.ErrNotFound) {
		d.log.Info("pulling image", "workload", u.name, "image", cfg.Image)
		if perr := d.c.Pull(ctx, cfg.Image); perr != nil {
			return "", fmt.Errorf("image %s is not on this node and pulling it failed: %w", cfg.Image, perr)
		}
		id, err = d.c.Create(ctx, containerName(u.name), cfg)
	}
	if errors.Is(err, dockerapi.ErrConflict) {
		return "", fmt.Errorf("container name %s is taken by a container SkyEdge does not manage: %w", containerName(u.name), err)
	}
	return id, err
}

// instance inspects container id and returns it as an instance.
func (d *dockerDriver) instance(ctx context.Context, id, hash string, adopted bool) (*dockerInstance, error) {
	c, err := d.c.Inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	return &dockerInstance{
		d: d, id: c.ID,
		v:  instanceView{hash: hash, pid: c.State.Pid, containerID: c.ID, startedAt: c.State.StartedAt, adopted: adopted},
		ch: make(chan struct{}),
	}, nil
}

// adopt takes over the newest container running u's spec (or exited:
// its exit is then handled as if seen live) and stops and removes every
// other container of the workload.
func (d *dockerDriver) adopt(ctx context.Context, name, _ string, u *unit, rec *record) (instance, error) {
	list, err := d.containers(ctx, name)
	if err != nil {
		return nil, err
	}
	grace := spec.DefaultStopGracePeriod
	if rec != nil && rec.Grace > 0 {
		grace = rec.Grace.Std()
	}
	var keep *dockerapi.Summary
	for i, c := range list {
		if u != nil && c.Labels[LabelSpecHash] == u.hash && (keep == nil || c.State == "running" && keep.State != "running") {
			keep = &list[i]
		}
	}
	for _, c := range list {
		if keep != nil && c.ID == keep.ID {
			continue
		}
		d.log.Info("removing stale container", "workload", name, "container", shortID(c.ID), "spec_hash", c.Labels[LabelSpecHash])
		if c.State == "running" {
			if err := d.c.Stop(ctx, c.ID, grace); err != nil {
				return nil, err
			}
		}
		if err := d.c.Remove(ctx, c.ID); err != nil {
			return nil, err
		}
	}
	if keep == nil {
		return nil, nil
	}
	return d.instance(ctx, keep.ID, u.hash, true)
}

func (d *dockerDriver) cleanup(ctx context.Context, name string) error {
	list, err := d.containers(ctx, name)
	if err != nil {
		return err
	}
	for _, c := range list {
		if err := d.c.Remove(ctx, c.ID); err != nil {
			return err
		}
	}
	return nil
}

func (d *dockerDriver) logs(ctx context.Context, name, _ string, tail int) ([]string, error) {
	list, err := d.containers(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}
	return d.c.Logs(ctx, list[0].ID, tail)
}

func shortID(id string) string { return id[:min(len(id), 12)] }

// dockerInstance is one container.
type dockerInstance struct {
	d  *dockerDriver
	id string
	v  instanceView

	ch   chan struct{}
	exit exitInfo
	ok   bool
}

func (i *dockerInstance) watch(ctx context.Context) {
	defer close(i.ch)
	for {
		code, err := i.d.c.Wait(ctx, i.id)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			i.exit, i.ok = exitInfo{Exit: proc.Exit{Known: true, Code: code}}, true
			if c, err := i.d.c.Inspect(ctx, i.id); err == nil {
				i.exit.oom = c.State.OOMKilled
				i.exit.detail = c.State.Error
			}
			return
		case errors.Is(err, dockerapi.ErrNotFound):
			i.exit, i.ok = exitInfo{detail: "container removed outside the agent"}, true
			return
		}
		// The daemon restarts or is unreachable: ask again.
		select {
		case <-ctx.Done():
			return
		case <-i.d.clock.After(time.Second):
		}
	}
}

func (i *dockerInstance) done() <-chan struct{}   { return i.ch }
func (i *dockerInstance) ended() (exitInfo, bool) { return i.exit, i.ok }
func (i *dockerInstance) view() instanceView      { return i.v }
func (i *dockerInstance) close()                  {}

// stop is docker stop with the grace period as its timeout: SIGTERM (or
// the image's stop signal), SIGKILL when it runs out.
func (i *dockerInstance) stop(ctx context.Context, grace time.Duration) error {
	if err := i.d.c.Stop(ctx, i.id, grace); err != nil {
		return err
	}
	select {
	case <-i.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exec runs a probe command inside the container.
func (i *dockerInstance) exec(ctx context.Context, argv []string) error {
	code, err := i.d.c.Exec(ctx, i.id, argv)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exited with code %d", code)
	}
	return nil
}
