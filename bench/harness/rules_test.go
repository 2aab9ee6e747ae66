package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestBenchRules(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "configs", "rules", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	domains := benchDomains(2)
	type rule struct {
		Name  string         `yaml:"name"`
		Match map[string]any `yaml:"match"`
	}
	parse := func(data []byte) []rule {
		var doc struct {
			Rules []rule `yaml:"rules"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("not YAML: %v", err)
		}
		return doc.Rules
	}
	original := parse(example)
	var builtin []string
	builtinData, err := os.ReadFile(filepath.Join("..", "..", "configs", "rules", "builtin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range parse(builtinData) {
		builtin = append(builtin, r.Name)
	}
	if len(builtin) == 0 {
		t.Fatal("no built-in rules")
	}
	tests := []struct {
		name      string
		uncomment bool
		moreRules bool
	}{
		{"as shipped", false, false},
		{"with the commented-out examples", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, name, err := benchRules(example, domains, tt.uncomment, builtin)
			if err != nil {
				t.Fatal(err)
			}
			rules := parse(out)
			if tt.moreRules != (len(rules) > len(original)) {
				t.Errorf("%d rules from %d in the example", len(rules), len(original))
			}
			var got []any
			for _, r := range rules {
				if r.Name == name {
					got, _ = r.Match["domains"].([]any)
				}
			}
			want := []any{".example.com", ".w0.bench.example", ".w1.bench.example"}
			if len(got) != len(want) {
				t.Fatalf("rule %q watches %v, want %v", name, got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("rule %q watches %v, want %v", name, got, want)
				}
			}
			// No rule is named like a built-in one (ctwatch refuses
			// duplicates), and every rule of the example is still
			// there.
			for _, r := range rules {
				if slices.Contains(builtin, r.Name) {
					t.Errorf("rule %q duplicates a built-in rule", r.Name)
				}
			}
			for _, o := range original {
				found := false
				for _, r := range rules {
					found = found || r.Name == o.Name
				}
				if !found {
					t.Errorf("rule %q of the example is gone", o.Name)
				}
			}
		})
	}
	if _, _, err := benchRules([]byte("rules:\n  - name: x\n    match:\n      domains: [.other.example]\n"), domains, false, nil); err == nil ||
		!strings.Contains(err.Error(), ".example.com") {
		t.Errorf("a rule file without the example domain: error %v", err)
	}
}
