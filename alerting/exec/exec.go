// Package exec is the sink that runs a program for every hit, log event or
// digest: the escape hatch for anything ctwatch has no integration for, and
// the migration path for certspotter hook scripts.
//
// The program gets the message's JSON document (the event package's
// contract, the bytes of [alerting.Message.Data]) on standard input, and a
// description of it in environment variables: CTWATCH_* names of its own,
// plus the names certspotter's hooks read (EVENT, SUMMARY, CERT_SHA256,
// DNS_NAMES, …) where ctwatch has an equivalent, so that most certspotter
// scripts run unchanged. See [Notifier.Notify] for the full list.
//
// Exit status 0 means delivered. Anything else (a non-zero exit, death by a
// signal, the timeout) is an error quoting the end of the program's standard
// error, and the Dispatcher runs the program again later: a hook must
// tolerate repeats, and CTWATCH_ID is its idempotency key.
//
// The program runs in a process group of its own. On timeout or
// cancellation the whole group is killed, so a shell script's children do
// not outlive it. A hook that leaves something running after it exited
// should redirect that process's standard output and error: while anything
// holds them open, Notify waits (2 seconds at most, then closes them and
// counts the run by its exit status). The output is captured up to a
// bound and never fills memory, whatever the program writes.
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ctwatch/ctwatch/alerting"
)

const (
	// DefaultTimeout bounds one run of the program.
	DefaultTimeout = 30 * time.Second
	// maxCapture is how much of standard output and of standard error is
	// kept (the last bytes of each).
	maxCapture = 64 << 10
	// maxQuoted is how much of standard error an error quotes: its end,
	// where a failing script says why.
	maxQuoted = 200
	// maxLogged is how much of each stream a debug log line shows.
	maxLogged = 4 << 10
	// waitDelay is how long, after the program exited or was killed, its
	// output pipes may stay open (held by a descendant that escaped the
	// process group) before they are closed anyway.
	waitDelay = 2 * time.Second
)

// Config says what to run.
type Config struct {
	// Command is the program: a path (a relative one is taken from the
	// working directory at New), or a bare name looked up in PATH. Either
	// way it is resolved once, by New, to an absolute path.
	Command string
	// Args are the program's arguments (without the program name).
	Args []string
	// Timeout bounds one run; 0 means DefaultTimeout.
	Timeout time.Duration
	// Env holds extra "KEY=value" variables, added to the daemon's
	// environment; the variables describing the message take precedence.
	Env []string
	// Logger receives the program's output at debug level after a
	// successful run; nil means slog.Default().
	Logger *slog.Logger
}

// Notifier runs one program per message. It is safe for concurrent use:
// every call runs its own process.
type Notifier struct {
	path    string
	args    []string
	timeout time.Duration
	env     []string
	log     *slog.Logger
}

// New resolves cfg.Command and checks cfg. The program must exist and be
// executable now: a typo is a configuration error, not a delivery failure
// to retry forever.
func New(cfg Config) (*Notifier, error) {
	if cfg.Command == "" {
		return nil, errors.New("exec: command is required")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("exec: negative timeout %s", cfg.Timeout)
	}
	path, err := resolve(cfg.Command)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	for _, kv := range cfg.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(kv, "\x00") {
			return nil, fmt.Errorf("exec: env entry %q: want KEY=value without NUL", kv)
		}
		if owned(k) {
			return nil, fmt.Errorf("exec: env entry %s: ctwatch sets this variable for every message", k)
		}
	}
	n := &Notifier{
		path:    path,
		args:    append([]string(nil), cfg.Args...),
		timeout: cfg.Timeout,
		env:     append([]string(nil), cfg.Env...),
		log:     cfg.Logger,
	}
	if n.timeout == 0 {
		n.timeout = DefaultTimeout
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	return n, nil
}

// resolve turns a command into the absolute path of an executable file.
func resolve(cmd string) (string, error) {
	if !strings.ContainsRune(cmd, filepath.Separator) {
		p, err := osexec.LookPath(cmd)
		if err != nil {
			return "", fmt.Errorf("command %q: %w", cmd, err)
		}
		cmd = p
	}
	// Resolved once, against the working directory at startup, so that
	// nothing later depends on the daemon's working directory.
	abs, err := filepath.Abs(cmd)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", cmd, err)
	}
	cmd = abs
	fi, err := os.Stat(cmd)
	if err != nil {
		return "", fmt.Errorf("command: %w", err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("command %s: %w", cmd, fs.ErrPermission)
	}
	return cmd, nil
}

