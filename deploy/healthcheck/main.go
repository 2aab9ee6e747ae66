// Command healthcheck asks one of ctwatch's HTTP health endpoints whether
// the daemon is well, for container images that have no shell, curl or
// wget to do it with (the distroless image deploy/Dockerfile builds):
//
//	healthcheck [-timeout 5s] http://127.0.0.1:9464/readyz
//
// It exits 0 on a 2xx answer, 1 on any other answer or no answer, and 2
// when used wrongly. It prints the status and the start of the body, so
// that `docker inspect` shows why a container is unhealthy: /readyz lists
// each of its checks with ok or FAIL and the reason.
//
// It ignores HTTP_PROXY and friends: a health check is about this
// container, and a proxy configured for the daemon's outgoing requests
// must not answer it instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// maxBody bounds what is read and printed of an answer: Docker keeps
// only the first 4 KiB of a health check's output anyway.
const maxBody = 4096

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, apart from the process around it, so that
// tests call it in-process. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: healthcheck [-timeout 5s] http://HOST:PORT/readyz")
		fs.PrintDefaults()
	}
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the whole answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	target, err := checkURL(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "healthcheck: -timeout must be positive")
		return 2
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	status, body, err := get(ctx, target)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	out, code := stdout, 0
	if status/100 != 2 {
		out, code = stderr, 1
	}
	fmt.Fprintf(out, "%s: %d %s\n%s", target, status, http.StatusText(status), body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(out)
	}
	return code
}

// checkURL accepts only an absolute http(s) URL, so that a typo in a
// compose file is a usage error rather than an "unhealthy" container.
func checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("bad URL %q: want http://HOST:PORT/PATH", raw)
	}
	return u.String(), nil
}

// get fetches target without any proxy and returns the status code and at
// most maxBody bytes of the body.
func get(ctx context.Context, target string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("request: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, body, nil
}
