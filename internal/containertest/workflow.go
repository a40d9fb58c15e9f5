package containertest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Workflow is the part of a GitHub Actions workflow file that the tests run.
type Workflow struct {
	Jobs map[string]struct {
		Steps []Step `yaml:"steps"`
	} `yaml:"jobs"`
}

// Step is one step of a job.
type Step struct {
	ID   string            `yaml:"id"`
	Name string            `yaml:"name"`
	If   string            `yaml:"if"`
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	With map[string]string `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

// LoadWorkflow reads a workflow file.
func LoadWorkflow(path string) (*Workflow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var w Workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &w, nil
}

// Step returns the step of job with the given id.
func (w *Workflow) Step(job, id string) (Step, error) {
	j, ok := w.Jobs[job]
	if !ok {
		return Step{}, fmt.Errorf("no job %q", job)
	}
	for _, s := range j.Steps {
		if s.ID == id {
			return s, nil
		}
	}
	return Step{}, fmt.Errorf("job %q has no step with id %q", job, id)
}

var expression = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)

// Expand replaces every ${{ name }} in s with values[name]. It evaluates
// nothing else: an expression that is not a plain name in values is an error,
// so a test never runs a step with a value it did not choose.
func Expand(s string, values map[string]string) (string, error) {
	var missing []string
	out := expression.ReplaceAllStringFunc(s, func(m string) string {
		name := expression.FindStringSubmatch(m)[1]
		v, ok := values[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for ${{ %s }}", strings.Join(missing, " }}, ${{ "))
	}
	return out, nil
}

// StepRunner runs `run:` steps of a workflow the way the runner runs them on
// ubuntu-latest: `bash --noprofile --norc -eo pipefail` on the script, with the
// step's env (expressions expanded from Values), GITHUB_OUTPUT and
// GITHUB_STEP_SUMMARY files, in Dir. The outputs of each step become values
// (steps.<id>.outputs.<name>) for the steps after it.
type StepRunner struct {
	Dir    string            // the checkout
	Values map[string]string // github.sha, github.ref_name, ...; steps.<id>.outputs.<name> are added
	Env    []string          // the runner's environment (GITHUB_SHA, PATH, HOME, ...)
}

// StepResult is what a step left behind.
type StepResult struct {
	Outputs map[string]string
	Summary string
	Log     string // standard output and error
}

// Run runs one step. A step that exits non-zero returns its result and an
// error.
func (r *StepRunner) Run(ctx context.Context, s Step) (StepResult, error) {
	if s.Run == "" {
		return StepResult{}, fmt.Errorf("step %q has no run: script (uses: %s)", s.ID, s.Uses)
	}
	if expression.MatchString(s.Run) {
		// The runner splices expressions into the script text before bash sees
		// it; ours take values from env: only, which is safe and testable.
		return StepResult{}, fmt.Errorf("step %q has an expression inside its script; pass it through env:", s.ID)
	}
	tmp, err := os.MkdirTemp("", "step-")
	if err != nil {
		return StepResult{}, err
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "script.sh")
	output := filepath.Join(tmp, "output")
	summary := filepath.Join(tmp, "summary")
	for _, f := range []string{output, summary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return StepResult{}, err
		}
	}
	if err := os.WriteFile(script, []byte(s.Run), 0o644); err != nil {
		return StepResult{}, err
	}
	env := append([]string{}, r.Env...)
	names := make([]string, 0, len(s.Env))
	for k := range s.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, err := Expand(s.Env[k], r.Values)
		if err != nil {
			return StepResult{}, fmt.Errorf("step %q, env %s: %w", s.ID, k, err)
		}
		env = append(env, k+"="+v)
	}
	env = append(env, "GITHUB_OUTPUT="+output, "GITHUB_STEP_SUMMARY="+summary)

	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Dir = r.Dir
	cmd.Env = env
	log, runErr := cmd.CombinedOutput()
	res := StepResult{Log: string(log)}
	sum, _ := os.ReadFile(summary)
	res.Summary = string(sum)
	out, err := os.ReadFile(output)
	if err != nil {
		return res, err
	}
	res.Outputs, err = ParseOutputs(string(out))
	if err != nil {
		return res, fmt.Errorf("step %q: GITHUB_OUTPUT: %w", s.ID, err)
	}
	if runErr != nil {
		return res, fmt.Errorf("step %q: %v\n%s", s.ID, runErr, log)
	}
	if s.ID != "" {
		if r.Values == nil {
			r.Values = map[string]string{}
		}
		for k, v := range res.Outputs {
			r.Values["steps."+s.ID+".outputs."+k] = v
		}
	}
	return res, nil
}

// ParseOutputs reads a GITHUB_OUTPUT file: name=value lines and
// name<<DELIMITER blocks.
func ParseOutputs(s string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if name, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(name, "=") {
			var lines []string
			closed := false
			for sc.Scan() {
				if sc.Text() == delim {
					closed = true
					break
				}
				lines = append(lines, sc.Text())
			}
			if !closed {
				return nil, fmt.Errorf("%s: no closing %s", name, delim)
			}
			out[name] = strings.Join(lines, "\n")
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %q is neither name=value nor name<<DELIMITER", line)
		}
		out[name] = value
	}
	return out, sc.Err()
}
