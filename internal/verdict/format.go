package verdict

import (
	"strconv"
	"time"
)

// trimFloat prints x with at most two decimals and no trailing zeros:
// 95, 99.9, 1.5.
func trimFloat(x float64) string {
	return strconv.FormatFloat(roundTo(x, 2), 'f', -1, 64)
}

func roundTo(x float64, decimals int) float64 {
	s := strconv.FormatFloat(x, 'f', decimals, 64)
	r, _ := strconv.ParseFloat(s, 64)
	return r
}

// percent prints a configured fraction as a percentage: 0.05 is "5%".
func percent(x float64) string { return trimFloat(x*100) + "%" }

// points prints a difference of rates in percentage points: 0.05 is "5".
func points(x float64) string { return trimFloat(x * 100) }

// ratio prints bad out of n as a percentage with one decimal at most:
// "35%", "0.7%".
func ratio(bad, n int64) string {
	if n == 0 {
		return "0%"
	}
	return strconv.FormatFloat(roundTo(100*float64(bad)/float64(n), 1), 'f', -1, 64) + "%"
}

// duration prints a latency to the millisecond: "812ms", "1.204s".
func duration(d time.Duration) string {
	if d < time.Millisecond {
		return d.String()
	}
	return d.Round(time.Millisecond).String()
}
