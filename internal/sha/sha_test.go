package sha

import "testing"

const full = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"

func TestValidity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in                  string
		hex, isFull, abbrev bool
	}{
		{full, true, true, true},
		{"4D8B3F2", true, false, true},
		{"4d8b3f", true, false, false},
		{full + "0", true, false, false},
		{full + full[:24], true, true, true},
		{"", false, false, false},
		{"main", false, false, false},
		{"4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6g", false, false, false},
		{"4d8b3f2\n::stop-commands::x", false, false, false},
	}
	for _, tt := range tests {
		if got := IsHex(tt.in); got != tt.hex {
			t.Errorf("IsHex(%q) = %v, want %v", tt.in, got, tt.hex)
		}
		if got := IsFull(tt.in); got != tt.isFull {
			t.Errorf("IsFull(%q) = %v, want %v", tt.in, got, tt.isFull)
		}
		if got := IsAbbrev(tt.in); got != tt.abbrev {
			t.Errorf("IsAbbrev(%q) = %v, want %v", tt.in, got, tt.abbrev)
		}
	}
}

func TestShortAndZero(t *testing.T) {
	t.Parallel()
	if got := Short(full); got != "4d8b3f2" {
		t.Errorf("Short(full) = %q", got)
	}
	if got := Short("v1.2.3"); got != "v1.2.3" {
		t.Errorf("Short(tag) = %q", got)
	}
	if !IsZero("0000000000000000000000000000000000000000") || IsZero("") || IsZero(full) {
		t.Error("IsZero is wrong")
	}
}

func TestSame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{full, full, true},
		{full, "4D8B3F2", true},
		{"4d8b3f2", full, true},
		{" " + full + "\n", full, true},
		{"4d8b3f", full, false},
		{"", "", false},
		{"v1", "v1", true},
		{full, "1a2b3c4d", false},
	}
	for _, tt := range tests {
		if got := Same(tt.a, tt.b); got != tt.want {
			t.Errorf("Same(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestIsRef(t *testing.T) {
	t.Parallel()
	for _, good := range []string{full, "v1.2.3", "release/2026-11", "main"} {
		if !IsRef(good) {
			t.Errorf("IsRef(%q) = false", good)
		}
	}
	for _, bad := range []string{"", "-rf", "a b", "$(reboot)", "a;b", "x`y`", "main\n::stop-commands::x"} {
		if IsRef(bad) {
			t.Errorf("IsRef(%q) = true", bad)
		}
	}
}
