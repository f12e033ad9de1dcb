package protocol

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// sample is a typical vehicle report: 4 cores, two disks, two links, one
// temperature sensor, running under cgroup limits.
func sample() *pb.ResourceReport {
	return &pb.ResourceReport{
		CpuCores: 4, CpuPermille: 137, Load1Centi: 52, Load5Centi: 47, Load15Centi: 40,
		MemTotalKib: 3_912_344, MemUsedKib: 1_204_112, SwapTotalKib: 1_048_572, SwapUsedKib: 20_480,
		Disks: []*pb.DiskUsage{
			{Mount: "/", TotalKib: 30_830_592, UsedKib: 9_412_608},
			{Mount: "/data", TotalKib: 122_546_176, UsedKib: 48_216_064},
		},
		Nets: []*pb.NetRate{
			{Iface: "eth0", RxBytesPerS: 18_342, TxBytesPerS: 4_210},
			{Iface: "wwan0", RxBytesPerS: 2_113, TxBytesPerS: 1_502},
		},
		Temps:      []*pb.Temperature{{Sensor: "cpu", DeciCelsius: 563}},
		UptimeS:    1_209_612,
		Container:  &pb.ContainerLimits{CpuMaxMilli: 2000, MemoryMaxKib: 524_288, MemoryCurrentKib: 81_244},
		IntervalMs: 10_000,
	}
}

func TestCompactExpandRoundTrip(t *testing.T) {
	const sentAtMs = 1_790_000_000_000
	hello := &pb.Hello{BootTimeS: sentAtMs/1000 - 1_209_612, ReportIntervalMs: 10_000}
	SetHelloStatics(hello, sample())

	r := CompactReport(sample(), hello)
	if r.CpuCores != 0 || r.MemTotalKib != 0 || r.UptimeS != 0 || r.Disks[0].TotalKib != 0 || r.Container.MemoryMaxKib != 0 {
		t.Fatalf("CompactReport kept static quantities: %v", r)
	}
	if got := ExpandReport(r, hello, sentAtMs); !proto.Equal(got, sample()) {
		t.Fatalf("ExpandReport(CompactReport(r)) = %v, want %v", got, sample())
	}

	// A quantity that changed since the hello travels, and wins.
	grown := sample()
	grown.Disks[1].TotalKib *= 2
	grown.MemTotalKib = 8_000_000
	r = CompactReport(proto.Clone(grown).(*pb.ResourceReport), hello)
	if r.Disks[1].TotalKib == 0 || r.MemTotalKib == 0 {
		t.Fatalf("CompactReport dropped changed quantities: %v", r)
	}
	if got := ExpandReport(r, hello, sentAtMs); !proto.Equal(got, grown) {
		t.Fatalf("ExpandReport = %v, want %v", got, grown)
	}

	// Without a hello the report goes whole.
	if got := CompactReport(sample(), nil); !proto.Equal(got, sample()) {
		t.Fatalf("CompactReport(nil hello) changed the report")
	}
}

// TestTypicalReportSize keeps the encoded size of a typical report, in
// its envelope, within the 120-byte budget.
func TestTypicalReportSize(t *testing.T) {
	hello := &pb.Hello{BootTimeS: 1_788_790_388, ReportIntervalMs: 10_000}
	SetHelloStatics(hello, sample())
	env := &pb.Envelope{
		NodeId: "truck-042", BootEpoch: 7, Seq: 123_456, SentAtMs: 1_790_000_000_000, Capability: CapabilityVersion,
		Body: &pb.Envelope_Report{Report: CompactReport(sample(), hello)},
	}
	b, err := Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := Marshal(&pb.Envelope{NodeId: "truck-042", BootEpoch: 7, Seq: 123_456, SentAtMs: 1_790_000_000_000,
		Capability: CapabilityVersion, Body: &pb.Envelope_Report{Report: sample()}})
	t.Logf("typical report envelope: %d bytes (%d with static quantities)", len(b), len(full))
	if len(b) > 120 {
		t.Errorf("typical report envelope = %d bytes, budget 120", len(b))
	}
}
