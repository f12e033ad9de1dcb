package spec

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Quantity is a Kubernetes-style quantity as written: a decimal number
// with an optional suffix. CPU takes cores or millicores ("2", "0.5",
// "250m"); bytes take binary (Ki Mi Gi Ti Pi Ei) or decimal (k M G T P E)
// suffixes ("64Mi", "1G").
type Quantity string

// MilliCPU parses q as CPU and returns millicores.
func (q Quantity) MilliCPU() (int64, error) { return ParseMilliCPU(string(q)) }

// Bytes parses q as a byte count.
func (q Quantity) Bytes() (int64, error) { return ParseBytes(string(q)) }

// maxQuantity keeps quantities and their sums far from int64 overflow.
const maxQuantity = 1 << 60

var byteSuffixes = map[string]int64{
	"":  1,
	"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}

// ParseMilliCPU parses a CPU quantity into millicores.
func ParseMilliCPU(s string) (int64, error) {
	v, fix := parseMilliCPU(s)
	if fix != "" {
		return 0, fmt.Errorf("cpu quantity %q: %s", s, fix)
	}
	return v, nil
}

// ParseBytes parses a byte quantity. A fraction of a byte rounds up, as in
// Kubernetes.
func ParseBytes(s string) (int64, error) {
	v, fix := parseBytes(s)
	if fix != "" {
		return 0, fmt.Errorf("byte quantity %q: %s", s, fix)
	}
	return v, nil
}

const cpuFix = "use cores like 2 or 0.5, or millicores like 250m"

func parseMilliCPU(s string) (int64, string) {
	num, suffix := splitQuantity(s)
	scale := int64(1000)
	switch suffix {
	case "":
	case "m":
		scale = 1
	default:
		return 0, cpuFix
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || !validNumber(num) {
		return 0, cpuFix
	}
	r.Mul(r, big.NewRat(scale, 1))
	if !r.IsInt() {
		return 0, "finer than 1m: " + cpuFix
	}
	if !r.Num().IsInt64() || r.Num().Int64() > maxQuantity {
		return 0, "too large"
	}
	return r.Num().Int64(), ""
}

func parseBytes(s string) (int64, string) {
	num, suffix := splitQuantity(s)
	mult, ok := byteSuffixes[suffix]
	r, okNum := new(big.Rat).SetString(num)
	if !ok || !okNum || !validNumber(num) {
		return 0, bytesFix(s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !r.IsInt() {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() || n.Int64() > maxQuantity {
		return 0, "too large"
	}
	return n.Int64(), ""
}

// bytesFix suggests the quantity the author probably meant: "64MB" ->
// "64Mi or 64M".
func bytesFix(s string) string {
	num, suffix := splitQuantity(strings.TrimSpace(s))
	if strings.ContainsAny(s, " \t") && validNumber(num) {
		return "remove the space: " + strings.Join(strings.Fields(s), "")
	}
	if !validNumber(num) {
		num = "64"
		suffix = "Mi"
	}
	u := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "b"), "i")
	switch strings.ToUpper(u) {
	case "K":
		return fmt.Sprintf("use a quantity like %sKi or %sk", num, num)
	case "M", "G", "T", "P", "E":
		u = strings.ToUpper(u)
		return fmt.Sprintf("use a quantity like %s%si or %s%s", num, u, num, u)
	}
	return "use a quantity like 64Mi or 64M"
}

// splitQuantity splits at the first letter.
func splitQuantity(s string) (num, suffix string) {
	i := strings.IndexFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ' ' })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// validNumber accepts only plain decimals ("2", "0.5", ".5"); big.Rat
// alone would also take "1/2" and exponents.
func validNumber(s string) bool {
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// FormatMilliCPU writes millicores as cores ("2", "1.5") or millicores
// ("250m").
func FormatMilliCPU(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	if m%100 == 0 && m > 1000 {
		return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// FormatBytes writes a byte count with the largest binary suffix that
// keeps it readable: "64Mi", "1.5Gi", "512".
func FormatBytes(b int64) string {
	if b < 1024 && b > -1024 {
		return strconv.FormatInt(b, 10)
	}
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	v := float64(b)
	for i, u := range units {
		v /= 1024
		if math.Abs(v) < 1024 || i == len(units)-1 {
			return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + u
		}
	}
	return strconv.FormatInt(b, 10)
}
