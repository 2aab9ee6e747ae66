package exec_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/alerttest"
	"github.com/ctwatch/ctwatch/alerting/exec"
	"github.com/ctwatch/ctwatch/event"
)

// The tests run real programs: small /bin/sh scripts written into a temp
// directory. They do not call t.Parallel: writing an executable while
// another goroutine forks can make exec fail with ETXTBSY.

// script writes body as an executable /bin/sh script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder is a script that stores its standard input, its environment
// exactly as it got it (/proc/$$/environ, NUL-separated) and its
// arguments in the directory given as its first argument.
const recorder = `out="$1"
cat > "$out/stdin"
cat /proc/$$/environ > "$out/env"
printf '%s\n' "$@" > "$out/args"
`

// run is what the recorder saw.
type run struct {
	stdin []byte
	env   map[string]string
	args  []string
}

func record(t *testing.T, m *alerting.Message, cfg exec.Config) run {
	t.Helper()
	out := t.TempDir()
	cfg.Command = script(t, recorder)
	cfg.Args = append([]string{out}, cfg.Args...)
	n, err := exec.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Notify(t.Context(), m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	var r run
	if r.stdin, err = os.ReadFile(filepath.Join(out, "stdin")); err != nil {
		t.Fatal(err)
	}
	envRaw, err := os.ReadFile(filepath.Join(out, "env"))
	if err != nil {
		t.Fatal(err)
	}
	r.env = map[string]string{}
	for kv := range bytes.SplitSeq(bytes.TrimSuffix(envRaw, []byte{0}), []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		if _, dup := r.env[k]; dup {
			t.Errorf("variable %s given twice", k)
		}
		r.env[k] = v
	}
	args, err := os.ReadFile(filepath.Join(out, "args"))
	if err != nil {
		t.Fatal(err)
	}
	r.args = strings.Split(strings.TrimSuffix(string(args), "\n"), "\n")
	return r
}

// certspotterVars are the variables of certspotter-script(8); ctwatch
// sets those it has an equivalent for, and must not leak the others.
var certspotterVars = []string{
	"EVENT", "SUMMARY", "WATCH_ITEM", "LOG_URI", "ENTRY_INDEX", "TBS_SHA256", "CERT_SHA256",
	"PUBKEY_SHA256", "CERT_FILENAME", "JSON_FILENAME", "TEXT_FILENAME", "ENTRY_FILENAME",
	"NOT_BEFORE", "NOT_BEFORE_UNIXTIME", "NOT_BEFORE_RFC3339", "NOT_AFTER", "NOT_AFTER_UNIXTIME",
	"NOT_AFTER_RFC3339", "VALIDITY_PARSE_ERROR", "SUBJECT_DN", "SUBJECT_PARSE_ERROR", "ISSUER_DN",
	"ISSUER_PARSE_ERROR", "SERIAL", "SERIAL_PARSE_ERROR", "LEAF_HASH", "PARSE_ERROR", "DNS_NAMES",
	"IP_ADDRESSES",
}

// described returns the variables of env that describe the message: every
// CTWATCH_* and every certspotter variable.
func described(env map[string]string) map[string]string {
	d := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "CTWATCH_") || slices.Contains(certspotterVars, k) {
			d[k] = v
		}
	}
	return d
}

