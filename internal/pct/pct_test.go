package pct

import "testing"

func TestFormats(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{Of(0.05, 1), "5%"},
		{Of(0.05, 2), "5%"},
		{Of(0.999, 1), "99.9%"},
		{Of(0.0125, 2), "1.25%"},
		{Of(0.0125, 1), "1.2%"}, // half to even, as the log always rounded
		{Of(0.1, 0), "10%"},
		{Of(0, 1), "0%"},
		{Points(0.0025, 2), "0.25"},
		{Points(0.01, 2), "1"},
		{Ratio(7, 20, 1), "35%"},
		{Ratio(1, 3, 2), "33.33%"},
		{Ratio(1, 3, 1), "33.3%"},
		{Ratio(0, 0, 1), "0%"},
		{Ratio(120, 100, 1), "120%"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}
