package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/immune-cd/immune/internal/promql"
)

// MetricKind is the kind of a metric entry.
type MetricKind string

// The kinds of metric entry.
const (
	// MetricRate counts errors and requests from two counter selectors.
	MetricRate MetricKind = "rate"
	// MetricThreshold compares an instant query's value with max and min.
	MetricThreshold MetricKind = "threshold"
)

// Metric is one entry of the metrics input.
type Metric struct {
	Name string
	Kind MetricKind

	// Rate metrics: PromQL series selectors of counters, placeholders
	// unexpanded, and the highest acceptable share of errors.
	Errors       string
	Total        string
	MaxErrorRate float64

	// Threshold metrics: an instant query, its bounds (nil when absent) and
	// how many looks in a row out of bounds are a regression.
	Query       string
	Max         *float64
	Min         *float64
	Consecutive int

	// Shadow trials the metric: judged and shown, never regressing the
	// build.
	Shadow bool
}

// DefaultConsecutive is the default of a threshold metric's consecutive.
const DefaultConsecutive = 3

// Bounds on the metrics input: every metric is read at every look, all at
// once (a rate metric with four queries), so their number bounds the load
// on Prometheus and the time a look takes.
const (
	MaxMetrics     = 20
	MaxQueryLength = 8 << 10
)

// metricKeys are the keys an entry may have, in the order the errors list
// them.
var metricKeys = []string{"name", "errors", "total", "max-error-rate", "query", "max", "min", "consecutive", "shadow"}

