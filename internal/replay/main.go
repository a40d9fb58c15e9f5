package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/config"
)

// Exit codes of `immune replay`, as the action's.
const (
	ExitHealthy  = 0 // every file healthy
	ExitNot      = 1 // a file regressed or was inconclusive
	ExitBadInput = 2 // a flag or a file could not be read
)

const usage = `Usage: immune replay [flags] FILE...

Judges recorded looks at a rate metric offline, with the judge a watch runs
live. Each FILE is a CSV file with a header: t (seconds since the deploy, at
the end of the look), requests, errors (that look's increments); optional
control_requests and control_errors (the control's in the same look) make it a
canary's trace, judged against its control, with max-error-rate the allowed
increase in points. A look whose cells are empty had no data.

One line per file: its verdict (regressed, healthy or inconclusive), the
deciding look and why; with --json one object per line. Exit 0 when every file
is healthy, 1 when any is not, 2 for bad input.

Flags:
`

// Main runs `immune replay` with args (after "replay") and returns the
// exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("immune replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	flags := map[string]*string{}
	for _, f := range []struct{ name, def, desc string }{
		{"max-error-rate", "5%", "highest acceptable share of errors (e.g. 1% or 0.01); for a canary, the allowed increase over the control in points"},
		{"confidence", "99%", "how sure a regression must be"},
		{"min-requests", "20", "fewest requests (a canary's) that can clear the build; with fewer the verdict is inconclusive"},
		{"startup-timeout", "60s", "longest the metric may go without data at the start or the end of the watch (at least two intervals)"},
		{"interval", "", "time between looks (default: the trace's median gap)"},
		{"duration", "", "how long the watch lasted (default: up to the last look)"},
	} {
		flags[f.name] = fs.String(f.name, f.def, f.desc)
	}
	promote := fs.Bool("canary-promote-early", false, "promote a canary once it is shown no worse than the control")
	asJSON := fs.Bool("json", false, "one JSON object per line: file, verdict, t, look, reason")
	files, err := parseArgs(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return ExitHealthy
		}
		return ExitBadInput
	}
	o, err := options(flags, *promote)
	if err != nil {
		fmt.Fprintf(stderr, "immune replay: %v\n", err)
		return ExitBadInput
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "immune replay: no files given\n\n")
		fs.Usage()
		return ExitBadInput
	}
	results, errs := judgeFiles(ctx, files, o)
	out := bufio.NewWriter(stdout)
	code := ExitHealthy
	for i, r := range results {
		if errs[i] != nil {
			fmt.Fprintf(stderr, "immune replay: %v\n", errs[i])
			code = ExitBadInput
			continue
		}
		if r.Verdict != Healthy && code == ExitHealthy {
			code = ExitNot
		}
		if *asJSON {
			line, _ := json.Marshal(r)
			out.Write(append(line, '\n'))
			continue
		}
		fmt.Fprintf(out, "%s: %s at t=%ss (look %d): %s\n", r.File, r.Verdict, strconv.FormatFloat(r.T, 'f', -1, 64), r.Look, r.Reason)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "immune replay: %v\n", err)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "immune replay: cancelled; not every file was judged\n")
		return ExitBadInput
	}
	return code
}

// parseArgs parses flags wherever they stand among the files; after "--"
// everything is a file.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return files, nil
		}
		// flag stops at the first file, or after a "--" it consumed.
		if k := len(args) - len(rest); k > 0 && args[k-1] == "--" {
			return append(files, rest...), nil
		}
		files, args = append(files, rest[0]), rest[1:]
	}
}

// options checks the flags as the action checks its inputs.
func options(flags map[string]*string, promote bool) (Options, error) {
	o := Options{PromoteEarly: promote}
	var err error
	bad := func(name string, e error) error { return fmt.Errorf("--%s: %v", name, e) }
	if o.MaxErrorRate, err = config.ParseFraction(*flags["max-error-rate"]); err != nil {
		return o, bad("max-error-rate", err)
	}
	if o.MaxErrorRate <= 0 || o.MaxErrorRate >= 1 {
		return o, bad("max-error-rate", fmt.Errorf("got %q: expected a rate above 0%% and below 100%%", *flags["max-error-rate"]))
	}
	if o.Confidence, err = config.ParseFraction(*flags["confidence"]); err != nil {
		return o, bad("confidence", err)
	}
	if o.Confidence <= 0.5 || o.Confidence > 0.9999 {
		return o, bad("confidence", fmt.Errorf("got %q: expected a confidence above 50%% and at most 99.99%%", *flags["confidence"]))
	}
	n, err := strconv.ParseInt(strings.TrimSpace(*flags["min-requests"]), 10, 64)
	if err != nil || n < 1 {
		return o, bad("min-requests", fmt.Errorf("got %q: expected a whole number of at least 1", *flags["min-requests"]))
	}
	o.MinRequests = n
	if o.StartupTimeout, err = config.ParseDuration(*flags["startup-timeout"]); err != nil {
		return o, bad("startup-timeout", err)
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"interval", &o.Interval}, {"duration", &o.Duration}} {
		if s := *flags[d.name]; s != "" {
			if *d.to, err = config.ParseDuration(s); err != nil {
				return o, bad(d.name, err)
			}
			if *d.to == 0 {
				return o, bad(d.name, fmt.Errorf("got %q: expected a positive duration", s))
			}
		}
	}
	return o, nil
}

// judgeFiles reads and judges every file, on every core, and returns the
// results in the order of files (with an error where a file was bad).
func judgeFiles(ctx context.Context, files []string, o Options) ([]Result, []error) {
	results := make([]Result, len(files))
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			for i := range next {
				results[i], errs[i] = judgeFile(files[i], o)
			}
		})
	}
feed:
	for i := range files {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(files); j++ {
				errs[j] = fmt.Errorf("%s: not judged: %w", files[j], ctx.Err())
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results, errs
}

func judgeFile(name string, o Options) (Result, error) {
	f, err := os.Open(name)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	tr, err := Parse(name, f) // the CSV reader buffers
	if err != nil {
		return Result{}, err
	}
	return Judge(tr, o), nil
}
