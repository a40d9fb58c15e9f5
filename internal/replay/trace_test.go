package replay

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		canary   bool
		looks    []Look
	}{
		{"plain", "t,requests,errors\n15,250,1\n30,250,0\n", false,
			[]Look{{Line: 2, T: 15, Requests: 250, Errors: 1}, {Line: 3, T: 30, Requests: 250}}},
		{"columns in any order, spaces, a BOM, CRLF and blank lines", "\ufeffErrors, t ,requests\r\n1,15,250\r\n\r\n0,30.5,250\r\n", false,
			[]Look{{Line: 2, T: 15, Requests: 250, Errors: 1}, {Line: 4, T: 30.5, Requests: 250}}},
		{"a look without data", "t,requests,errors\n15,,\n30,500,3\n", false,
			[]Look{{Line: 2, T: 15, NoData: true}, {Line: 3, T: 30, Requests: 500, Errors: 3}}},
		{"a canary", "t,requests,errors,control_requests,control_errors\n15,25,1,225,2\n30,25,0,,\n", true,
			[]Look{{Line: 2, T: 15, Requests: 25, Errors: 1, ControlRequests: 225, ControlErrors: 2}, {Line: 3, T: 30, Requests: 25, ControlNoData: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse("x.csv", strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tr.Canary != tc.canary || len(tr.Looks) != len(tc.looks) {
				t.Fatalf("canary %v, %d looks: %+v", tr.Canary, len(tr.Looks), tr.Looks)
			}
			for i, l := range tr.Looks {
				if l != tc.looks[i] {
					t.Errorf("look %d: %+v, want %+v", i, l, tc.looks[i])
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "x.csv: empty file: expected a header line with t,requests,errors"},
		{"t,requests\n", `x.csv:1: no column "errors": the header must name t, requests and errors`},
		{"t,requests,errors,latency\n", `x.csv:1: unknown column "latency"`},
		{"t,requests,errors,t\n", `x.csv:1: column "t" appears twice`},
		{"t,requests,errors,control_requests\n", "x.csv:1: a canary's trace needs both control_requests and control_errors"},
		{"t,requests,errors\n", "x.csv: no looks"},
		{"t,requests,errors\n15,250,1\n30,250\n", "x.csv:3: 2 fields, but the header has 3"},
		{"t,requests,errors\n15,250,1\n15,250,1\n", "x.csv:3: t: 15 is not after the previous look's 15"},
		{"t,requests,errors\n-1,250,1\n", `x.csv:2: t: "-1" is not a number of seconds`},
		{"t,requests,errors\nNaN,250,1\n", `x.csv:2: t: "NaN" is not a number of seconds`},
		{"t,requests,errors\n15,2.5,1\n", `x.csv:2: requests: "2.5" is not a whole number of at least 0`},
		{"t,requests,errors\n15,250,-1\n", `x.csv:2: errors: "-1" is not a whole number of at least 0`},
		{"t,requests,errors\n15,10,11\n", "x.csv:2: errors: 11 errors of 10 requests: a look's errors cannot exceed its requests"},
		{"t,requests,errors\n15,,3\n", "x.csv:2: requests: empty while the other count is not"},
		{"t,requests,errors,control_requests,control_errors\n15,10,1,5,6\n", "x.csv:2: control_errors: 6 errors of 5 requests"},
		{"t,requests,errors\n15,9223372036854775807,0\n30,1,0\n", "x.csv:3: the requests so far add up to more than 9223372036854775807"},
		{"t,requests,errors\n15,\"250,1\n", "x.csv:2: extraneous or missing \" in quoted-field"},
	}
	for _, tc := range tests {
		_, err := Parse("x.csv", strings.NewReader(tc.in))
		var ie *InputError
		if err == nil || !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want an InputError starting %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParse: any input is a trace or an error naming the file; a trace
// keeps its promises and the judge takes it.
func FuzzParse(f *testing.F) {
	f.Add("t,requests,errors\n15,250,1\n30,250,0\n")
	f.Add("t,requests,errors,control_requests,control_errors\n15,25,1,225,2\n30,25,0,,\n")
	f.Add("errors,t,requests\r\n1,15,250\r\n\r\n,30.5,\r\n")
	f.Add("t,requests,errors\n15,9223372036854775807,9223372036854775807\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := Parse("f.csv", strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		var total, control int64
		for i, l := range tr.Looks {
			if l.Errors > l.Requests || l.Errors < 0 || l.ControlErrors > l.ControlRequests || l.ControlErrors < 0 {
				t.Fatalf("look %d: %+v", i, l)
			}
			if i > 0 && l.T <= tr.Looks[i-1].T {
				t.Fatalf("look %d at %v, after %v", i, l.T, tr.Looks[i-1].T)
			}
			if total+l.Requests < total || control+l.ControlRequests < control {
				t.Fatalf("the totals overflow at look %d", i)
			}
			total, control = total+l.Requests, control+l.ControlRequests
		}
		for _, promote := range []bool{false, true} {
			r := Judge(tr, Options{MaxErrorRate: 0.01, Confidence: 0.99, MinRequests: 20, PromoteEarly: promote})
			if r.Verdict != Healthy && r.Verdict != Regressed && r.Verdict != Inconclusive {
				t.Fatalf("verdict %q", r.Verdict)
			}
			if r.Look < 1 || r.Look > len(tr.Looks) {
				t.Fatalf("look %d of %d", r.Look, len(tr.Looks))
			}
		}
	})
}