// hitVars is what a hit must produce, built from the hit itself.
func hitVars(h *event.Hit, summary string) map[string]string {
	names := strings.Join(h.Cert.DNSNames, ",")
	v := map[string]string{
		"CTWATCH_KIND":        "hit",
		"CTWATCH_ID":          h.ID,
		"CTWATCH_SUMMARY":     summary,
		"CTWATCH_RULE":        h.Rule,
		"CTWATCH_SEVERITY":    string(h.Severity),
		"CTWATCH_REASON":      h.Reason,
		"CTWATCH_TAGS":        strings.Join(h.Tags, ","),
		"CTWATCH_DNS_NAMES":   names,
		"CTWATCH_CERT_SHA256": h.Cert.SHA256,
		"CTWATCH_TBS_SHA256":  h.Cert.TBSSHA256,
		"CTWATCH_PRECERT":     "1",
		"CTWATCH_ISSUER":      h.Cert.Issuer,
		"CTWATCH_SUBJECT":     h.Cert.Subject,
		"CTWATCH_NOT_BEFORE":  "2026-01-02T03:04:05Z",
		"CTWATCH_NOT_AFTER":   "2026-04-02T03:04:05Z",
		"CTWATCH_CRTSH_URL":   "https://crt.sh/?sha256=" + h.Cert.SHA256,
		"CTWATCH_LOG_NAME":    h.Log.Name,
		"CTWATCH_LOG_URL":     h.Log.URL,
		"CTWATCH_LOG_INDEX":   strconv.FormatUint(h.Log.Index, 10),

		"EVENT":               "discovered_cert",
		"SUMMARY":             summary,
		"LOG_URI":             h.Log.URL,
		"ENTRY_INDEX":         strconv.FormatUint(h.Log.Index, 10),
		"CERT_SHA256":         h.Cert.SHA256,
		"TBS_SHA256":          h.Cert.TBSSHA256,
		"DNS_NAMES":           names,
		"SUBJECT_DN":          h.Cert.Subject,
		"ISSUER_DN":           h.Cert.Issuer,
		"NOT_BEFORE":          "2026-01-02 03:04:05 +0000 UTC",
		"NOT_BEFORE_UNIXTIME": strconv.FormatInt(h.Cert.NotBefore.Unix(), 10),
		"NOT_BEFORE_RFC3339":  "2026-01-02T03:04:05Z",
		"NOT_AFTER":           "2026-04-02 03:04:05 +0000 UTC",
		"NOT_AFTER_UNIXTIME":  strconv.FormatInt(h.Cert.NotAfter.Unix(), 10),
		"NOT_AFTER_RFC3339":   "2026-04-02T03:04:05Z",
	}
	return v
}

func testDigest() *event.Digest {
	notBefore := alerttest.SampleHit().Cert.NotBefore
	d := &event.Digest{
		ID: "digest-1", Kind: event.DigestKind, Rule: "our-names", Severity: event.SeverityCritical,
		Count: 1000, First: notBefore, Last: notBefore.Add(time.Minute), MoreNames: 980,
		URL: "https://ctwatch.example/digests/digest-1",
	}
	for i := range 20 {
		d.Names = append(d.Names, fmt.Sprintf("host%d.example.com", i))
	}
	return d
}

