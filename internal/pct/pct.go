// Package pct writes shares as people read them: 0.05 is "5%", 0.0123 is
// "1.2%" or "1.23%". It is the one formatter of percentages, for the log,
// the verdicts' reasons and the report alike.
package pct

import (
	"strconv"
	"strings"
)

// Of writes a fraction as a percentage with at most decimals decimals, and
// no trailing zeros: Of(0.05, 1) is "5%", Of(0.0125, 2) is "1.25%".
func Of(fraction float64, decimals int) string { return format(fraction*100, decimals) + "%" }

// Points writes a difference of fractions in percentage points, without
// the unit: Points(0.05, 2) is "5".
func Points(fraction float64, decimals int) string { return format(fraction*100, decimals) }

// Ratio writes bad out of n as a percentage: Ratio(7, 20, 1) is "35%"; no
// requests at all is "0%".
func Ratio(bad, n int64, decimals int) string {
	if n == 0 {
		return "0%"
	}
	return format(100*float64(bad)/float64(n), decimals) + "%"
}

func format(percent float64, decimals int) string {
	s := strconv.FormatFloat(percent, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	}
	return s
}
