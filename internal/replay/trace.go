package replay

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Trace is one file's looks, in order.
type Trace struct {
	// Name is the file's name, as given.
	Name string
	// Canary reports that the file has the control's columns: the looks
	// are a canary's beside its control.
	Canary bool
	Looks  []Look
}

// Look is one line of a trace: one look's increments.
type Look struct {
	// Line is the line of the file it came from (the header is line 1).
	Line int
	// T is when the look ended, in seconds since the deploy.
	T float64
	// Requests and Errors are the look's increments; NoData says the look
	// could not read them (both cells empty).
	Requests, Errors int64
	NoData           bool
	// The control's, for a canary.
	ControlRequests, ControlErrors int64
	ControlNoData                  bool
}

// columns of a trace, by header name.
const (
	colT               = "t"
	colRequests        = "requests"
	colErrors          = "errors"
	colControlRequests = "control_requests"
	colControlErrors   = "control_errors"
)

// InputError is a problem with a trace, at a line of it.
type InputError struct {
	File string
	Line int // 0: the file as a whole
	Err  error
}

func (e *InputError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

// Parse reads a trace: a CSV file whose header names its columns, t,
// requests and errors, and optionally control_requests and control_errors
// (both or neither), in any order; then one line per look. t is in
// seconds since the deploy (at the end of the look), strictly increasing;
// the counts are whole numbers, a look's errors at most its requests. A
// look whose requests and errors are both empty had no data. Anything else
// is an error naming the file and line.
func Parse(name string, r io.Reader) (*Trace, error) {
	fail := func(line int, format string, args ...any) error {
		return &InputError{File: name, Line: line, Err: fmt.Errorf(format, args...)}
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fail(0, "empty file: expected a header line with t,requests,errors")
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	at := map[string]int{colT: -1, colRequests: -1, colErrors: -1, colControlRequests: -1, colControlErrors: -1}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		j, known := at[h]
		switch {
		case !known:
			return nil, fail(1, "unknown column %q: the columns are t, requests, errors, and for a canary control_requests, control_errors", h)
		case j >= 0:
			return nil, fail(1, "column %q appears twice", h)
		}
		at[h] = i
	}
	for _, c := range []string{colT, colRequests, colErrors} {
		if at[c] < 0 {
			return nil, fail(1, "no column %q: the header must name t, requests and errors", c)
		}
	}
	if (at[colControlRequests] < 0) != (at[colControlErrors] < 0) {
		return nil, fail(1, "a canary's trace needs both control_requests and control_errors")
	}
	tr := &Trace{Name: name, Canary: at[colControlRequests] >= 0, Looks: make([]Look, 0, 256)}
	width := len(header)
	var total, controlTotal int64 // requests so far, which the judge adds up
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != width {
			return nil, fail(line, "%d fields, but the header has %d", len(rec), width)
		}
		l := Look{Line: line}
		if l.T, err = seconds(rec[at[colT]]); err != nil {
			return nil, fail(line, "t: %v", err)
		}
		if n := len(tr.Looks); n > 0 && l.T <= tr.Looks[n-1].T {
			return nil, fail(line, "t: %s is not after the previous look's %s: looks must be in order of time", strings.TrimSpace(rec[at[colT]]), strconv.FormatFloat(tr.Looks[n-1].T, 'g', -1, 64))
		}
		if l.Requests, l.Errors, l.NoData, err = counts(rec[at[colRequests]], rec[at[colErrors]], colRequests, colErrors); err != nil {
			return nil, fail(line, "%v", err)
		}
		if tr.Canary {
			if l.ControlRequests, l.ControlErrors, l.ControlNoData, err = counts(rec[at[colControlRequests]], rec[at[colControlErrors]], colControlRequests, colControlErrors); err != nil {
				return nil, fail(line, "%v", err)
			}
		}
		if l.Requests > math.MaxInt64-total || l.ControlRequests > math.MaxInt64-controlTotal {
			return nil, fail(line, "the requests so far add up to more than %d, more than a watch can count", int64(math.MaxInt64))
		}
		total, controlTotal = total+l.Requests, controlTotal+l.ControlRequests
		tr.Looks = append(tr.Looks, l)
	}
	if len(tr.Looks) == 0 {
		return nil, fail(0, "no looks: expected lines of t,requests,errors after the header")
	}
	return tr, nil
}

// csvError names the line of a malformed CSV record.
func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &InputError{File: name, Line: pe.Line, Err: pe.Err}
	}
	return &InputError{File: name, Err: err}
}

// seconds parses a look's time: a finite number of seconds, at least 0.
func seconds(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e12 {
		return 0, fmt.Errorf("%q is not a number of seconds since the deploy, like 15 or 97.5", s)
	}
	return v, nil
}

// counts parses a look's requests and errors: whole numbers, errors at
// most requests; both empty is a look without data.
func counts(req, errs, reqName, errName string) (n, x int64, noData bool, err error) {
	req, errs = strings.TrimSpace(req), strings.TrimSpace(errs)
	if req == "" && errs == "" {
		return 0, 0, true, nil
	}
	if n, err = count(req, reqName); err != nil {
		return 0, 0, false, err
	}
	if x, err = count(errs, errName); err != nil {
		return 0, 0, false, err
	}
	if x > n {
		return 0, 0, false, fmt.Errorf("%s: %d errors of %d requests: a look's errors cannot exceed its requests", errName, x, n)
	}
	return n, x, false, nil
}

func count(s, name string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%s: empty while the other count is not (leave both empty for a look without data)", name)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s: %q is not a whole number of at least 0", name, s)
	}
	return v, nil
}