// TestEnvironment runs the recorder for every kind of message and checks
// standard input, arguments and every variable that describes the
// message, exactly.
func TestEnvironment(t *testing.T) {
	// Stale values in the daemon's environment must not reach a message
	// that lacks the field; unrelated variables pass through.
	t.Setenv("CTWATCH_RULE", "stale")
	t.Setenv("JSON_FILENAME", "/stale.json")
	t.Setenv("DNS_NAMES", "stale.example")
	t.Setenv("EXEC_TEST_INHERITED", "kept")

	h := alerttest.SampleHit()
	notBefore := h.Cert.NotBefore
	ev := &event.LogEvent{
		ID: "ev-1", Kind: event.BadSignature, Time: notBefore, Detail: "STH at size 1000 does not verify",
		Log: event.LogRef{Name: "Google Argon", URL: "https://ct.example/argon/", Index: 0},
	}
	mal := &event.LogEvent{
		ID: "ev-2", Kind: event.MalformedEntry, Time: notBefore, Detail: "asn1: syntax error",
		Log: event.LogRef{Name: "Google Argon", URL: "https://ct.example/argon/", Index: 0},
	}
	d := testDigest()
	hostile := alerttest.SampleHit()
	hostile.Log = nil
	hostile.Tags = nil
	hostile.Cert.Precert = false
	hostile.Cert.DNSNames = []string{"evil\n.example", "nul\x00byte.example", "$(reboot).example"}
	hostile.Cert.Subject = "CN=a\nEVENT=fake"
	hostile.Reason = "line one\nline two"

	tests := []struct {
		name string
		msg  *alerting.Message
		want map[string]string
	}{
		{
			name: "hit",
			msg:  &alerting.Message{Data: []byte(`{"id":"hit"}`), Hit: h},
			want: hitVars(h, "HIGH our-names: www.example.com (+3 more)"),
		},
		{
			name: "test hit",
			msg:  &alerting.Message{Data: []byte(`{"id":"hit"}`), Hit: h, Test: true},
			want: func() map[string]string {
				v := hitVars(h, "[TEST] HIGH our-names: www.example.com (+3 more)")
				v["CTWATCH_TEST"] = "1"
				return v
			}(),
		},
		{
			name: "hostile hit without log",
			msg:  &alerting.Message{Data: []byte(`{}`), Hit: hostile},
			want: func() map[string]string {
				v := hitVars(alerttest.SampleHit(), "HIGH our-names: evil\n.example (+2 more)")
				for _, k := range []string{"CTWATCH_LOG_NAME", "CTWATCH_LOG_URL", "CTWATCH_LOG_INDEX", "LOG_URI", "ENTRY_INDEX", "CTWATCH_PRECERT"} {
					delete(v, k)
				}
				names := "evil\n.example,nulbyte.example,$(reboot).example"
				v["CTWATCH_DNS_NAMES"], v["DNS_NAMES"] = names, names
				v["CTWATCH_TAGS"] = ""
				v["CTWATCH_SUBJECT"], v["SUBJECT_DN"] = hostile.Cert.Subject, hostile.Cert.Subject
				v["CTWATCH_REASON"] = hostile.Reason
				return v
			}(),
		},
		{
			name: "event",
			msg:  &alerting.Message{Data: []byte(`{"id":"ev-1"}`), Event: ev},
			want: map[string]string{
				"CTWATCH_KIND":       "event",
				"CTWATCH_ID":         "ev-1",
				"CTWATCH_SUMMARY":    "log bad_signature: Google Argon",
				"CTWATCH_EVENT_KIND": "bad_signature",
				"CTWATCH_LOG_NAME":   "Google Argon",
				"CTWATCH_LOG_URL":    "https://ct.example/argon/",
				"CTWATCH_TIME":       "2026-01-02T03:04:05Z",
				"CTWATCH_DETAIL":     ev.Detail,
				"EVENT":              "error",
				"SUMMARY":            "log bad_signature: Google Argon",
			},
		},
		{
			name: "malformed entry",
			msg:  &alerting.Message{Data: []byte(`{"id":"ev-2"}`), Event: mal, Test: true},
			want: map[string]string{
				"CTWATCH_KIND":       "event",
				"CTWATCH_ID":         "ev-2",
				"CTWATCH_TEST":       "1",
				"CTWATCH_SUMMARY":    "[TEST] log malformed_entry: Google Argon",
				"CTWATCH_EVENT_KIND": "malformed_entry",
				"CTWATCH_LOG_NAME":   "Google Argon",
				"CTWATCH_LOG_URL":    "https://ct.example/argon/",
				"CTWATCH_LOG_INDEX":  "0",
				"CTWATCH_TIME":       "2026-01-02T03:04:05Z",
				"CTWATCH_DETAIL":     mal.Detail,
				"EVENT":              "malformed_cert",
				"SUMMARY":            "[TEST] log malformed_entry: Google Argon",
				"LOG_URI":            "https://ct.example/argon/",
				"ENTRY_INDEX":        "0",
				"PARSE_ERROR":        mal.Detail,
			},
		},
		{
			name: "digest",
			msg:  &alerting.Message{Data: []byte(`{"id":"digest-1"}`), Digest: d},
			want: map[string]string{
				"CTWATCH_KIND":       "digest",
				"CTWATCH_ID":         "digest-1",
				"CTWATCH_SUMMARY":    "CRITICAL 1000 hits for rule our-names",
				"CTWATCH_RULE":       "our-names",
				"CTWATCH_SEVERITY":   "critical",
				"CTWATCH_COUNT":      "1000",
				"CTWATCH_DNS_NAMES":  strings.Join(d.Names, ","),
				"CTWATCH_MORE_NAMES": "980",
				"CTWATCH_FIRST":      "2026-01-02T03:04:05Z",
				"CTWATCH_LAST":       "2026-01-02T03:05:05Z",
				"CTWATCH_URL":        d.URL,
				"EVENT":              "digest",
				"SUMMARY":            "CRITICAL 1000 hits for rule our-names",
				"DNS_NAMES":          strings.Join(d.Names, ","),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(t, tt.msg, exec.Config{Args: []string{"--flag", "two words"}, Env: []string{"EXTRA=1"}})
			if !bytes.Equal(r.stdin, tt.msg.Data) {
				t.Errorf("stdin %q, want %q", r.stdin, tt.msg.Data)
			}
			if got := described(r.env); !maps.Equal(got, tt.want) {
				for k := range maps.Keys(got) {
					if want, ok := tt.want[k]; !ok || want != got[k] {
						t.Errorf("%s = %q, want %q (set: %v)", k, got[k], want, ok)
					}
				}
				for k := range maps.Keys(tt.want) {
					if _, ok := got[k]; !ok {
						t.Errorf("%s missing, want %q", k, tt.want[k])
					}
				}
			}
			if r.env["EXEC_TEST_INHERITED"] != "kept" || r.env["EXTRA"] != "1" {
				t.Errorf("inherited %q, extra %q", r.env["EXEC_TEST_INHERITED"], r.env["EXTRA"])
			}
			if want := []string{r.args[0], "--flag", "two words"}; !slices.Equal(r.args, want) {
				t.Errorf("args %q, want %q", r.args, want)
			}
		})
	}
}

