//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/cryptobyte"

	"github.com/ctwatch/ctwatch/internal/testca"
)

// staticPeer is a running TesseraCT log started by scripts/peers/static.sh.
type staticPeer struct {
	submissionURL string // add-chain etc. live under submissionURL/ct/v1/
	monitoringURL string // checkpoint, tile/..., issuer/...
	origin        string
	keyB64        string // base64 DER SubjectPublicKeyInfo, as the config takes it
	key           []byte // the same key, decoded
	dir           string
}

// startStatic starts a real TesseraCT log in dir (created) that accepts
// chains to the roots in rootsPEM, and stops it when the test ends. A failure
// to start fails the test.
func startStatic(t *testing.T, dir, rootsPEM string) staticPeer {
	t.Helper()
	env := startPeer(t, "static.sh", dir, rootsPEM, "posix.log", "staticserve.log")
	p := staticPeer{
		submissionURL: env["CT_SUBMISSION_URL"],
		monitoringURL: env["CT_MONITORING_URL"],
		origin:        env["CT_ORIGIN"],
		keyB64:        env["CT_KEY"],
		dir:           dir,
	}
	if p.submissionURL == "" || p.monitoringURL == "" || p.origin == "" || p.keyB64 == "" {
		t.Fatalf("env file lacks CT_SUBMISSION_URL, CT_MONITORING_URL, CT_ORIGIN or CT_KEY: %v", env)
	}
	var err error
	if p.key, err = base64.StdEncoding.DecodeString(p.keyB64); err != nil {
		t.Fatalf("CT_KEY is not base64: %v", err)
	}
	return p
}

// logEntry returns the config entry that follows the peer as name.
func (p staticPeer) logEntry(name string) logEntry {
	return logEntry{name: name, kind: "static", url: p.submissionURL, key: p.keyB64,
		monitoringURL: p.monitoringURL, origin: p.origin}
}

