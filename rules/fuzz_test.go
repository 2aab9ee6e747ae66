package rules

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, must
// either return a usable Engine or a *LoadError naming the file, and an
// Engine it returns must be able to match.
func FuzzParse(f *testing.F) {
	for _, name := range []string{
		"../configs/rules/example.yaml",
		"testdata/load/bad1.yaml",
		"testdata/load/bad2.yaml",
		"testdata/load/good.yaml",
	} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(oneRule("any:\n  - domains: [a.test, \"*.b.test\"]\n  - not: {all: [{domains: [.c.test]}]}")))
	f.Add([]byte("rules:\n  - name: r\n    severity: low\n    match: &m {domains: [a.test]}\n  - name: s\n    severity: low\n    match: *m\n"))
	f.Add([]byte("rules:\n  - {name: r, severity: low, match: {domains: [bücher.example, \"xn--bcher-kva.example.\"]}}\n---\nrules: []\n"))
	f.Add([]byte(""))
	f.Add([]byte(oneRule("feed: interception-cas\nissuer: {cn: \"/^Q/\", c: KZ, chain_sha256: [" + qaznetCert + "]}\nissuer_country: [KZ]")))
	f.Add([]byte(oneRule("domains: [a.test]\nallowed_issuers: {owners: [lets-encrypt], spki_sha256: [" + leE5SPKI + "]}\nnot: {policy: [max_validity, weak_key, sha1, no_san, ip_san]}")))
	data := loadFixtures(f)

	probe := certWith("a.test", "*.b.test", "www.c.test", "xn--bcher-kva.example", "*.example", "WWW.EXAMPLE.COM.")
	probe.Issuer = "CN=Qaznet Trust Network,C=KZ"
	probe.IssuerCN, probe.IssuerC = []string{"Qaznet Trust Network"}, []string{"KZ"}
	probe.ChainSubjects = []string{"CN=Qaznet Trust Network,C=KZ", "C=RU,CN=x\\"}
	probe.IPAddresses = []string{"192.0.2.1"}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Parse("fuzz.yaml", in, WithData(data))
		if err != nil {
			if e != nil {
				t.Fatal("Parse returned both an engine and an error")
			}
			le, ok := errors.AsType[*LoadError](err)
			if !ok {
				t.Fatalf("error %v is %T, not *LoadError", err, err)
			}
			if len(le.Problems) == 0 {
				t.Fatal("LoadError without problems")
			}
			for _, p := range le.Problems {
				if p.File != "fuzz.yaml" || p.Msg == "" || p.Line < 0 {
					t.Fatalf("bad problem %+v", p)
				}
			}
			if !strings.HasPrefix(le.Error(), "fuzz.yaml:") {
				t.Fatalf("Error() = %q", le.Error())
			}
			return
		}
		names := make(map[string]bool)
		for _, r := range e.Rules() {
			if r.Name == "" || names[r.Name] || !validName(r.Name) {
				t.Fatalf("bad rule name %q", r.Name)
			}
			names[r.Name] = true
			if _, ok := parseSeverity(string(r.Severity)); !ok {
				t.Fatalf("rule %q has severity %q", r.Name, r.Severity)
			}
		}
		for _, m := range e.Match(probe) {
			if !names[m.Rule] || m.Reason == "" {
				t.Fatalf("bad match %+v", m)
			}
		}
	})
}
