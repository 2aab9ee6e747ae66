package daemon_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/event"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// chromium returns the browser's path. Without one the test is skipped,
// unless CTWATCHTEST_BROWSER=1 says the run must include it (CI, where
// scripts/test installs it), and then it fails.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CTWATCHTEST_BROWSER") == "1" {
			t.Fatalf("CTWATCHTEST_BROWSER=1 but there is no browser: %v (apt-get install chromium)", err)
		}
		t.Skipf("no %s (Debian's chromium package); set CTWATCHTEST_BROWSER=1 to require it", chromiumPath)
	}
	return chromiumPath
}

// dumpDOM loads u in headless Chromium and returns the DOM it built. The
// browser gets a profile of its own and no network beyond u: nothing it
// does outlives the test or reaches out.
func dumpDOM(t *testing.T, browser, u string) string {
	t.Helper()
	profile, err := os.MkdirTemp("", "ctwatch-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: a browser helper process may still be writing there
	// for a moment after the browser exits, and that is no failure.
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--dump-dom", u)
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+filepath.Join(profile, "config"), "XDG_CACHE_HOME="+filepath.Join(profile, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Helper processes inherit the output pipes; do not wait on them long
	// once the browser itself has exited.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", u, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "</html>") {
		t.Fatalf("chromium --dump-dom %s printed no document:\n%s\n%s", u, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// The browser test: a hit delivered by a running daemon shows up
// on its status page as headless Chromium renders it, filtered by rule; a
// name filter that matches nothing hides it.
func TestStatusPageInHeadlessChromium(t *testing.T) {
	browser := chromium(t)
	s := newSetup(t)
	s.add(t, 8)
	stop, base := runDaemonWeb(t, s.config(t))
	hits := awaitFile(t, filepath.Join(s.dir, "hits.jsonl"), "every hit", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	hit := hits[len(hits)-1]
	name := hit.Cert.DNSNames[0]

	dom := dumpDOM(t, browser, base+"/?rule=ours")
	for _, want := range []string{"ctwatch status", name, hit.ID} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in Chromium (?rule=ours) does not show %q:\n%s", want, dom)
		}
	}
	dom = dumpDOM(t, browser, base+"/?name=nomatch")
	if strings.Contains(dom, hit.ID) || strings.Contains(dom, name) {
		t.Errorf("the page in Chromium (?name=nomatch) shows the hit %s (%s)", hit.ID, name)
	}
	if !strings.Contains(dom, "match the filter") {
		t.Errorf("the page in Chromium (?name=nomatch) does not say that no hits match:\n%s", dom)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
