// Command staticserve serves one directory read-only over HTTP on a loopback
// address. scripts/peers/static.sh runs it in front of a TesseraCT log's
// storage directory: TesseraCT writes the static-ct-api read side (checkpoint,
// tiles, issuers) as plain files and serves only the submission endpoints, so
// a monitor needs some file server to read the log, and a test should depend
// on nothing that a fresh machine lacks.
//
//	staticserve -dir DIR -addr 127.0.0.1:PORT
//
// Only GET and HEAD are answered. Names that start with a dot are never
// served (TesseraCT keeps its private state, such as its dedupe database and
// tree state, under DIR/.state), and directories are not listed: a log's
// read side is fetched by exact path. It refuses to listen on anything but a
// loopback address, because it exists for tests. It stops cleanly on SIGINT
// or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, logger); err != nil {
		logger.Error("staticserve failed", "err", err)
		os.Exit(1)
	}
}

// run parses args, listens and serves until ctx is done. It prints the
// address it listens on to out, so that a caller that asked for port 0 can
// learn the port.
func run(ctx context.Context, args []string, out io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("staticserve", flag.ContinueOnError)
	fs.SetOutput(out)
	dir := fs.String("dir", "", "directory to serve (required)")
	addr := fs.String("addr", "127.0.0.1:0", "loopback host:port to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	if st, err := os.Stat(*dir); err != nil {
		return fmt.Errorf("directory to serve: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", *dir)
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(out, "listening on %s\n", ln.Addr())
	logger.Info("serving", "dir", *dir, "addr", ln.Addr().String())
	return serve(ctx, ln, newHandler(*dir))
}

// checkLoopback returns an error unless addr's host is a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: host must be a loopback IP such as 127.0.0.1", addr)
	}
	return nil
}

// serve runs an HTTP server on ln until ctx is done, then shuts it down,
// giving requests in flight a few seconds to finish.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// newHandler serves the files under dir. It answers 405 to methods other
// than GET and HEAD, and 404 to paths with a component that starts with a
// dot and to directories, so nothing but the log's published files leaks.
// The handler is safe for concurrent use.
func newHandler(dir string) http.Handler {
	files := http.FileServer(noDirs{http.Dir(dir)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		if hidden(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// hidden reports whether the cleaned URL path has a component starting with
// a dot.
func hidden(p string) bool {
	for _, part := range strings.Split(path.Clean("/"+p), "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

// noDirs is a file system whose directories cannot be opened, so that
// http.FileServer never lists one (it answers 404 instead).
type noDirs struct{ fs http.FileSystem }

// Open opens name unless it is a directory.
func (n noDirs) Open(name string) (http.File, error) {
	f, err := n.fs.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, os.ErrNotExist
	}
	return f, nil
}
