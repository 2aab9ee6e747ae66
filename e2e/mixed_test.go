//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/testca"
)

// TestMixedLogs runs one ctwatch over a real TesseraCT log and a real
// Trillian + CTFE log at once. Some certificates are in one log, some in
// both (a leaf, and a final certificate whose precertificate is in the
// static log): every watched certificate must have exactly one hit, whichever
// log it came from, at that log's index for it; nothing unwatched may. A
// certificate in both logs is one hit: the same id from either log.
func TestMixedLogs(t *testing.T) {
	if os.Getenv("CTWATCHTEST_E2E_SKIP_RFC6962") == "1" {
		t.Skip("CTWATCHTEST_E2E_SKIP_RFC6962=1: not starting the real RFC 6962 log")
	}
	work := t.TempDir()
	ca, err := testca.New("ctwatch mixed e2e")
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	rootsPath := filepath.Join(work, "roots.pem")
	if err := os.WriteFile(rootsPath, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	static := startStatic(t, filepath.Join(work, "static"), rootsPath)
	trillian := startRFC6962(t, filepath.Join(work, "trillian"), rootsPath)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ss := &submitter{t: t, ctx: ctx, lc: newLogClient(t, static.submissionURL, static.key), chain: ca.Chain(),
		logID: sha256.Sum256(static.key)}
	rs := &submitter{t: t, ctx: ctx, lc: newLogClient(t, trillian.url, trillian.key), chain: ca.Chain(),
		logID: sha256.Sum256(trillian.key)}

	// mixed tracks what went where. A certificate in both logs is one
	// *submitted (the same DER).
	m := &mixedLogs{inStatic: map[string]bool{}, inRFC: map[string]bool{}}
	leaf := func(label string, watched, toStatic, toRFC bool, names ...string) {
		t.Helper()
		der, err := ca.Leaf(names...)
		if err != nil {
			t.Fatalf("leaf %s: %v", label, err)
		}
		var sub *submitted
		if toStatic {
			sub = ss.addChain(label, names, der, watched)
			m.inStatic[sub.sha] = true
		}
		if toRFC {
			sub = rs.addChain(label, names, der, watched)
			m.inRFC[sub.sha] = true
		}
		m.subs = append(m.subs, sub)
	}

	// Stage 1: in the logs before ctwatch starts.
	leaf("static-only", true, true, false, "www.mixed.example")
	leaf("rfc6962-only", true, false, true, "api.mixed.example")
	leaf("both", true, true, true, "both.mixed.example")
	leaf("unwatched-static", false, true, false, "www.example.org")
	leaf("unwatched-rfc6962", false, false, true, "api.example.org")
	leaf("unwatched-both", false, true, true, "mixed.example.net")
	pre, final := ss.precertAndFinal(ca, "shop.mixed.example")
	m.inStatic[pre.sha], m.inStatic[final.sha] = true, true
	rs.addChain("final", final.names, final.der, true)
	m.inRFC[final.sha] = true
	m.subs = append(m.subs, pre, final)

	bin := buildCtwatch(t)
	cfgPath := filepath.Join(work, "ctwatch.yaml")
	rulesPath := filepath.Join(work, "rules.yaml")
	hitsPath := filepath.Join(work, "hits.jsonl")
	logPath := filepath.Join(work, "ctwatch.log")
	dumpOnFailure(t, logPath, hitsPath)
	if err := os.WriteFile(rulesPath, []byte(rulesYAML("mixed-names", ".mixed.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctwatchConfig{
		dataDir: filepath.Join(work, "data"),
		logs: []logEntry{
			static.logEntry("tessera"),
			{name: "trillian", kind: "rfc6962", url: trillian.url, key: trillian.keyB64},
		},
		rulesFile: rulesPath,
		hitsFile:  hitsPath,
		monitor:   "  poll_interval: 500ms\n",
	}.write(t, cfgPath)
	run := startProcess(t, "ctwatch run", logPath, bin, "run", "--config", cfgPath)
	awaitHits(t, "hits for the backfilled certificates of both logs", run, hitsPath, m.subs, pre, final)

	// Stage 2: a certificate logged in both logs while ctwatch tails them,
	// then one more in each log. Their hits show that both tailers went past
	// everything before them, so a second hit for a certificate in both
	// logs would have been written by now.
	leaf("tailed-both", true, true, true, "tailed.mixed.example")
	leaf("marker-static", true, true, false, "marker-static.mixed.example")
	leaf("marker-rfc6962", true, false, true, "marker-rfc6962.mixed.example")
	awaitHits(t, "hits for the certificates logged while ctwatch runs", run, hitsPath, m.subs[len(m.subs)-3:], nil, nil)

	run.signal(t, syscall.SIGTERM)
	if code := run.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("ctwatch run exited with %d after SIGTERM, want 0", code)
	}

	cp := waitCheckpoint(t, ctx, static, uint64(len(m.inStatic)))
	staticIndex := readBackStatic(t, ctx, static, cp)
	sth := waitTreeSize(t, ctx, rs.lc, uint64(len(m.inRFC)))
	rfcIndex := readBackLog(t, ctx, rs.lc, sth)
	logs := map[string]mixedLog{
		"tessera":  {url: static.submissionURL, index: staticIndex, size: cp.size},
		"trillian": {url: trillian.url, index: rfcIndex, size: sth.TreeSize},
	}
	for name, l := range logs {
		if want := map[string]int{"tessera": len(m.inStatic), "trillian": len(m.inRFC)}[name]; len(l.index) != want || l.size != uint64(want) {
			t.Fatalf("%s holds %d certificates (tree size %d), the test submitted %d", name, len(l.index), l.size, want)
		}
	}
	hits, err := readHits(hitsPath)
	if err != nil {
		t.Error(err)
	}
	ids := m.check(t, hits, logs)
	for _, h := range hits {
		if h.hit.Log != nil {
			t.Logf("hit line %d: %v from %s at %d", h.line, h.hit.Cert.DNSNames, h.hit.Log.Name, h.hit.Log.Index)
		}
	}

	// The id does not depend on the log: ctwatch check, which sees no log,
	// gives the certificates in both logs the ids of their hits.
	for _, label := range []string{"both", "tailed-both", "final"} {
		sub := m.subs[slices.IndexFunc(m.subs, func(s *submitted) bool { return s.label == label })]
		pemPath := filepath.Join(work, label+".pem")
		writePEM(t, pemPath, sub.der)
		code, out := runCheck(t, bin, cfgPath, pemPath)
		if code != 1 {
			t.Fatalf("ctwatch check on %s exited %d, want 1 (hits); output:\n%s", label, code, out)
		}
		checkHits := parseCheckOutput(t, out)
		if len(checkHits) != 1 || checkHits[0].ID != ids[sub.tbs] {
			t.Errorf("ctwatch check on %s: hits %+v, want one with the daemon's id %q", label, checkHits, ids[sub.tbs])
		}
	}

	// Both tailers verified their whole log.
	for name, l := range logs {
		row := logsRow(t, bin, cfgPath, name)
		if row.treeSize != l.size || row.nextIndex != l.size {
			t.Errorf("ctwatch logs: %s at tree size %d, next index %d; the log has %d entries", name, row.treeSize, row.nextIndex, l.size)
		}
	}
}

// mixedLogs records what TestMixedLogs put in which log.
type mixedLogs struct {
	subs     []*submitted
	inStatic map[string]bool // by SHA-256
	inRFC    map[string]bool
}

// mixedLog is one log of TestMixedLogs, as read back by the test.
type mixedLog struct {
	url   string
	index map[string]uint64 // certificate SHA-256 -> index
	size  uint64
}

// check judges the JSONL hits: per watched certificate (a precertificate and
// its final certificate being one) exactly one hit, from a log that holds it,
// at its index there; none for anything else. It returns the hit ids by
// tbs_sha256.
func (m *mixedLogs) check(t *testing.T, hits []hitLine, logs map[string]mixedLog) map[string]string {
	t.Helper()
	bySHA := map[string]*submitted{}
	for _, s := range m.subs {
		bySHA[s.sha] = s
	}
	perTBS := map[string][]int{} // tbs_sha256 -> hit lines
	ids := map[string]string{}   // tbs_sha256 -> id
	for _, hl := range hits {
		h := hl.hit
		sub := bySHA[h.Cert.SHA256]
		switch {
		case sub == nil:
			t.Errorf("line %d: hit for a certificate the test never submitted: %+v", hl.line, h)
			continue
		case !sub.watched:
			t.Errorf("line %d: hit for unwatched certificate %s %v", hl.line, sub.label, sub.names)
			continue
		}
		perTBS[h.Cert.TBSSHA256] = append(perTBS[h.Cert.TBSSHA256], hl.line)
		ids[h.Cert.TBSSHA256] = h.ID
		if h.Rule != "mixed-names" || h.ID == "" {
			t.Errorf("line %d: rule %q id %q, want rule mixed-names and an id", hl.line, h.Rule, h.ID)
		}
		if h.Cert.TBSSHA256 != sub.tbs || h.Cert.Precert != sub.precert {
			t.Errorf("line %d: %s tbs_sha256 %s precert %v, want %s %v", hl.line, sub.label, h.Cert.TBSSHA256, h.Cert.Precert, sub.tbs, sub.precert)
		}
		if got, want := sortedSet(h.Cert.DNSNames), sortedSet(sub.names); !slices.Equal(got, want) {
			t.Errorf("line %d: %s dns_names %v, want %v", hl.line, sub.label, got, want)
		}
		if h.Log == nil {
			t.Errorf("line %d: hit has no log reference", hl.line)
			continue
		}
		l, ok := logs[h.Log.Name]
		if !ok {
			t.Errorf("line %d: log %q is not one of the configured logs", hl.line, h.Log.Name)
			continue
		}
		idx, in := l.index[sub.sha]
		switch {
		case h.Log.URL != l.url:
			t.Errorf("line %d: log %s url %q, want %q", hl.line, h.Log.Name, h.Log.URL, l.url)
		case !in:
			t.Errorf("line %d: %s is not in log %s, yet its hit names that log", hl.line, sub.label, h.Log.Name)
		case h.Log.Index != idx:
			t.Errorf("line %d: %s at index %d of %s, but that log has it at %d", hl.line, sub.label, h.Log.Index, h.Log.Name, idx)
		}
	}
	for _, s := range m.subs {
		if !s.watched {
			continue
		}
		where := fmt.Sprintf("static=%v rfc6962=%v", m.inStatic[s.sha], m.inRFC[s.sha])
		switch n := len(perTBS[s.tbs]); {
		case n == 0:
			t.Errorf("no hit for watched certificate %s %v (%s)", s.label, s.names, where)
		case n > 1:
			t.Errorf("%d hits (lines %v) for %s (%s), want exactly one", n, perTBS[s.tbs], s.label, where)
		}
	}
	return ids
}