// TestRealStaticLog runs ctwatch against a real TesseraCT log: what is
// submitted for watched names must come out of the JSONL sink, exactly once
// per certificate and once per precertificate/final pair, at the index the
// log gave it; nothing else may. Then TesseraCT's own verifier, fsck, must
// find the log sound at the very tree size ctwatch says it verified.
func TestRealStaticLog(t *testing.T) {
	work := t.TempDir()
	ca, err := testca.New("ctwatch static e2e")
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	rootsPath := filepath.Join(work, "roots.pem")
	if err := os.WriteFile(rootsPath, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	peer := startStatic(t, filepath.Join(work, "peer"), rootsPath)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	lc := newLogClient(t, peer.submissionURL, peer.key)
	s := &submitter{t: t, ctx: ctx, lc: lc, chain: ca.Chain(), logID: sha256.Sum256(peer.key)}

	// Stage 1: certificates in the log before ctwatch starts (a backfill).
	leaves := []struct {
		label   string
		names   []string
		watched bool
	}{
		{"www", []string{"www.tiles.example"}, true},
		{"wildcard", []string{"*.tiles.example"}, true},
		{"apex", []string{"tiles.example"}, true},
		{"one-san-of-two", []string{"api.tiles.example", "www.example.org"}, true},
		{"deep", []string{"a.b.c.tiles.example"}, true},
		{"other-domain", []string{"www.example.org"}, false},
		{"watched-as-prefix", []string{"tiles.example.net"}, false},
		{"watched-as-string-suffix", []string{"notiles.example"}, false},
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
	pre, final := s.precertAndFinal(ca, "shop.tiles.example")
	if pre.tbs != final.tbs {
		t.Fatalf("test CA bug: precert TBS %s != final TBS %s (poison/SCT list removed)", pre.tbs, final.tbs)
	}
	subs = append(subs, pre, final)

	cp := waitCheckpoint(t, ctx, peer, uint64(len(subs)))
	index := readBackStatic(t, ctx, peer, cp)
	for _, sub := range subs {
		if _, ok := index[sub.sha]; !ok {
			t.Fatalf("%s (%s) is not in the log's data tiles after add-chain", sub.label, sub.sha)
		}
	}
	t.Logf("stage 1: %d certificates in the log (checkpoint size %d), all read back from data tiles that hash to the signed root",
		len(subs), cp.size)

	// ctwatch follows the log from index 0.
	bin := buildCtwatch(t)
	cfgPath := filepath.Join(work, "ctwatch.yaml")
	rulesPath := filepath.Join(work, "rules.yaml")
	hitsPath := filepath.Join(work, "hits.jsonl")
	logPath := filepath.Join(work, "ctwatch.log")
	dumpOnFailure(t, logPath, hitsPath)
	if err := os.WriteFile(rulesPath, []byte(rulesYAML("e2e-names", ".tiles.example")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctwatchConfig{
		dataDir:   filepath.Join(work, "data"),
		logs:      []logEntry{peer.logEntry("tessera")},
		rulesFile: rulesPath,
		hitsFile:  hitsPath,
		monitor:   "  poll_interval: 500ms\n",
	}.write(t, cfgPath)
	run := startProcess(t, "ctwatch run", logPath, bin, "run", "--config", cfgPath)
	awaitHits(t, "hits for the backfilled certificates", run, hitsPath, subs, pre, final)

	// Stage 2: a certificate logged while ctwatch tails the log. Its hit
	// also shows that ctwatch went past the final certificate, so a second
	// hit for the precert/final pair would have been written by now.
	lastDER, err := ca.Leaf("last.tiles.example")
	if err != nil {
		t.Fatal(err)
	}
	last := s.addChain("tailed", []string{"last.tiles.example"}, lastDER, true)
	subs = append(subs, last)
	awaitHits(t, "a hit for the certificate logged while ctwatch runs", run, hitsPath, []*submitted{last}, nil, nil)

	run.signal(t, syscall.SIGTERM)
	if code := run.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("ctwatch run exited with %d after SIGTERM, want 0", code)
	}

	cp = waitCheckpoint(t, ctx, peer, uint64(len(subs)))
	index = readBackStatic(t, ctx, peer, cp)
	hits, err := readHits(hitsPath)
	if err != nil {
		t.Error(err)
	}
	checkLogHits(t, hits, subs, index, "tessera", peer.submissionURL, pre, final)

	// The log's own verifier agrees that the log is sound, and ctwatch
	// verified the same tree.
	fsckSize := runFsck(t, ctx, peer)
	if fsckSize != cp.size || fsckSize != uint64(len(subs)) {
		t.Errorf("fsck verified a tree of size %d; the checkpoint has %d and the test submitted %d certificates",
			fsckSize, cp.size, len(subs))
	}
	row := logsRow(t, bin, cfgPath, "tessera")
	if row.treeSize != fsckSize {
		t.Errorf("ctwatch logs shows tree size %d for tessera, fsck verified %d", row.treeSize, fsckSize)
	}
	if row.nextIndex != row.treeSize {
		t.Errorf("ctwatch logs shows next index %d of tree size %d for tessera after a complete run", row.nextIndex, row.treeSize)
	}
}

// awaitHits waits until the JSONL file at hitsPath has a hit for each
// watched certificate of subs other than pre and final, and one for pre or
// final (when not nil): pre and final are one certificate to a rule.
func awaitHits(t *testing.T, what string, run *process, hitsPath string, subs []*submitted, pre, final *submitted) {
	t.Helper()
	pollUntil(t, what, 120*time.Second, run.done, func() (bool, string) {
		hits, _ := readHits(hitsPath) // malformed lines are judged at the end
		seen := map[string]bool{}
		for _, h := range hits {
			seen[h.hit.Cert.SHA256] = true
		}
		var missing []string
		for _, sub := range subs {
			if sub.watched && sub != pre && sub != final && !seen[sub.sha] {
				missing = append(missing, sub.label)
			}
		}
		if pre != nil && !seen[pre.sha] && !seen[final.sha] {
			missing = append(missing, "precert/final pair")
		}
		return len(missing) == 0, fmt.Sprintf("%d hit lines; missing %v", len(hits), missing)
	})
}

// staticCheckpoint is a checkpoint whose note signature was verified.
type staticCheckpoint struct {
	size uint64
	root []byte
	raw  []byte
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200q", url, resp.Status, body)
	}
	return body, nil
}

// fetchCheckpoint reads the peer's checkpoint and verifies it with ct-go,
// independently of ctwatch's code: the origin line, the signature line of
// the origin's key (key ID per static-ct-api), and the RFC 6962 tree head
// signature it carries.
func fetchCheckpoint(ctx context.Context, p staticPeer) (*staticCheckpoint, error) {
	raw, err := fetch(ctx, p.monitoringURL+"/checkpoint")
	if err != nil {
		return nil, err
	}
	body, sigs, ok := strings.Cut(string(raw), "\n\n")
	if !ok {
		return nil, fmt.Errorf("checkpoint has no signature block: %q", raw)
	}
	lines := strings.Split(body, "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("checkpoint body has %d lines: %q", len(lines), raw)
	}
	if lines[0] != p.origin {
		return nil, fmt.Errorf("checkpoint origin %q, want %q", lines[0], p.origin)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint size %q: %w", lines[1], err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return nil, fmt.Errorf("checkpoint root %q is not a base64 SHA-256 hash", lines[2])
	}

	logID := sha256.Sum256(p.key)
	idInput := append([]byte(p.origin+"\n\x05"), logID[:]...)
	idSum := sha256.Sum256(idInput)
	pub, err := x509.ParsePKIXPublicKey(p.key)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	verifier, err := ct.NewSignatureVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		name, sig64, ok := strings.Cut(strings.TrimPrefix(line, "\u2014 "), " ")
		if !ok || !strings.HasPrefix(line, "\u2014 ") || name != p.origin {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(sig64)
		if err != nil || len(sig) < 12 {
			return nil, fmt.Errorf("checkpoint signature %q is malformed", sig64)
		}
		if !bytes.Equal(sig[:4], idSum[:4]) {
			return nil, fmt.Errorf("checkpoint signature key ID %x, want %x", sig[:4], idSum[:4])
		}
		sth := ct.SignedTreeHead{
			Version:   ct.V1,
			TreeSize:  size,
			Timestamp: binary.BigEndian.Uint64(sig[4:12]),
		}
		copy(sth.SHA256RootHash[:], root)
		rest, err := cttls.Unmarshal(sig[12:], &sth.TreeHeadSignature)
		if err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("checkpoint signature is not a DigitallySigned (%v, %d trailing bytes)", err, len(rest))
		}
		if err := verifier.VerifySTHSignature(sth); err != nil {
			return nil, fmt.Errorf("checkpoint signature: %w", err)
		}
		return &staticCheckpoint{size: size, root: root, raw: raw}, nil
	}
	return nil, fmt.Errorf("checkpoint has no signature by %q: %q", p.origin, raw)
}

// waitCheckpoint polls the peer's checkpoint until it covers n entries.
func waitCheckpoint(t *testing.T, ctx context.Context, p staticPeer, n uint64) *staticCheckpoint {
	t.Helper()
	var cp *staticCheckpoint
	pollUntil(t, fmt.Sprintf("a checkpoint with %d entries", n), 60*time.Second, nil, func() (bool, string) {
		got, err := fetchCheckpoint(ctx, p)
		if err != nil {
			return false, err.Error()
		}
		cp = got
		return got.size >= n, fmt.Sprintf("checkpoint size %d", got.size)
	})
	return cp
}

// tileIndexPath encodes a tile index as tlog-tiles paths do: groups of
// three digits, every group but the last prefixed with "x".
func tileIndexPath(n uint64) string {
	p := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		p = fmt.Sprintf("x%03d/", n%1000) + p
	}
	return p
}

