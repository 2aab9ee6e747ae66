package daemon_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
	"github.com/ctwatch/ctwatch/internal/natstest"
	"github.com/ctwatch/ctwatch/internal/testca"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
)

// shared is several ctwatch processes on one nats-server sharing six test
// logs, delivering to one webhook receiver through one shared sink.
type shared struct {
	dir     string
	url     string // nats
	logs    []*ctlogtest.Log
	ca      *testca.CA
	watched int
	hook    *receiver
}

func newShared(t *testing.T, nlogs int) *shared {
	t.Helper()
	srv := natstest.Start(t, nil)
	ca, err := testca.New("lease test")
	if err != nil {
		t.Fatal(err)
	}
	s := &shared{dir: t.TempDir(), url: srv.ClientURL(), ca: ca, hook: newReceiver(t)}
	for range nlogs {
		l, err := ctlogtest.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		s.logs = append(s.logs, l)
	}
	rules := "rules:\n  - name: ours\n    severity: high\n    match:\n      domains: [.watched.example]\n"
	if err := os.WriteFile(filepath.Join(s.dir, "rules.yaml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// add appends n certificates to every log, three in four watched.
func (s *shared) add(t *testing.T, n int) {
	t.Helper()
	for li, l := range s.logs {
		for i := range n {
			name := fmt.Sprintf("l%d-%d-%d.watched.example", li, l.Added(), i)
			if i%4 == 3 {
				name = fmt.Sprintf("l%d-%d-%d.unwatched.example", li, l.Added(), i)
			} else {
				s.watched++
			}
			der, err := s.ca.Leaf(name)
			if err != nil {
				t.Fatal(err)
			}
			l.AddX509(der, s.ca.Chain())
		}
		l.Publish()
	}
}

func (s *shared) config(t *testing.T, name string) *config.Config {
	t.Helper()
	var logs strings.Builder
	for i, l := range s.logs {
		fmt.Fprintf(&logs, "  - {name: log%d, url: %q, key: %s, start: 0}\n", i, l.URL(), base64.StdEncoding.EncodeToString(l.PublicKeyDER()))
	}
	yaml := fmt.Sprintf(`data_dir: %s
log_list: ""
logs:
%snats:
  url: %s
cluster:
  lease_ttl: 1s
monitor:
  poll_interval: 20ms
  batch_size: 50
web:
  listen: 127.0.0.1:0
rules:
  files: [%s]
sinks:
  - {name: hook, type: webhook, url: %q, events: false}
`, filepath.Join(s.dir, name), logs.String(), s.url, filepath.Join(s.dir, "rules.yaml"), s.hook.srv.URL)
	path := filepath.Join(s.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tailed returns the logs the process at base tails, from /api/status.
func tailed(t *testing.T, base string) []string {
	t.Helper()
	code, body := get(t, base+"/api/status")
	if code != 200 {
		t.Fatalf("/api/status: %d %s", code, body)
	}
	var r struct {
		Logs []struct {
			Name string `json:"name"`
		} `json:"logs"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range r.Logs {
		out = append(out, l.Name)
	}
	return out
}

// awaitSpread waits until every log is tailed by exactly one of the
// processes at bases and each tails at most most.
func (s *shared) awaitSpread(t *testing.T, what string, most int, bases map[string]string) {
	t.Helper()
	awaitCond(t, what, func() (bool, string) {
		by := map[string][]string{}
		count := map[string]int{}
		ok := true
		for name, base := range bases {
			ls := tailed(t, base)
			slices.Sort(ls)
			by[name] = ls
			ok = ok && len(ls) <= most
			for _, l := range ls {
				count[l]++
			}
		}
		for i := range s.logs {
			ok = ok && count[fmt.Sprintf("log%d", i)] == 1
		}
		return ok && len(count) == len(s.logs), fmt.Sprint(by)
	})
}

// awaitHits waits until every watched certificate's hit was delivered,
// then checks that none was delivered twice.
func (s *shared) awaitHits(t *testing.T, what string) {
	t.Helper()
	awaitCond(t, what, func() (bool, string) {
		n := len(s.hook.distinct())
		return n == s.watched, fmt.Sprintf("%d distinct hits delivered, want %d", n, s.watched)
	})
	for id, n := range s.hook.distinct() {
		if n != 1 {
			t.Errorf("%s: hit %s delivered %d times", what, id, n)
		}
	}
}

// Three processes share six logs 2/2/2; one crashes and the other two take
// its logs over and resume from its checkpoints (every hit delivered once);
// a fourth joins and the logs spread again.
func TestProcessesShareLogs(t *testing.T) {
	s := newShared(t, 6)
	s.add(t, 20)
	stops := map[string]func() error{}
	bases := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		var opts []daemon.Option
		if name == "b" {
			// b will "crash": leave its leases to expire.
			opts = append(opts, daemon.KeepLeases())
		}
		stops[name], bases[name] = runDaemonWeb(t, s.config(t, name), opts...)
	}
	s.awaitSpread(t, "three processes, six logs", 2, bases)
	s.awaitHits(t, "first hits")

	// b crashes: it gives nothing back, its peers wait for its leases
	// to expire.
	if err := stops["b"](); err != nil {
		t.Fatal(err)
	}
	delete(bases, "b")
	s.add(t, 20)
	s.awaitSpread(t, "b's logs taken over", 3, bases)
	s.awaitHits(t, "hits after b crashed")

	// d joins: at most ceil(6/3) = 2 each again.
	_, bases["d"] = runDaemonWeb(t, s.config(t, "d"))
	s.add(t, 10)
	s.awaitSpread(t, "d joined", 2, bases)
	s.awaitHits(t, "hits after d joined")
}
