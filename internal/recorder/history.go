package recorder

import (
	"fmt"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/sha"
)

// Origin says who made a deployment.
type Origin int

const (
	// Foreign deployments were made by hand or by another tool.
	Foreign Origin = iota
	// Ours carry immune's payload.
	Ours
	// Job deployments are the ones GitHub Actions makes when a job that
	// names `environment:` starts: ref is the branch or tag the run was for,
	// not the deployed SHA, and the payload is empty. Their statuses follow
	// the job, not the build, so no rule reads them.
	Job
)

func (o Origin) String() string {
	switch o {
	case Ours:
		return "immune's"
	case Job:
		return "made by GitHub Actions for a job that names the environment"
	}
	return "made by hand or by another tool"
}

// OriginOf classifies a deployment.
func OriginOf(d ghapi.Deployment) Origin {
	if _, ok := PayloadOf(d); ok {
		return Ours
	}
	if len(d.Payload) == 0 && d.Ref != "" && !sha.Same(d.Ref, d.SHA) {
		return Job
	}
	return Foreign
}

// wasHealthy reports whether one of immune's deployments was watched
// healthy (a shadow run's success after a regression was not). GitHub marks earlier successful deployments "inactive" when a
// newer one succeeds (the job deployments it makes do, with auto_inactive
// left on), and it only ever does that to deployments whose state was
// success; immune itself never sets inactive.
func wasHealthy(d ghapi.Deployment) bool {
	if strings.HasPrefix(d.LatestDescription, Shadow) {
		return false // it regressed, and a shadow run let it be
	}
	return State(d.LatestState) == StateSuccess || State(d.LatestState) == StateInactive
}

// ran reports whether one of immune's deployments got as far as its
// command: it is not waiting, and it did not end before deploying.
func ran(d ghapi.Deployment) bool {
	switch State(d.LatestState) {
	case StateQueued, StatePending:
		return false
	}
	return !strings.HasPrefix(d.LatestDescription, NotDeployed)
}

// started reports whether a deployment that is not immune's, or one of
// immune's, has gone live or is going live: a newer one that did supersedes
// an older deploy. Waiting (queued, pending) ones have not.
func started(d ghapi.Deployment) bool {
	if OriginOf(d) == Ours {
		return ran(d)
	}
	switch State(d.LatestState) {
	case StateQueued, StatePending:
		return false
	}
	return true
}

// holds reports whether one of immune's deployments still holds the
// environment at now: queued or in progress, within its run's hold.
func holds(d ghapi.Deployment, now time.Time) bool {
	p, ok := PayloadOf(d)
	if !ok {
		return false
	}
	switch State(d.LatestState) {
	case StateQueued, StateInProgress, StatePending:
	default:
		return false
	}
	return now.Before(d.CreatedAt.Add(p.Hold()))
}

// Deployment is one deployment of the environment, as the history rules
// read it.
type Deployment struct {
	ID        int64
	SHA       string
	Task      Task
	CreatedAt time.Time
	Origin    Origin
	// Payload is immune's, when Origin is Ours.
	Payload Payload
	// State and Description are its latest status's ("" when it has none,
	// or it was not read).
	State       State
	Description string
}

// deploymentOf reads a deployment from GitHub's.
func deploymentOf(d ghapi.Deployment) Deployment {
	p, _ := PayloadOf(d)
	return Deployment{
		ID: d.ID, SHA: d.SHA, Task: Task(d.Task), CreatedAt: d.CreatedAt, Origin: OriginOf(d), Payload: p,
		State: State(d.LatestState), Description: d.LatestDescription,
	}
}

// Line is whether the line is stopped, read from the newest deployment of
// the environment that is not a job's.
type Line struct {
	Stopped bool
	// Newest is the deployment the verdict rests on; zero when the
	// environment has none.
	Newest Deployment
	// BadSHA is the commit that stopped the line ("" when it cannot be
	// told, or the line is clear).
	BadSHA string
	// How says in words what stopped it: "was rolled back from a to b".
	How string
	// RunURL links to the run that stopped it, when known.
	RunURL string
}