// Notify runs the program once with m.Data on standard input and the
// message in the environment, and returns nil if it exits with status 0.
//
// The environment is the daemon's, plus Config.Env, plus these variables
// (values hold no NUL; lists are comma-separated and capped, the JSON on
// standard input being complete):
//
// Every message: CTWATCH_KIND (hit, event or digest), CTWATCH_ID,
// CTWATCH_SUMMARY (as in an email subject), CTWATCH_TEST=1 for a
// test message (unset otherwise), and certspotter's EVENT and SUMMARY.
//
// A hit: CTWATCH_RULE, CTWATCH_SEVERITY, CTWATCH_REASON, CTWATCH_TAGS,
// CTWATCH_DNS_NAMES (with CTWATCH_DNS_NAMES_MORE counting names left out
// of a very long list), CTWATCH_CERT_SHA256, CTWATCH_TBS_SHA256,
// CTWATCH_PRECERT=1 for a precertificate, CTWATCH_ISSUER, CTWATCH_SUBJECT,
// CTWATCH_NOT_BEFORE, CTWATCH_NOT_AFTER (RFC 3339, UTC), CTWATCH_LOG_NAME,
// CTWATCH_LOG_URL, CTWATCH_LOG_INDEX (when the hit came from a log),
// CTWATCH_CRTSH_URL; for certspotter scripts EVENT=discovered_cert,
// CERT_SHA256, TBS_SHA256, DNS_NAMES, SUBJECT_DN, ISSUER_DN, NOT_BEFORE,
// NOT_BEFORE_UNIXTIME, NOT_BEFORE_RFC3339, NOT_AFTER (and its two
// companions), LOG_URI and ENTRY_INDEX.
//
// A log event: CTWATCH_EVENT_KIND, CTWATCH_LOG_NAME, CTWATCH_LOG_URL,
// CTWATCH_LOG_INDEX (when not 0), CTWATCH_TIME, CTWATCH_DETAIL; for
// certspotter scripts EVENT=malformed_cert with LOG_URI, ENTRY_INDEX and
// PARSE_ERROR for a malformed entry, EVENT=error for the others.
//
// A digest: CTWATCH_RULE, CTWATCH_SEVERITY, CTWATCH_COUNT,
// CTWATCH_DNS_NAMES (the names the digest lists), CTWATCH_MORE_NAMES (the
// distinct names it does not list), CTWATCH_FIRST, CTWATCH_LAST,
// CTWATCH_URL (when set); EVENT=digest (a kind certspotter does not have)
// and DNS_NAMES.
//
// Inherited variables of these names are removed first, so a value never
// leaks from the daemon's environment into a message that lacks it.
func (n *Notifier) Notify(ctx context.Context, m *alerting.Message) error {
	vars := describe(m)
	if vars == nil {
		return errors.New("exec: message holds neither hit, event nor digest")
	}

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, n.path, n.args...)
	cmd.Env = environ(os.Environ(), n.env, vars)
	cmd.Stdin = bytes.NewReader(m.Data)
	stdout, stderr := &tail{max: maxCapture}, &tail{max: maxCapture}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A group of its own, so that one signal reaches the program and
	// everything it started (a shell script's children, a pipeline).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	if err != nil && errors.Is(err, osexec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() && ctx.Err() == nil {
		// The program succeeded; something it left behind kept the output
		// pipes open, and has been cut off.
		err = nil
	}
	if err == nil {
		if stdout.len() > 0 || stderr.len() > 0 {
			n.log.DebugContext(ctx, "exec sink: program output", "command", n.path, "id", m.ID(),
				"stdout", stdout.last(maxLogged), "stderr", stderr.last(maxLogged))
		}
		return nil
	}

	cause := err
	switch {
	case parent.Err() != nil:
		// The exit error says "signal: killed"; say why.
		cause = fmt.Errorf("killed: %w", parent.Err())
	case ctx.Err() != nil:
		cause = fmt.Errorf("killed after the timeout of %s: %w", n.timeout, ctx.Err())
	}
	if q := stderr.last(maxQuoted); q != "" {
		return fmt.Errorf("exec %s: %w: stderr: %s", n.path, cause, q)
	}
	return fmt.Errorf("exec %s: %w", n.path, cause)
}

// tail is an io.Writer that keeps only the last max bytes written to it,
// so a program that writes gigabytes costs max bytes of memory.
type tail struct {
	max int
	buf []byte
}

// Write implements io.Writer; it never fails.
func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) len() int { return len(t.buf) }

// last returns the last n bytes (fewer to start on a character boundary),
// trimmed and Go-quoted, with "…" in front when cut; "" when there is
// nothing but white space. The program's output is arbitrary bytes: the
// quote keeps it on one line and printable in logs and errors.
func (t *tail) last(n int) string {
	b := bytes.TrimSpace(t.buf)
	cut := false
	if len(b) > n {
		b, cut = b[len(b)-n:], true
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	if len(b) == 0 {
		return ""
	}
	q := strconv.Quote(string(b))
	if cut {
		q = "…" + q
	}
	return q
}
