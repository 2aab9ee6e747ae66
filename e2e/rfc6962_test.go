//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	stdx509 "crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/testca"
)

// submitted is one certificate the test put into the log.
type submitted struct {
	label   string
	names   []string
	der     []byte
	sha     string // SHA-256 of der, hex
	tbs     string // expected tbs_sha256, computed here with ct-go
	precert bool
	watched bool
}

// TestRealRFC6962Log runs ctwatch against a real Trillian + CTFE log: what is
// submitted for watched names must come out of the JSONL sink, exactly once
// per certificate and once per precertificate/final pair, at the index the
// log gave it; nothing else may.
func TestRealRFC6962Log(t *testing.T) {
	if os.Getenv("CTWATCHTEST_E2E_SKIP_RFC6962") == "1" {
		t.Skip("CTWATCHTEST_E2E_SKIP_RFC6962=1: not starting the real RFC 6962 log")
	}
	work := t.TempDir()
	ca, err := testca.New("ctwatch e2e")
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	rootsPath := filepath.Join(work, "roots.pem")
	if err := os.WriteFile(rootsPath, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	peer := startRFC6962(t, filepath.Join(work, "peer"), rootsPath)
	lc := newLogClient(t, peer.url, peer.key)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := &submitter{t: t, ctx: ctx, lc: lc, chain: ca.Chain(), logID: sha256.Sum256(peer.key)}

	// Stage 1: certificates in the log before ctwatch starts (a backfill).
	leaves := []struct {
		label   string
		names   []string
		watched bool
	}{
		{"www", []string{"www.e2e.example"}, true},
		{"wildcard", []string{"*.e2e.example"}, true},
		{"apex", []string{"e2e.example"}, true},
		{"one-san-of-two", []string{"api.e2e.example", "www.example.org"}, true},
		{"deep", []string{"a.b.c.e2e.example"}, true},
		{"other-domain", []string{"www.example.org"}, false},
		{"watched-as-prefix", []string{"e2e.example.net"}, false},
		{"watched-as-string-suffix", []string{"note2e.example"}, false},
		{"other-wildcard", []string{"*.example.com", "example.com"}, false},
	}
	var subs []*submitted
	for _, l := range leaves {
		der, err := ca.Leaf(l.names...)
		if err != nil {
			t.Fatalf("leaf %s: %v", l.label, err)
		}
		subs = append(subs, s.addChain(l.label, l.names, der, l.watched))
	}
	pre, final := s.precertAndFinal(ca, "shop.e2e.example")
	if pre.tbs != final.tbs {
		t.Fatalf("test CA bug: precert TBS %s != final TBS %s (poison/SCT list removed)", pre.tbs, final.tbs)
	}
	subs = append(subs, pre, final)

	sth := waitTreeSize(t, ctx, lc, uint64(len(subs)))
	index := readBackLog(t, ctx, lc, sth)
	for _, sub := range subs {
		if _, ok := index[sub.sha]; !ok {
			t.Fatalf("%s (%s) is not in the log after add-chain", sub.label, sub.sha)
		}
	}
	t.Logf("stage 1: %d certificates in the log (tree size %d), all read back with get-entries and proven included",
		len(subs), sth.TreeSize)

	// ctwatch follows the log from index 0.
	bin := buildCtwatch(t)
	cfgPath := filepath.Join(work, "ctwatch.yaml")
	rulesPath := filepath.Join(work, "rules.yaml")
	hitsPath := filepath.Join(work, "hits.jsonl")
	logPath := filepath.Join(work, "ctwatch.log")
	dumpOnFailure(t, logPath, hitsPath)
	if err := os.WriteFile(rulesPath, []byte(rulesYAML("e2e-names", ".e2e.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ctwatchConfig{
		dataDir:   filepath.Join(work, "data"),
		logName:   "trillian",
		logURL:    peer.url,
		logKey:    peer.keyB64,
		rulesFile: rulesPath,
		hitsFile:  hitsPath,
		monitor:   "  poll_interval: 500ms\n",
	}
	cfg.write(t, cfgPath)
	run := startProcess(t, "ctwatch run", logPath, bin, "run", "--config", cfgPath)

	stage1 := func() (bool, string) {
		hits, _ := readHits(hitsPath)
		seen := map[string]bool{}
		for _, h := range hits {
			seen[h.hit.Cert.SHA256] = true
		}
		var missing []string
		for _, sub := range subs {
			if sub.watched && !sub.precert && sub != final && !seen[sub.sha] {
				missing = append(missing, sub.label)
			}
		}
		if !seen[pre.sha] && !seen[final.sha] {
			missing = append(missing, "precert/final pair")
		}
		return len(missing) == 0, fmt.Sprintf("%d hit lines; missing %v", len(hits), missing)
	}
	pollUntil(t, "hits for the backfilled certificates", 120*time.Second, run.done, stage1)

	// Stage 2: a certificate logged while ctwatch tails the log. Its hit
	// also shows that ctwatch went past the final certificate, so a second
	// hit for the precert/final pair would have been written by now.
	lastDER, err := ca.Leaf("last.e2e.example")
	if err != nil {
		t.Fatal(err)
	}
	last := s.addChain("tailed", []string{"last.e2e.example"}, lastDER, true)
	subs = append(subs, last)
	pollUntil(t, "a hit for the certificate logged while ctwatch runs", 120*time.Second, run.done, func() (bool, string) {
		hits, _ := readHits(hitsPath)
		for _, h := range hits {
			if h.hit.Cert.SHA256 == last.sha {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d hit lines, none for %s", len(hits), last.sha)
	})

	run.signal(t, syscall.SIGTERM)
	if code := run.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("ctwatch run exited with %d after SIGTERM, want 0", code)
	}

	sth = waitTreeSize(t, ctx, lc, uint64(len(subs)))
	index = readBackLog(t, ctx, lc, sth)
	hits, err := readHits(hitsPath)
	if err != nil {
		t.Error(err)
	}
	checkLogHits(t, hits, subs, index, "trillian", peer.url, pre, final)
	for _, h := range hits {
		t.Logf("hit line %d: log %+v %v precert=%v tbs %.12s", h.line, h.hit.Log, h.hit.Cert.DNSNames, h.hit.Cert.Precert, h.hit.Cert.TBSSHA256)
	}

	// ctwatch check agrees with the daemon on the final certificate...
	daemonTBS := ""
	for _, h := range hits {
		if h.hit.Cert.SHA256 == pre.sha || h.hit.Cert.SHA256 == final.sha {
			daemonTBS = h.hit.Cert.TBSSHA256
		}
	}
	finalPEM := filepath.Join(work, "final.pem")
	writePEM(t, finalPEM, final.der)
	code, out := runCheck(t, bin, cfgPath, finalPEM)
	if code != 1 {
		t.Fatalf("ctwatch check on the final certificate exited %d, want 1 (hits); output:\n%s", code, out)
	}
	checkHits := parseCheckOutput(t, out)
	found := false
	for _, h := range checkHits {
		if h.Rule == "e2e-names" && h.Cert.TBSSHA256 == daemonTBS && h.Cert.SHA256 == final.sha {
			found = true
		}
		if h.Log != nil {
			t.Errorf("check hit has a log reference %+v; a file is not a log", h.Log)
		}
	}
	if !found {
		t.Errorf("ctwatch check --json printed no e2e-names hit with tbs_sha256 %s and sha256 %s:\n%s", daemonTBS, final.sha, out)
	}
	// ...and finds nothing in a certificate for names nobody watches.
	otherPEM := filepath.Join(work, "other.pem")
	writePEM(t, otherPEM, subs[slices.IndexFunc(subs, func(s *submitted) bool { return s.label == "watched-as-string-suffix" })].der)
	if code, out := runCheck(t, bin, cfgPath, otherPEM); code != 0 || len(parseCheckOutput(t, out)) != 0 {
		t.Errorf("ctwatch check on an unwatched certificate: exit %d, want 0 and no hits; output:\n%s", code, out)
	}
}

// submitter adds certificates to a log through ct-go's client, which checks
// each SCT's signature against the log key.
type submitter struct {
	t     *testing.T
	ctx   context.Context
	lc    *client.LogClient
	chain [][]byte // intermediate, root
	logID [32]byte
}

func (s *submitter) asn1Chain(leaf []byte) []ct.ASN1Cert {
	out := []ct.ASN1Cert{{Data: leaf}}
	for _, c := range s.chain {
		out = append(out, ct.ASN1Cert{Data: c})
	}
	return out
}

func (s *submitter) checkSCT(label string, sct *ct.SignedCertificateTimestamp) {
	s.t.Helper()
	if sct.LogID.KeyID != s.logID {
		s.t.Fatalf("%s: SCT log ID %x, want SHA-256 of CT_KEY %x", label, sct.LogID.KeyID, s.logID)
	}
}

// addChain submits der with add-chain.
func (s *submitter) addChain(label string, names []string, der []byte, watched bool) *submitted {
	s.t.Helper()
	sct, err := s.lc.AddChain(s.ctx, s.asn1Chain(der))
	if err != nil {
		s.t.Fatalf("add-chain %s: %v", label, err)
	}
	s.checkSCT(label, sct)
	c, err := stdx509.ParseCertificate(der)
	if err != nil {
		s.t.Fatalf("parse %s: %v", label, err)
	}
	tbs := c.RawTBSCertificate
	// The RFC 6962 embedded-SCT-list extension (section 3.3).
	oidSCTList := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
	if hasExtension(c, oidSCTList) {
		if tbs, err = ctx509.RemoveSCTList(tbs); err != nil {
			s.t.Fatalf("%s: remove SCT list: %v", label, err)
		}
	}
	return &submitted{label: label, names: names, der: der, sha: sha256Hex(der), tbs: sha256Hex(tbs), watched: watched}
}

// precertAndFinal logs a precertificate for name with add-pre-chain, builds
// the final certificate with the SCT the log returned, and logs it too.
func (s *submitter) precertAndFinal(ca *testca.CA, name string) (pre, final *submitted) {
	s.t.Helper()
	preDER, _, err := ca.PrecertPair(name)
	if err != nil {
		s.t.Fatalf("precert: %v", err)
	}
	sct, err := s.lc.AddPreChain(s.ctx, s.asn1Chain(preDER))
	if err != nil {
		s.t.Fatalf("add-pre-chain: %v", err)
	}
	s.checkSCT("precert", sct)
	c, err := stdx509.ParseCertificate(preDER)
	if err != nil {
		s.t.Fatalf("parse precert: %v", err)
	}
	tbs, err := ctx509.RemoveCTPoison(c.RawTBSCertificate)
	if err != nil {
		s.t.Fatalf("precert: remove poison: %v", err)
	}
	pre = &submitted{label: "precert", names: []string{name}, der: preDER, sha: sha256Hex(preDER),
		tbs: sha256Hex(tbs), precert: true, watched: true}

	sctList, err := sctListBytes(sct)
	if err != nil {
		s.t.Fatalf("SCT list: %v", err)
	}
	finalDER, err := ca.FinalWithSCTs(preDER, sctList)
	if err != nil {
		s.t.Fatalf("final certificate: %v", err)
	}
	final = s.addChain("final", []string{name}, finalDER, true)
	return pre, final
}

// sctListBytes TLS-encodes a SignedCertificateTimestampList holding sct, the
// value of the SCT-list extension (RFC 6962 section 3.3).
func sctListBytes(sct *ct.SignedCertificateTimestamp) ([]byte, error) {
	raw, err := cttls.Marshal(*sct)
	if err != nil {
		return nil, fmt.Errorf("marshal sct: %w", err)
	}
	list := ctx509.SignedCertificateTimestampList{SCTList: []ctx509.SerializedSCT{{Val: raw}}}
	out, err := cttls.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("marshal sct list: %w", err)
	}
	return out, nil
}

func hasExtension(c *stdx509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// waitTreeSize polls get-sth (signature verified by the client) until the
// tree holds at least n entries.
func waitTreeSize(t *testing.T, ctx context.Context, lc *client.LogClient, n uint64) *ct.SignedTreeHead {
	t.Helper()
	var sth *ct.SignedTreeHead
	pollUntil(t, fmt.Sprintf("a tree head with %d entries", n), 60*time.Second, nil, func() (bool, string) {
		got, err := lc.GetSTH(ctx)
		if err != nil {
			return false, err.Error()
		}
		sth = got
		return got.TreeSize >= n, fmt.Sprintf("tree size %d", got.TreeSize)
	})
	return sth
}

// readBackLog reads every entry of the tree with get-entries, proves each
// one included in sth with get-proof-by-hash, and returns the index of each
// certificate (for a precertificate entry, of the precertificate as
// submitted) by its SHA-256.
func readBackLog(t *testing.T, ctx context.Context, lc *client.LogClient, sth *ct.SignedTreeHead) map[string]uint64 {
	t.Helper()
	index := map[string]uint64{}
	for next := uint64(0); next < sth.TreeSize; {
		entries, err := lc.GetEntries(ctx, int64(next), int64(sth.TreeSize-1))
		if err != nil {
			t.Fatalf("get-entries %d..%d: %v", next, sth.TreeSize-1, err)
		}
		if len(entries) == 0 {
			t.Fatalf("get-entries %d..%d returned nothing", next, sth.TreeSize-1)
		}
		for _, e := range entries {
			if uint64(e.Index) != next {
				t.Fatalf("entry index %d, want %d", e.Index, next)
			}
			var der []byte
			switch {
			case e.X509Cert != nil:
				der = e.Leaf.TimestampedEntry.X509Entry.Data
			case e.Precert != nil:
				der = e.Precert.Submitted.Data
			default:
				t.Fatalf("entry %d is neither a certificate nor a precertificate", next)
			}
			sha := sha256Hex(der)
			if prev, dup := index[sha]; dup {
				t.Fatalf("certificate %s logged twice, at %d and %d", sha, prev, next)
			}
			index[sha] = next

			leafHash, err := ct.LeafHashForLeaf(&e.Leaf)
			if err != nil {
				t.Fatalf("leaf hash %d: %v", next, err)
			}
			p, err := lc.GetProofByHash(ctx, leafHash[:], sth.TreeSize)
			if err != nil {
				t.Fatalf("get-proof-by-hash %d: %v", next, err)
			}
			if uint64(p.LeafIndex) != next {
				t.Fatalf("proof for entry %d names index %d", next, p.LeafIndex)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, next, sth.TreeSize, leafHash[:], p.AuditPath, sth.SHA256RootHash[:]); err != nil {
				t.Fatalf("entry %d not included in the signed tree head: %v", next, err)
			}
			next++
		}
	}
	return index
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runCheck runs `ctwatch check --config cfg --json file` and returns its exit
// code and standard output; standard error is logged.
func runCheck(t *testing.T, bin, cfg, file string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "--config", cfg, "--json", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
	default:
		t.Fatalf("ctwatch check: %v", err)
	}
	if stderr.Len() > 0 {
		t.Logf("ctwatch check %s stderr:\n%s", filepath.Base(file), stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.Bytes()
}

// parseCheckOutput parses `ctwatch check --json` output: one hit per line.
func parseCheckOutput(t *testing.T, out []byte) []event.Hit {
	t.Helper()
	var hits []event.Hit
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var h event.Hit
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Errorf("ctwatch check --json printed a line that is not a hit: %v: %q", err, line)
			continue
		}
		hits = append(hits, h)
	}
	return hits
}

// sortedSet returns the distinct elements of names, lower-cased and sorted.
func sortedSet(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