var metricName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$`)

// ParseMetrics parses the metrics input: a YAML list of entries. Rate
// metrics without their own max-error-rate take maxErrorRate. Every problem
// is returned, one error per problem, each naming its entry.
func ParseMetrics(s string, maxErrorRate float64) ([]Metric, []error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, []error{fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	list := resolve(&doc)
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = resolve(list.Content[0])
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, []error{errors.New("expected a YAML list of entries, each like \"- name: errors\" followed by errors and total, or query and max")}
	}
	if n := len(list.Content); n > MaxMetrics {
		return nil, []error{fmt.Errorf("%d entries; at most %d metrics are read (each at every look, all at once): keep the ones that say whether a build is healthy", n, MaxMetrics)}
	}
	var metrics []Metric
	var errs []error
	names := map[string]int{}
	for i, node := range list.Content {
		m, entryErrs := parseMetric(resolve(node), maxErrorRate)
		label := fmt.Sprintf("entry %d", i+1)
		if m.Name != "" {
			label += fmt.Sprintf(" (%q)", m.Name)
			key := strings.ToLower(m.Name)
			if first, dup := names[key]; dup {
				entryErrs = append(entryErrs, fmt.Errorf("has the same name as entry %d; names must be unique", first))
			} else {
				names[key] = i + 1
			}
		}
		for _, err := range entryErrs {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
		}
		metrics = append(metrics, m)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return metrics, nil
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func parseMetric(node *yaml.Node, maxErrorRate float64) (Metric, []error) {
	var m Metric
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if node == nil || node.Kind != yaml.MappingNode {
		fail("expected a mapping with name and either errors and total, or query")
		return m, errs
	}
	values := map[string]*yaml.Node{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, value := resolve(node.Content[i]), resolve(node.Content[i+1])
		switch {
		case key.Kind != yaml.ScalarNode:
			fail("a key is not a plain name")
		case !known(key.Value):
			fail("unknown key %q; an entry's keys are %s", clip(key.Value), strings.Join(metricKeys, ", "))
		case values[key.Value] != nil:
			fail("%s is given twice", key.Value)
		case value.Kind != yaml.ScalarNode:
			fail("%s: expected a single value, not a list or mapping", key.Value)
		default:
			values[key.Value] = value
		}
	}
	str := func(key string) string {
		if v := values[key]; v != nil {
			return strings.TrimSpace(v.Value)
		}
		return ""
	}
	tooLong := func(key, q string) bool {
		if len(q) > MaxQueryLength {
			fail("%s: %d bytes; at most %d", key, len(q), MaxQueryLength)
			return true
		}
		return false
	}

	m.Name = str("name")
	switch {
	case values["name"] == nil || m.Name == "":
		fail("needs a name")
	case !metricName.MatchString(m.Name):
		fail("name %q: expected 1 to 63 letters, digits, spaces, dots, dashes or underscores", clip(m.Name))
		m.Name = ""
	}

	if v := values["shadow"]; v != nil {
		shadow, err := ParseBool(v.Value)
		if err != nil {
			fail("shadow: %v", err)
		}
		m.Shadow = shadow
	}

	rate := values["errors"] != nil || values["total"] != nil
	threshold := values["query"] != nil
	switch {
	case rate && threshold:
		fail("has both query and errors/total; a metric is either a rate (errors and total) or a threshold (query with max or min)")
		return m, errs
	case rate:
		m.Kind = MetricRate
		m.Errors, m.Total = str("errors"), str("total")
		for _, f := range []struct{ key, value string }{{"errors", m.Errors}, {"total", m.Total}} {
			if f.value == "" {
				fail("needs %s: a rate metric counts errors out of total requests", f.key)
				continue
			}
			if tooLong(f.key, f.value) {
				continue
			}
			if err := checkQuery(f.value); err != nil {
				fail("%s: %v", f.key, err)
			} else if err := promql.CheckSelector(f.value); err != nil {
				fail("%s: %v", f.key, err)
			}
		}
		m.MaxErrorRate = maxErrorRate
		if v := values["max-error-rate"]; v != nil {
			rate, err := ParseFraction(v.Value)
			switch {
			case err != nil:
				fail("max-error-rate: %v", err)
			case rate <= 0 || rate >= 1:
				fail("max-error-rate: got %q: expected a rate above 0%% and below 100%%", v.Value)
			default:
				m.MaxErrorRate = rate
			}
		}
		for _, key := range []string{"max", "min", "consecutive"} {
			if values[key] != nil {
				fail("%s applies to query metrics; a rate metric's limit is max-error-rate", key)
			}
		}
	case threshold:
		m.Kind = MetricThreshold
		m.Query = str("query")
		if m.Query == "" {
			fail("query is empty")
		} else if !tooLong("query", m.Query) {
			if err := checkQuery(m.Query); err != nil {
				fail("query: %v", err)
			}
		}

		if values["max-error-rate"] != nil {
			fail("max-error-rate applies to rate metrics (errors and total); a query metric uses max or min")
		}
		for _, b := range []struct {
			key string
			out **float64
		}{{"max", &m.Max}, {"min", &m.Min}} {
			v := values[b.key]
			if v == nil {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				fail("%s: got %q: expected a number in the query's unit (e.g. 0.3 for 300ms when the query returns seconds)", b.key, clip(v.Value))
				continue
			}
			*b.out = &f
		}
		switch {
		case values["max"] == nil && values["min"] == nil:
			fail("needs max or min")
		case m.Max != nil && m.Min != nil && *m.Min >= *m.Max:
			fail("min (%v) is not below max (%v)", *m.Min, *m.Max)
		}
		m.Consecutive = DefaultConsecutive
		if v := values["consecutive"]; v != nil {
			n, err := strconv.Atoi(strings.TrimSpace(v.Value))
			if err != nil || n < 1 {
				fail("consecutive: got %q: expected a whole number of at least 1", clip(v.Value))
			} else {
				m.Consecutive = n
			}
		}
	default:
		fail("needs errors and total (a rate metric) or query (a threshold metric)")
	}
	return m, errs
}

// Uses reports whether one of the metric's queries holds the placeholder
// ${name}.
func (m Metric) Uses(name string) bool {
	for _, q := range []string{m.Errors, m.Total, m.Query} {
		t, err := promql.Parse(q)
		if err != nil {
			continue
		}
		for _, n := range t.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func known(key string) bool {
	for _, k := range metricKeys {
		if k == key {
			return true
		}
	}
	return false
}

// checkQuery checks a query's placeholders. Whether ${TRACK} may be used
// depends on the other inputs (a canary deploy); Parse checks that.
func checkQuery(q string) error {
	_, err := promql.Parse(q)
	return err
}

// UsesTrack reports whether any of the metric's queries uses ${TRACK}.
func (m Metric) UsesTrack() bool {
	return usesTrack(m.Errors) || usesTrack(m.Total) || usesTrack(m.Query)
}

// usesTrack reports whether q, a valid query, uses ${TRACK}.
func usesTrack(q string) bool {
	t, err := promql.Parse(q)
	if err != nil {
		return false
	}
	for _, name := range t.Names() {
		if name == promql.Track {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ParsePrometheusURL checks the base URL of a Prometheus query API.
func ParsePrometheusURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	urls, err := ParseURLs(s)
	if err != nil {
		return "", err
	}
	if len(urls) != 1 {
		return "", errors.New("expected one URL")
	}
	u, _ := url.Parse(urls[0])
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/api/v1") {
		return "", fmt.Errorf("%q: expected the server's base URL, without /api/v1 (e.g. http://prometheus:9090 or https://mimir.example.com/prometheus)", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: expected a base URL without ?query or #fragment", u.Redacted())
	}
	return urls[0], nil
}
