package collect

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

func TestCgroupLimits(t *testing.T) {
	tests := []struct {
		name    string
		want    *pb.ContainerLimits
		wantErr bool
	}{
		{name: "limited", want: &pb.ContainerLimits{CpuMaxMilli: 500, MemoryMaxKib: 262144, MemoryCurrentKib: 40960}},
		{name: "unlimited", want: nil},
		// The container has no limit of its own; its parent slice does.
		{name: "memonly", want: &pb.ContainerLimits{MemoryMaxKib: 524288, MemoryCurrentKib: 10240}},
		// Inside a cgroup namespace the agent's cgroup is the mount root.
		{name: "namespaced", want: &pb.ContainerLimits{CpuMaxMilli: 2000, MemoryCurrentKib: 71680}},
		{name: "v1only", want: nil},
		{name: "missing", want: nil},
		{name: "malformed", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "cgroup", tt.name)
			r := cgroupReader{root: filepath.Join(dir, "sys"), selfFile: filepath.Join(dir, "proc", "cgroup")}
			got, err := r.limits()
			if (err != nil) != tt.wantErr {
				t.Fatalf("limits() error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("limits() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantMilli   uint32
		wantLimited bool
		wantErr     bool
	}{
		{name: "unlimited", in: "max 100000"},
		{name: "half", in: "50000 100000", wantMilli: 500, wantLimited: true},
		{name: "two cpus", in: "200000 100000", wantMilli: 2000, wantLimited: true},
		{name: "quota only", in: "150000", wantMilli: 1500, wantLimited: true},
		{name: "tiny quota", in: "1 1000000", wantMilli: 1, wantLimited: true},
		{name: "garbage", in: "lots 100000", wantErr: true},
		{name: "zero period", in: "1000 0", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, lim, err := parseCPUMax(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCPUMax(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if m != tt.wantMilli || lim != tt.wantLimited {
				t.Errorf("parseCPUMax(%q) = %d, %v, want %d, %v", tt.in, m, lim, tt.wantMilli, tt.wantLimited)
			}
		})
	}
}

func TestParseMemoryMax(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantKiB     uint64
		wantLimited bool
		wantErr     bool
	}{
		{name: "unlimited", in: "max"},
		{name: "256 MiB", in: "268435456", wantKiB: 262144, wantLimited: true},
		{name: "below a KiB", in: "100", wantKiB: 1, wantLimited: true},
		{name: "garbage", in: "lots", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, lim, err := parseMemoryMax(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseMemoryMax(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if k != tt.wantKiB || lim != tt.wantLimited {
				t.Errorf("parseMemoryMax(%q) = %d, %v, want %d, %v", tt.in, k, lim, tt.wantKiB, tt.wantLimited)
			}
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   string
		wantOK bool
	}{
		{name: "v2", in: "0::/system.slice/a.service\n", want: "/system.slice/a.service", wantOK: true},
		{name: "hybrid", in: "4:memory:/x\n0::/\n", want: "/", wantOK: true},
		{name: "escapes namespace", in: "0::/../../x\n", want: "/x", wantOK: true},
		{name: "v1 only", in: "4:memory:/x\n1:cpu:/x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseProcCgroup([]byte(tt.in))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseProcCgroup(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
