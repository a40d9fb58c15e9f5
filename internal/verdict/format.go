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

// duration prints a latency to the millisecond: "812ms", "1.204s".
func duration(d time.Duration) string {
	if d < time.Millisecond {
		return d.String()
	}
	return d.Round(time.Millisecond).String()
}
