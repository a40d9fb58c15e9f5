package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCommandPassesTheCommitInTheEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	c := &Command{
		Script:  `echo "sha=$IMMUNE_SHA prev=$IMMUNE_PREVIOUS_SHA env=$IMMUNE_ENVIRONMENT reason=$IMMUNE_REASON stage=${IMMUNE_STAGE-unset}"; pwd`,
		Dir:     dir,
		Env:     []string{"PATH=" + os.Getenv("PATH")},
		Timeout: 10 * time.Second,
		Output:  &out,
	}
	// A value that would run a command if it were spliced into the script.
	req := Request{SHA: "$(touch pwned)", PreviousSHA: "abc1234", Environment: "prod; rm -rf /", Reason: ReasonRollback, Stage: "canary"}
	if err := c.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := "sha=$(touch pwned) prev=abc1234 env=prod; rm -rf / reason=rollback stage=canary\n" + dir + "\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("the SHA was executed as shell")
	}
	// Without a stage, IMMUNE_STAGE is not set at all.
	out.Reset()
	req.Stage = ""
	if err := c.Deploy(context.Background(), req); err != nil || !strings.Contains(out.String(), "stage=unset") {
		t.Errorf("without a stage: %v, output %q", err, out.String())
	}
}

func TestCommandFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		want    string
	}{
		{"non-zero exit", "echo deploying; exit 3", 10 * time.Second, "command exited with status 3"},
		{"missing program", "no-such-program-here", 10 * time.Second, "command exited with status 127"},
		{"killed by a signal", "kill -9 $$", 10 * time.Second, "command was killed by signal: killed"},
		{"timeout", "sleep 30", 200 * time.Millisecond, "command did not finish within 200ms; its process group was killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &Command{Script: tt.script, Dir: t.TempDir(), Env: []string{"PATH=" + os.Getenv("PATH")}, Timeout: tt.timeout, Grace: time.Second, Output: &bytes.Buffer{}}
			err := c.Deploy(context.Background(), Request{SHA: "abc"})
			if err == nil || err.Error() != tt.want {
				t.Errorf("Deploy() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestTimeoutKillsTheWholeGroup checks that children of the shell die too,
// including one that ignores SIGTERM.
func TestTimeoutKillsTheWholeGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	script := `sleep 60 & echo $! >> pids
(trap '' TERM; sleep 60) & echo $! >> pids
wait`
	c := &Command{Script: script, Dir: dir, Env: []string{"PATH=" + os.Getenv("PATH")}, Timeout: 300 * time.Millisecond, Grace: 300 * time.Millisecond, Output: &bytes.Buffer{}}
	err := c.Deploy(context.Background(), Request{SHA: "abc"})
	if err == nil || !strings.Contains(err.Error(), "process group was killed") {
		t.Fatalf("Deploy() = %v, want a timeout", err)
	}
	data, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(field)
		// The children are orphans once the shell is gone; a dead one stays
		// a zombie until whoever adopted it reaps it, which some
		// containers' first process never does. Give the kill a moment.
		deadline := time.Now().Add(5 * time.Second)
		for running(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if running(pid) {
			t.Errorf("child %d survived the timeout", pid)
		}
	}
}

// TestNoLateDeployAfterTheTimeout: a child that ignores SIGTERM and no
// longer holds the command's output outlives its shell; it is killed all
// the same, before Deploy returns, so it cannot finish a deploy after the
// rollback started.
func TestNoLateDeployAfterTheTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := `(trap '' TERM; sleep 1; echo late > late) </dev/null >/dev/null 2>&1 &
echo $! > pid
sleep 30`
	c := &Command{Script: script, Dir: dir, Env: []string{"PATH=" + os.Getenv("PATH")}, Timeout: 300 * time.Millisecond, Grace: 200 * time.Millisecond, Output: &bytes.Buffer{}}
	err := c.Deploy(context.Background(), Request{SHA: "abc"})
	if err == nil || !strings.Contains(err.Error(), "process group was killed") || strings.Contains(err.Error(), "still there") {
		t.Fatalf("Deploy() = %v, want a timeout with the whole group gone", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "pid"))
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(data))); pid == 0 || running(pid) {
		t.Errorf("the child %q that ignores SIGTERM is still running when Deploy returned", data)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, "late")); err == nil {
		t.Error("the child finished its deploy after Deploy returned")
	}
}

// TestCancelUsesTheShortGrace: a cancelled job gets CancelGrace, not the
// timeout's Grace, before SIGKILL.
func TestCancelUsesTheShortGrace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Command{Script: "trap '' TERM; sleep 30", Dir: t.TempDir(), Env: []string{"PATH=" + os.Getenv("PATH")},
		Timeout: time.Minute, Grace: 20 * time.Second, CancelGrace: 200 * time.Millisecond, Output: &bytes.Buffer{}}
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	err := c.Deploy(ctx, Request{SHA: "abc"})
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("Deploy() = %v, want cancelled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Deploy took %s to stop after a cancel: the 20s timeout grace was used", took)
	}
}

// running reports whether process pid exists and is not a zombie.
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestCommandCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Command{Script: "sleep 30", Dir: t.TempDir(), Env: []string{"PATH=" + os.Getenv("PATH")}, Timeout: time.Minute, Grace: time.Second, Output: &bytes.Buffer{}}
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	err := c.Deploy(ctx, Request{SHA: "abc"})
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("Deploy() = %v, want cancelled", err)
	}
}

// TestBackgroundProcessDoesNotHoldTheDeploy: a deploy that starts a daemon
// keeping its output open still finishes, after the grace period.
func TestBackgroundProcessDoesNotHoldTheDeploy(t *testing.T) {
	t.Parallel()
	c := &Command{Script: "sleep 2 & echo started", Dir: t.TempDir(), Env: []string{"PATH=" + os.Getenv("PATH")}, Timeout: 10 * time.Second, Grace: 200 * time.Millisecond, Output: &bytes.Buffer{}}
	if err := c.Deploy(context.Background(), Request{SHA: "abc"}); err != nil {
		t.Errorf("Deploy() = %v, want success", err)
	}
}