// tileEntry is one TileLeaf of a static-ct-api data tile.
type tileEntry struct {
	der       []byte // the certificate, or the precertificate as submitted
	precert   bool
	leafIndex uint64 // from the leaf_index extension
	chain     [][]byte
	leafHash  []byte // RFC 6962 Merkle leaf hash
}

// parseDataTile decodes the TileLeaf structures of a data tile
// (c2sp.org/static-ct-api) and computes each entry's Merkle leaf hash from
// the MerkleTreeLeaf of RFC 6962 section 3.4 it stands for.
func parseDataTile(data []byte) ([]tileEntry, error) {
	var out []tileEntry
	s := cryptobyte.String(data)
	for !s.Empty() {
		var e tileEntry
		var timestamp uint64
		var entryType uint16
		if !s.ReadUint64(&timestamp) || !s.ReadUint16(&entryType) {
			return nil, fmt.Errorf("entry %d: truncated header", len(out))
		}
		leaf := cryptobyte.NewBuilder(nil)
		leaf.AddUint8(0) // version v1
		leaf.AddUint8(0) // timestamped_entry
		leaf.AddUint64(timestamp)
		leaf.AddUint16(entryType)
		var signed, exts cryptobyte.String
		switch entryType {
		case 0: // x509_entry
			if !s.ReadUint24LengthPrefixed(&signed) {
				return nil, fmt.Errorf("entry %d: truncated certificate", len(out))
			}
			e.der = signed
			leaf.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(signed) })
		case 1: // precert_entry
			var issuerKeyHash []byte
			if !s.ReadBytes(&issuerKeyHash, sha256.Size) || !s.ReadUint24LengthPrefixed(&signed) {
				return nil, fmt.Errorf("entry %d: truncated precert entry", len(out))
			}
			e.precert = true
			leaf.AddBytes(issuerKeyHash)
			leaf.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(signed) })
		default:
			return nil, fmt.Errorf("entry %d: unknown entry type %d", len(out), entryType)
		}
		if !s.ReadUint16LengthPrefixed(&exts) {
			return nil, fmt.Errorf("entry %d: truncated extensions", len(out))
		}
		leaf.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(exts) })
		found := false
		for !exts.Empty() {
			var typ uint8
			var val cryptobyte.String
			if !exts.ReadUint8(&typ) || !exts.ReadUint16LengthPrefixed(&val) {
				return nil, fmt.Errorf("entry %d: malformed extensions", len(out))
			}
			if typ == 0 { // leaf_index
				if len(val) != 5 {
					return nil, fmt.Errorf("entry %d: leaf_index of %d bytes", len(out), len(val))
				}
				e.leafIndex = uint64(val[0])<<32 | uint64(binary.BigEndian.Uint32(val[1:]))
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("entry %d: no leaf_index extension", len(out))
		}
		if e.precert {
			var pre cryptobyte.String
			if !s.ReadUint24LengthPrefixed(&pre) {
				return nil, fmt.Errorf("entry %d: truncated pre_certificate", len(out))
			}
			e.der = pre
		}
		var fps cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&fps) || len(fps)%sha256.Size != 0 {
			return nil, fmt.Errorf("entry %d: malformed chain fingerprints", len(out))
		}
		for len(fps) > 0 {
			e.chain = append(e.chain, fps[:sha256.Size])
			fps = fps[sha256.Size:]
		}
		preimage, err := leaf.Bytes()
		if err != nil {
			return nil, fmt.Errorf("entry %d: leaf: %w", len(out), err)
		}
		e.leafHash = rfc6962.DefaultHasher.HashLeaf(preimage)
		out = append(out, e)
	}
	return out, nil
}

