package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// peers starts and stops the real logs with the project's scripts
// (scripts/peers/rfc6962.sh and static.sh) and remembers what it started,
// so that stopAll leaves nothing running whatever happened before.
type peers struct {
	root    string // module root
	started []peerRun
}

type peerRun struct{ script, dir string }

// start runs `scripts/peers/SCRIPT start DIR ROOTS` and returns DIR/env.
// The script's output goes to a file next to DIR, not a pipe: the servers
// it leaves running would hold a pipe open.
func (p *peers) start(ctx context.Context, script, dir, roots string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mkdir: %w", err)
	}
	p.started = append(p.started, peerRun{script, dir})
	outPath := strings.TrimRight(dir, "/") + "-start.out"
	out, err := os.Create(outPath)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", outPath, err)
	}
	defer out.Close()
	// Generous: on a fresh machine the script builds the peers (minutes).
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(p.root, "scripts", "peers", script), "start", dir, roots)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		data, _ := os.ReadFile(outPath)
		return nil, fmt.Errorf("%s start: %w\n%s", script, err, lastLines(string(data), 40))
	}
	return readEnv(filepath.Join(dir, "env"))
}

// stop runs `scripts/peers/SCRIPT stop DIR`.
func (p *peers) stop(script, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(p.root, "scripts", "peers", script), "stop", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s stop %s: %w: %s", script, dir, err, out)
	}
	return nil
}

// stopAll stops every log started, newest first, and reports the first
// failure. The scripts' stop is idempotent, so a log stopped already is
// harmless.
func (p *peers) stopAll() error {
	var first error
	for i := len(p.started) - 1; i >= 0; i-- {
		r := p.started[i]
		if err := p.stop(r.script, r.dir); err != nil && first == nil {
			first = err
		}
	}
	p.started = nil
	return first
}

// readEnv reads KEY=VALUE lines.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	return env, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a port on 127.0.0.1 that nothing listened on a moment
// ago (for ctwatch's web.listen, which the harness must know to poll).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// staticMeta describes a static log the harness filled, saved next to it so
// that a later run with -keep can serve it again without TesseraCT (whose
// env file the stop command deletes).
type staticMeta struct {
	Entries       uint64 `json:"entries"`
	Key           string `json:"key"`
	Origin        string `json:"origin"`
	SubmissionURL string `json:"submission_url"`
	// WatchEvery and Domains are the plan the entries were made with;
	// a run with another plan cannot know which entries must hit.
	WatchEvery int      `json:"watch_every"`
	Domains    []string `json:"domains"`
}

const staticMetaFile = "bench-static.json"

func readStaticMeta(dir string) (*staticMeta, error) {
	data, err := os.ReadFile(filepath.Join(dir, staticMetaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", staticMetaFile, err)
	}
	var m staticMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", staticMetaFile, err)
	}
	return &m, nil
}

func writeStaticMeta(dir string, m staticMeta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, staticMetaFile), append(data, '\n'), 0o644)
}

// serveStatic builds scripts/peers/staticserve into work and serves dir
// with it on a free port: a kept log's read side is just files.
func serveStatic(ctx context.Context, root, work, dir string) (*proc, string, error) {
	bin := filepath.Join(work, "staticserve")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./scripts/peers/staticserve")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("go build staticserve: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logPath := filepath.Join(work, "staticserve.log")
	p, err := startProc("staticserve", work, logPath, logPath, bin, "-dir", dir, "-addr", addr)
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	// Ready when the checkpoint is served.
	l := newStaticLog(url)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := l.treeSize(ctx); err == nil {
			return p, url, nil
		} else if time.Now().After(deadline) || p.exited() {
			_ = p.stop(5 * time.Second)
			return nil, "", fmt.Errorf("staticserve on %s did not serve the checkpoint: %w", addr, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			_ = p.stop(5 * time.Second)
			return nil, "", ctx.Err()
		}
	}
}
