package spec

import (
	"strings"
	"testing"
)

func TestParseMilliCPU(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"250m", 250, ""},
		{"1", 1000, ""},
		{"0.5", 500, ""},
		{".25", 250, ""},
		{"1.5", 1500, ""},
		{"16", 16000, ""},
		{"0", 0, ""},
		{"0.0005", 0, "finer than 1m"},
		{"1.5m", 0, "finer than 1m"},
		{"2 cores", 0, "use cores like 2 or 0.5"},
		{"500M", 0, "use cores like 2 or 0.5"},
		{"-1", 0, "use cores"},
		{"1e3", 0, "use cores"},
		{"1/2", 0, "use cores"},
		{"", 0, "use cores"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseMilliCPU(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMilliCPU(%q) = %d, %v, want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMilliCPU(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"64Mi", 64 << 20, ""},
		{"1Gi", 1 << 30, ""},
		{"1.5Gi", 3 << 29, ""},
		{"512Ki", 512 << 10, ""},
		{"1G", 1e9, ""},
		{"64M", 64e6, ""},
		{"10k", 10000, ""},
		{"2Ti", 2 << 40, ""},
		{"123", 123, ""},
		{"0.1Ki", 103, ""}, // a fraction of a byte rounds up
		{"64MB", 0, "use a quantity like 64Mi or 64M"},
		{"1GB", 0, "use a quantity like 1Gi or 1G"},
		{"512mb", 0, "use a quantity like 512Mi or 512M"},
		{"8KB", 0, "use a quantity like 8Ki or 8k"},
		{"64 Mi", 0, "remove the space: 64Mi"},
		{"lots", 0, "use a quantity like 64Mi or 64M"},
		{"64m", 0, "use a quantity like 64Mi or 64M"},
		{"2Ei", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseBytes(%q) = %d, %v, want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatQuantities(t *testing.T) {
	cpu := map[int64]string{250: "250m", 1000: "1", 1500: "1.5", 16000: "16", 1: "1m", 1250: "1250m"}
	for in, want := range cpu {
		if got := FormatMilliCPU(in); got != want {
			t.Errorf("FormatMilliCPU(%d) = %q, want %q", in, got, want)
		}
		if back, err := ParseMilliCPU(want); err != nil || back != in {
			t.Errorf("ParseMilliCPU(FormatMilliCPU(%d)) = %d, %v", in, back, err)
		}
	}
	mem := map[int64]string{64 << 20: "64Mi", 3 << 29: "1.5Gi", 512: "512", 1 << 40: "1Ti", 1e9: "953.67Mi"}
	for in, want := range mem {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestJurisdictionAllowed(t *testing.T) {
	tests := []struct {
		name     string
		allowed  []string
		site     string
		wantRule string
		wantOK   bool
	}{
		{"no constraint", nil, "US", "", true},
		{"exact", []string{"DE"}, "DE", "DE", true},
		{"exact before zone", []string{"EU", "DE"}, "DE", "DE", true},
		{"zone member", []string{"EU"}, "FR", "EU", true},
		{"eea only member", []string{"EU", "EEA"}, "NO", "EEA", true},
		{"outside", []string{"DE", "EU"}, "US", "", false},
		{"site without jurisdiction", []string{"EU"}, "", "", false},
		{"literal zone site", []string{"EU"}, "EU", "EU", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, ok := JurisdictionAllowed(tt.allowed, tt.site)
			if rule != tt.wantRule || ok != tt.wantOK {
				t.Errorf("JurisdictionAllowed(%v, %q) = %q, %v, want %q, %v", tt.allowed, tt.site, rule, ok, tt.wantRule, tt.wantOK)
			}
		})
	}
}

func TestSelectorMatches(t *testing.T) {
	labels := map[string]string{"zone": "a", "arch": "arm64"}
	tests := []struct {
		name string
		sel  *NodeSelector
		want bool
	}{
		{"nil", nil, true},
		{"match labels", &NodeSelector{MatchLabels: map[string]string{"zone": "a"}}, true},
		{"match labels differ", &NodeSelector{MatchLabels: map[string]string{"zone": "b"}}, false},
		{"in", &NodeSelector{MatchExpressions: []Requirement{{Key: "arch", Operator: OpIn, Values: []string{"amd64", "arm64"}}}}, true},
		{"notin absent key", &NodeSelector{MatchExpressions: []Requirement{{Key: "gpu", Operator: OpNotIn, Values: []string{"x"}}}}, true},
		{"notin present", &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: OpNotIn, Values: []string{"a"}}}}, false},
		{"exists", &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: OpExists}}}, true},
		{"does not exist", &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: OpDoesNotExist}}}, false},
		{"unknown operator", &NodeSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: "Gt"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Matches(labels); got != tt.want {
				t.Errorf("%+v.Matches(%v) = %v, want %v", tt.sel, labels, got, tt.want)
			}
		})
	}
}