// readBackStatic reads every entry of the tree of cp from the peer's data
// tiles, checks that their leaf hashes make the checkpoint's signed root,
// that each entry's leaf_index is its position, and that every chain
// certificate is served under issuer/ with the right hash. It returns the
// index of each certificate (for a precertificate entry, of the
// precertificate as submitted) by its SHA-256. This is the test's own reader,
// so that the expected indexes do not come from the code under test.
func readBackStatic(t *testing.T, ctx context.Context, p staticPeer, cp *staticCheckpoint) map[string]uint64 {
	t.Helper()
	index := map[string]uint64{}
	issuers := map[string]bool{}
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for n := uint64(0); n*256 < cp.size; n++ {
		path := "/tile/data/" + tileIndexPath(n)
		want := min(cp.size-n*256, 256)
		if want < 256 {
			path += fmt.Sprintf(".p/%d", want)
		}
		data, err := fetch(ctx, p.monitoringURL+path)
		if err != nil {
			t.Fatalf("data tile %d: %v", n, err)
		}
		entries, err := parseDataTile(data)
		if err != nil {
			t.Fatalf("data tile %s: %v", path, err)
		}
		if uint64(len(entries)) != want {
			t.Fatalf("data tile %s holds %d entries, want %d", path, len(entries), want)
		}
		for i, e := range entries {
			idx := n*256 + uint64(i)
			if e.leafIndex != idx {
				t.Fatalf("entry %d carries leaf_index %d", idx, e.leafIndex)
			}
			sha := sha256Hex(e.der)
			if prev, dup := index[sha]; dup {
				t.Fatalf("certificate %s logged twice, at %d and %d", sha, prev, idx)
			}
			index[sha] = idx
			if err := rng.Append(e.leafHash, nil); err != nil {
				t.Fatalf("entry %d: %v", idx, err)
			}
			for _, fp := range e.chain {
				issuers[hex.EncodeToString(fp)] = true
			}
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatalf("root of the data tiles: %v", err)
	}
	if !bytes.Equal(root, cp.root) {
		t.Fatalf("the data tiles of a %d-entry tree hash to %x; the signed checkpoint says %x", cp.size, root, cp.root)
	}
	for fp := range issuers {
		der, err := fetch(ctx, p.monitoringURL+"/issuer/"+fp)
		if err != nil {
			t.Fatalf("issuer %s: %v", fp, err)
		}
		if got := sha256Hex(der); got != fp {
			t.Fatalf("issuer/%s serves a certificate whose SHA-256 is %s", fp, got)
		}
	}
	return index
}

// fsckSuccess is what TesseraCT's fsck logs once the tree it rebuilt from
// the entry bundles has the checkpoint's root.
var fsckSuccess = regexp.MustCompile(`Successfully fsck'd log with size (\d+) and root`)

// runFsck runs TesseraCT's fsck over the peer's read side and returns the
// size of the tree it verified. fsck v0.1.1 with --ui=false exits 0 even
// when its check fails (main returns as soon as the check ends, before it
// looks at the error), so success is read from its log: the line it writes
// only after the rebuilt root matched the checkpoint, and no issuer that it
// could not fetch.
func runFsck(t *testing.T, ctx context.Context, p staticPeer) uint64 {
	t.Helper()
	bin := filepath.Join(peersBin(t), "fsck")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--monitoring_url="+p.monitoringURL, "--origin="+p.origin,
		"--public_key="+p.keyB64, "--ui=false", "--N=4")
	out, err := cmd.CombinedOutput()
	if werr := os.WriteFile(filepath.Join(p.dir, "fsck.log"), out, 0o644); werr != nil {
		t.Logf("keeping a copy of fsck's output: %v", werr)
	}
	if err != nil {
		t.Fatalf("fsck: %v\n%s", err, out)
	}
	for _, bad := range []string{"FAILED", "Couldn't fetch issuer"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Fatalf("fsck reported %q:\n%s", bad, out)
		}
	}
	m := fsckSuccess.FindSubmatch(out)
	if m == nil {
		t.Fatalf("fsck did not report success:\n%s", out)
	}
	size, err := strconv.ParseUint(string(m[1]), 10, 64)
	if err != nil {
		t.Fatalf("fsck size %q: %v", m[1], err)
	}
	t.Logf("fsck verified the log at size %d", size)
	return size
}