// TestManyNames: a certificate with more names than an environment can
// hold still runs the program, with a prefix of the names and the count
// of the rest; stdin has everything.
func TestManyNames(t *testing.T) {
	h := alerttest.SampleHit()
	h.Cert.DNSNames = nil
	for i := range 20000 {
		h.Cert.DNSNames = append(h.Cert.DNSNames, fmt.Sprintf("name%05d.example.com", i))
	}
	data := bytes.Repeat([]byte("x"), 1<<20)
	r := record(t, &alerting.Message{Data: data, Hit: h}, exec.Config{})
	if !bytes.Equal(r.stdin, data) {
		t.Errorf("stdin: %d bytes, want %d", len(r.stdin), len(data))
	}
	listed := strings.Split(r.env["CTWATCH_DNS_NAMES"], ",")
	more, err := strconv.Atoi(r.env["CTWATCH_DNS_NAMES_MORE"])
	if err != nil {
		t.Fatalf("CTWATCH_DNS_NAMES_MORE = %q", r.env["CTWATCH_DNS_NAMES_MORE"])
	}
	if len(listed)+more != len(h.Cert.DNSNames) || !slices.Equal(listed, h.Cert.DNSNames[:len(listed)]) {
		t.Errorf("%d names listed + %d more, want a prefix of %d", len(listed), more, len(h.Cert.DNSNames))
	}
	if len(r.env["CTWATCH_DNS_NAMES"]) > 64<<10 {
		t.Errorf("CTWATCH_DNS_NAMES is %d bytes", len(r.env["CTWATCH_DNS_NAMES"]))
	}
	if r.env["DNS_NAMES"] != r.env["CTWATCH_DNS_NAMES"] {
		t.Error("DNS_NAMES differs from CTWATCH_DNS_NAMES")
	}
	if want := "HIGH our-names: name00000.example.com (+19999 more)"; r.env["SUMMARY"] != want {
		t.Errorf("SUMMARY %q, want %q", r.env["SUMMARY"], want)
	}
}

