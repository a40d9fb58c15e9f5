package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(main string, settings ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/immune-cd/immune", Version: main}}
		for i := 0; i+1 < len(settings); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return info
	}
	tests := []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"stamped wins", "v1.2.3", vcs("v1.0.0"), "v1.2.3"},
		{"stamped without build info", "v1.3.0-rc.1", nil, "v1.3.0-rc.1"},
		{"go install at a tag", "", vcs("v1.2.3"), "v1.2.3"},
		{"pseudo-version", "", vcs("v1.2.4-0.20260101120000-abcdef123456"), "v1.2.4-0.20260101120000-abcdef123456"},
		{"local build with VCS information", "", vcs("(devel)", "vcs", "git", "vcs.revision", "abcdef1234567890abcdef1234567890abcdef12", "vcs.modified", "false"), "devel+abcdef123456"},
		{"modified tree", "", vcs("(devel)", "vcs.revision", "abcdef1234567890abcdef1234567890abcdef12", "vcs.modified", "true"), "devel+abcdef123456-dirty"},
		{"no VCS information (-buildvcs=false, or a Docker build without .git)", "", vcs("(devel)"), "devel"},
		{"empty main version", "", vcs(""), "devel"},
		{"no build information", "", nil, "devel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.stamped, tt.info); got != tt.want {
				t.Errorf("resolve(%q, ...) = %q, want %q", tt.stamped, got, tt.want)
			}
		})
	}
}

func TestStringIsNeverEmpty(t *testing.T) {
	if String() == "" {
		t.Error("String() is empty")
	}
}