// LineOf reads the line from the deployments of an environment that are not
// jobs', newest first. The line rests on the newest of them that is not a
// bisection step, or on a newer step that named the culprit; those must
// carry their latest status. Older ones are needed only when that one is a
// rollback made without immune's payload: the commit it replaced is the
// newest older deployment of another commit.
func LineOf(history []ghapi.Deployment) Line {
	i := decisive(history)
	if i < 0 {
		if len(history) == 0 {
			return Line{}
		}
		return Line{Newest: deploymentOf(history[0]), RunURL: history[0].LogURL}
	}
	history = history[i:]
	d := history[0]
	l := Line{Newest: deploymentOf(d), RunURL: d.LogURL}
	p, ours := PayloadOf(d)
	if ours && p.RunURL != "" {
		l.RunURL = p.RunURL
	}
	state := State(d.LatestState)
	inconclusive := state == StateError && strings.HasPrefix(d.LatestDescription, Inconclusive)
	failed := state == StateFailure || state == StateError && !inconclusive
	switch {
	case Task(d.Task) == TaskRollback:
		l.Stopped = true
		kind := "was rolled back"
		switch {
		case ours && p.Manual:
			kind = "was rolled back by hand"
		case !ours:
			kind = "was rolled back by hand or by another tool"
		}
		from := p.RolledBackFrom
		if !ours {
			from = replaced(history)
		}
		l.BadSHA = from
		if from == "" {
			l.How = fmt.Sprintf("%s to %s", kind, sha.Short(d.SHA))
		} else {
			l.How = fmt.Sprintf("%s from %s to %s", kind, sha.Short(from), sha.Short(d.SHA))
		}
	case Task(d.Task) == TaskBisect:
		// decisive keeps a step only when it named the culprit.
		l.Stopped, l.BadSHA = true, d.SHA
		l.How = fmt.Sprintf("had a batch roll back, and a bisection named %s the culprit", sha.Short(d.SHA))
	case ours && p.Culprit != "" && !failed:
		// The good part of a batch shipped; the line stays stopped for the
		// commit it left out.
		l.Stopped, l.BadSHA = true, p.Culprit
		l.How = fmt.Sprintf("runs %s, the good part of a batch, without %s, which regressed (found by bisection)", sha.Short(d.SHA), sha.Short(p.Culprit))
	case inconclusive:
		// Not seen to regress: the line goes on.
	case strings.HasPrefix(d.LatestDescription, Shadow):
		// A shadow run never stops the line.
	case failed:
		l.Stopped = true
		l.BadSHA = d.SHA
		l.How = fmt.Sprintf("has a %s deployment of %s", StateName(state), sha.Short(d.SHA))
		if Task(d.Task) == TaskCanary {
			l.How = fmt.Sprintf("has a canary of %s that ended in %s", sha.Short(d.SHA), StateName(state))
		}
	}
	return l
}

// decisive is the index of the deployment the line rests on (see LineOf),
// -1 when history holds none yet.
func decisive(history []ghapi.Deployment) int {
	for i, d := range history {
		if Task(d.Task) != TaskBisect || State(d.LatestState) == StateFailure && strings.HasPrefix(d.LatestDescription, CulpritPrefix) {
			return i
		}
	}
	return -1
}

// needMore reports whether LineOf needs a deployment older than history's:
// none it rests on is known yet, or that one is a rollback made without
// immune's payload and no other commit shows yet.
func needMore(history []ghapi.Deployment) bool {
	i := decisive(history)
	if i < 0 {
		return true
	}
	first := history[i]
	_, ours := PayloadOf(first)
	return Task(first.Task) == TaskRollback && !ours && sha.Same(history[len(history)-1].SHA, first.SHA)
}

// replaced is the commit the newest deployment, a rollback, replaced: the
// newest older deployment of another commit.
func replaced(history []ghapi.Deployment) string {
	for _, d := range history[1:] {
		if !sha.Same(d.SHA, history[0].SHA) {
			return d.SHA
		}
	}
	return ""
}

// StateName is a status state for people: "in progress".
func StateName(s State) string {
	if s == "" {
		return "status-less"
	}
	return strings.ReplaceAll(string(s), "_", " ")
}