// TestFailures: what a failing program reports.
func TestFailures(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string // in the error
		notWant []string
		maxLen  int
	}{
		{
			name: "exit status with stderr",
			body: "cat >/dev/null\necho 'an early line' >&2\nprintf '%0300d\\n' 0 >&2\necho 'the real reason' >&2\nexit 3\n",
			want: []string{"exit status 3", `the real reason`, "stderr: …"},
			// Only the end of stderr is quoted.
			notWant: []string{"an early line"},
		},
		{
			name:   "huge stderr",
			body:   "head -c 5000000 /dev/zero | tr '\\0' y >&2\necho 'end reason' >&2\nexit 1\n",
			want:   []string{"exit status 1", "end reason"},
			maxLen: 600,
		},
		{
			name: "killed by a signal",
			body: "kill -TERM $$\n",
			want: []string{"signal: terminated"},
		},
		{
			name: "hostile stderr stays one line",
			body: "printf 'bad\\nX-Injected: 1\\033[31m\\n' >&2\nexit 2\n",
			want: []string{`"bad\nX-Injected: 1\x1b[31m"`},
		},
		{
			name: "silent failure",
			body: "exit 4\n",
			want: []string{"exit status 4"}, notWant: []string{"stderr"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := exec.New(exec.Config{Command: script(t, tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			err = n.Notify(t.Context(), &alerting.Message{Data: []byte("{}"), Hit: alerttest.SampleHit()})
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("err %q has %q", err, w)
				}
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("err spans lines: %q", err)
			}
			if tt.maxLen > 0 && len(err.Error()) > tt.maxLen {
				t.Errorf("err is %d bytes: %q", len(err.Error()), err)
			}
		})
	}
}

