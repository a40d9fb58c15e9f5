package githubfake

import (
	"net/url"
	"strings"
	"time"
)

const docEnvironments = "https://docs.github.com/rest/deployments/environments"

// Environment is an environment of the repository. GitHub makes one when a
// deployment or a job first names it, and its names do not depend on
// letter case: "Production" and "production" are one environment, which
// keeps the name it was made with.
type Environment struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// AddEnvironment makes an environment, as its settings page does, unless
// one of that name in any letter case exists; it returns the environment.
func (f *Server) AddEnvironment(name string) Environment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.st.ensureEnvironment(name, f.now())
}

// Environments lists the repository's environments, oldest first.
func (f *Server) Environments() []Environment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return values(f.st.environments)
}

// environment is the environment called name in any letter case, or nil.
func (s *state) environment(name string) *Environment {
	for _, e := range s.environments {
		if strings.EqualFold(e.Name, name) {
			return e
		}
	}
	return nil
}

func (s *state) ensureEnvironment(name string, now time.Time) *Environment {
	if e := s.environment(name); e != nil {
		return e
	}
	e := &Environment{ID: s.nextEnvironment, Name: name, CreatedAt: now}
	s.nextEnvironment++
	s.environments = append(s.environments, e)
	return e
}

func (f *Server) getEnvironment(_ *apiRequest, p params, _ time.Time) reply {
	return one(f.st.environment(p.name), docEnvironments+"#get-an-environment", f.renderEnvironment)
}

func (f *Server) renderEnvironment(e *Environment) map[string]any {
	m := f.tmpl("environment")
	m["id"] = e.ID
	m["node_id"] = nodeID("Environment", e.ID)
	m["name"] = e.Name
	m["url"] = f.repoAPI() + "/environments/" + url.PathEscape(e.Name)
	m["html_url"] = f.repoWeb() + "/deployments/activity_log?environments_filter=" + url.QueryEscape(e.Name)
	m["created_at"] = ts(e.CreatedAt)
	m["updated_at"] = ts(e.CreatedAt)
	m["protection_rules"] = []any{}
	m["deployment_branch_policy"] = nil
	return m
}
