package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// benchRules turns the example rule file (configs/rules/example.yaml) into
// the bench's: the rule watching .example.com watches the bench domains too,
// every other rule stays as it is. With uncomment, the example rules the file
// ships commented out ("More matchers. Uncomment and adapt") are switched on
// as well, so that ctwatch runs every matcher the example shows — except
// those named like a built-in rule (skip: configs/rules/builtin.yaml's
// names), which use the same feeds and would be refused as duplicates. It
// returns the new file and the name of the rule whose hits are the expected
// ones.
func benchRules(example []byte, domains []string, uncomment bool, skip []string) ([]byte, string, error) {
	lines := strings.Split(string(example), "\n")
	domainsLine := regexp.MustCompile(`^(\s*)domains:\s*\[\s*\.example\.com\s*\]\s*$`)
	nameLine := regexp.MustCompile(`^\s*-\s*name:\s*(\S+)\s*$`)
	rule := ""
	lastName := ""
	for i, line := range lines {
		if m := nameLine.FindStringSubmatch(line); m != nil {
			lastName = m[1]
		}
		if m := domainsLine.FindStringSubmatch(line); m != nil && rule == "" {
			watched := []string{".example.com"}
			for _, d := range domains {
				watched = append(watched, "."+d)
			}
			lines[i] = m[1] + "domains: [" + strings.Join(watched, ", ") + "]"
			rule = lastName
		}
	}
	if rule == "" {
		return nil, "", errors.New("example rules: no rule with `domains: [.example.com]` to extend")
	}
	if uncomment {
		on, skipping := false, false
		for i, line := range lines {
			if strings.HasPrefix(line, "# More matchers") {
				on = true
				continue
			}
			// The commented rules are indented two spaces after the
			// '#'; prose comments are not.
			if !on || !strings.HasPrefix(line, "#  ") {
				continue
			}
			if m := nameLine.FindStringSubmatch(line[1:]); m != nil {
				skipping = slices.Contains(skip, m[1])
			}
			if !skipping {
				lines[i] = line[1:]
			}
		}
	}
	out := []byte(strings.Join(lines, "\n"))
	var doc struct {
		Rules []struct {
			Name string `yaml:"name"`
		} `yaml:"rules"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		return nil, "", fmt.Errorf("bench rules are not YAML: %w", err)
	}
	found := false
	for _, r := range doc.Rules {
		found = found || r.Name == rule
	}
	if !found {
		return nil, "", fmt.Errorf("bench rules: rule %q not found after rewriting", rule)
	}
	return out, rule, nil
}

// builtinRuleNames lists the names of the rules in the built-in rule file.
func builtinRuleNames(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("built-in rules: %w", err)
	}
	var doc struct {
		Rules []struct {
			Name string `yaml:"name"`
		} `yaml:"rules"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("built-in rules: %w", err)
	}
	names := make([]string, 0, len(doc.Rules))
	for _, r := range doc.Rules {
		names = append(names, r.Name)
	}
	return names, nil
}