// TestSuccessWithOutput: a program that writes a lot and exits 0 is a
// delivery; its output does not have to fit anywhere.
func TestSuccessWithOutput(t *testing.T) {
	n, err := exec.New(exec.Config{Command: script(t, "head -c 10000000 /dev/zero\nhead -c 10000000 /dev/zero >&2\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), &alerting.Message{Data: []byte("{}"), Hit: alerttest.SampleHit()}); err != nil {
		t.Errorf("Notify: %v", err)
	}
}

// TestBackgroundChildHoldingOutput: a program that exits 0 but leaves a
// child holding its standard output is a success once the grace period
// has passed, not a hang until the timeout.
func TestBackgroundChildHoldingOutput(t *testing.T) {
	dir := t.TempDir()
	n, err := exec.New(exec.Config{
		Command: script(t, `sleep 30 & echo $! > "$1/pid"`+"\n"),
		Args:    []string{dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(t.Context(), &alerting.Message{Data: []byte("{}"), Hit: alerttest.SampleHit()})
	if b, rerr := os.ReadFile(filepath.Join(dir, "pid")); rerr == nil {
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL) // the test's own leftover
		}
	}
	if err != nil {
		t.Errorf("Notify: %v", err)
	}
}

// TestTimeoutKillsGroup: on timeout the program and the child it left
// running are killed, and Notify reports the timeout.
func TestTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	n, err := exec.New(exec.Config{
		Command: script(t, `sleep 1000 & echo $! > "$1/pid"; wait`+"\n"),
		Args:    []string{dir},
		Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(t.Context(), &alerting.Message{Data: []byte("{}"), Hit: alerttest.SampleHit()})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout of 1s") {
		t.Errorf("err = %v, want the timeout", err)
	}
	b, rerr := os.ReadFile(filepath.Join(dir, "pid"))
	if rerr != nil {
		t.Fatalf("the script did not record its child within the timeout: %v", rerr)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if perr != nil {
		t.Fatal(perr)
	}
	awaitGone(t, pid)
}

// TestCancelKillsGroup: cancelling the context kills the program and its
// child. The script tells the test its child's pid through a FIFO, and
// only then does the test cancel: no timing involved.
func TestCancelKillsGroup(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := exec.New(exec.Config{
		Command: script(t, `sleep 1000 & echo $! > "$1/fifo"; wait`+"\n"),
		Args:    []string{dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pidc := make(chan int, 1)
	go func() {
		f, err := os.Open(fifo) // blocks until the script opens it
		if err != nil {
			return
		}
		defer f.Close()
		line, _ := bufio.NewReader(f).ReadString('\n')
		pid, _ := strconv.Atoi(strings.TrimSpace(line))
		pidc <- pid
		cancel()
	}()
	err = n.Notify(ctx, &alerting.Message{Data: []byte("{}"), Hit: alerttest.SampleHit()})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	select {
	case pid := <-pidc:
		awaitGone(t, pid)
	default:
		t.Fatal("Notify returned before the script reported its child")
	}
}

// awaitGone fails unless process pid has exited. The process is not ours
// (its parent was the killed script), so it cannot be waited for; a pidfd
// becomes readable when it exits, which is awaited rather than polled. A
// "kill -0" alone would not do: where PID 1 does not reap orphans, a dead
// process stays a zombie that kill -0 still finds.
func awaitGone(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("bad pid %d", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // exited and reaped
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		// The bound only turns a bug (the child survived) into a failure
		// instead of a hang; a killed process exits at once.
		k, err := unix.Poll(fds, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		if k == 0 {
			t.Fatalf("child %d still running after Notify returned", pid)
		}
		break
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if st := procState(pid); st != "Z" && st != "X" && st != "" {
			t.Errorf("child %d in state %q after exiting", pid, st)
		}
	}
}

// procState returns the state letter of /proc/pid/stat, "" if unreadable.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// "pid (comm) S ...": comm may hold spaces, so cut after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2 : i+3])
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := script(t, "exit 0\n")
	tests := []struct {
		name string
		cfg  exec.Config
		want string // in the error; "" for success
	}{
		{"absolute path", exec.Config{Command: good}, ""},
		{"name in PATH", exec.Config{Command: "sh"}, ""},
		{"empty", exec.Config{}, "required"},
		{"missing", exec.Config{Command: filepath.Join(dir, "missing")}, "no such file"},
		{"not in PATH", exec.Config{Command: "ctwatch-no-such-hook"}, "not found"},
		{"not executable", exec.Config{Command: plain}, "permission denied"},
		{"directory", exec.Config{Command: dir}, "permission denied"},
		{"negative timeout", exec.Config{Command: good, Timeout: -1}, "timeout"},
		{"env without =", exec.Config{Command: good, Env: []string{"FOO"}}, "KEY=value"},
		{"env with NUL", exec.Config{Command: good, Env: []string{"FOO=a\x00b"}}, "NUL"},
		{"env sets a ctwatch variable", exec.Config{Command: good, Env: []string{"CTWATCH_RULE=x"}}, "CTWATCH_RULE"},
		{"env sets a certspotter variable", exec.Config{Command: good, Env: []string{"EVENT=x"}}, "EVENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exec.New(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestRelativePath: a relative command is resolved once, by New, so a
// later change of working directory does not matter.
func TestRelativePath(t *testing.T) {
	dir := filepath.Dir(script(t, "exit 0\n"))
	t.Chdir(dir)
	n, err := exec.New(exec.Config{Command: "./hook"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Chdir(t.TempDir())
	if err := n.Notify(t.Context(), &alerting.Message{Data: []byte("{}"), Hit: alerttest.SampleHit()}); err != nil {
		t.Errorf("Notify after chdir: %v", err)
	}
}

func TestEmptyMessage(t *testing.T) {
	n, err := exec.New(exec.Config{Command: script(t, "exit 0\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), &alerting.Message{}); err == nil {
		t.Error("empty message accepted")
	}
}
