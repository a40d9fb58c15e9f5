// Package actionyml reads what tests need of action.yml: the inputs'
// defaults, which the runner applies before the action starts, so that a
// test runs the binary with the environment a workflow gives it.
//
// Production code must not import it.
package actionyml

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Defaults reads the inputs' defaults from the action.yml at path, as the
// runner applies them: by input name, the inputs without a default left
// out; an expression (${{ github.token }}) is returned as it is written.
func Defaults(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var meta struct {
		Inputs map[string]struct {
			Default *string `yaml:"default"`
		} `yaml:"inputs"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	for name, in := range meta.Inputs {
		if in.Default != nil {
			out[name] = *in.Default
		}
	}
	return out, nil
}