// peersBin is where scripts/peers builds the peers' binaries.
func peersBin(t *testing.T) string {
	if dir := os.Getenv("CTWATCHTEST_PEERS_BIN"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatalf("home directory: %v", err)
	}
	return filepath.Join(home, ".cache", "ctwatch-peers", "bin")
}

// logsRowInfo is one log's row of `ctwatch logs`.
type logsRowInfo struct {
	treeSize, nextIndex uint64
}

// logsRow runs `ctwatch logs --config cfg` (the daemon must be stopped, so
// that it reads the positions) and returns the numbers of the row of the log
// named name. It fails the test when the row is missing or has no position.
func logsRow(t *testing.T, bin, cfg, name string) logsRowInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "logs", "--config", cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ctwatch logs: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	rows, err := parseLogsTable(stdout.String())
	if err != nil {
		t.Fatalf("ctwatch logs: %v\n%s", err, stdout.String())
	}
	row, ok := rows[name]
	if !ok {
		t.Fatalf("ctwatch logs has no row for %s:\n%s", name, stdout.String())
	}
	var info logsRowInfo
	for _, f := range []struct {
		col string
		dst *uint64
	}{{"TREE SIZE", &info.treeSize}, {"NEXT INDEX", &info.nextIndex}} {
		if *f.dst, err = strconv.ParseUint(row[f.col], 10, 64); err != nil {
			t.Fatalf("ctwatch logs: %s of %s is %q, not a number:\n%s", f.col, name, row[f.col], stdout.String())
		}
	}
	return info
}

// columnGap separates the columns of a tabwriter table with padding 2;
// headers such as "TREE SIZE" hold single spaces.
var columnGap = regexp.MustCompile(`\s{2,}`)

// parseLogsTable parses the table `ctwatch logs` prints: a header line, one
// row per log, then a summary line that does not have the header's columns.
// It returns the rows by NAME, each as column header to value.
func parseLogsTable(out string) (map[string]map[string]string, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		return nil, errors.New("no output")
	}
	header := columnGap.Split(strings.TrimSpace(lines[0]), -1)
	if len(header) == 0 || header[0] != "NAME" {
		return nil, fmt.Errorf("header %q does not start with NAME", lines[0])
	}
	rows := map[string]map[string]string{}
	for _, line := range lines[1:] {
		cells := columnGap.Split(strings.TrimSpace(line), -1)
		if len(cells) != len(header) {
			continue // the summary line
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows[cells[0]] = row
	}
	return rows, nil
}
