package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ctwatch/ctwatch/internal/config"
)

// statusFetchTimeout bounds asking a daemon for its status: a daemon that
// does not answer this fast is treated as absent, so a command falls back
// to what it can read itself instead of hanging.
const statusFetchTimeout = 3 * time.Second

// ErrNoStatusServer is returned by StatusURL and FetchStatus when the
// configuration gives no address a daemon's status can be asked at
// (web.listen empty, or port 0).
var ErrNoStatusServer = errors.New("no web server configured (web.listen)")

// StatusURL returns the /api/status URL of the daemon that cfg describes.
// A listener on every address (0.0.0.0, ::, or no host) is asked on
// 127.0.0.1, since a command runs on the daemon's machine.
func StatusURL(cfg *config.Config) (string, error) {
	if cfg.Web.Listen == "" {
		return "", ErrNoStatusServer
	}
	host, port, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil {
		return "", fmt.Errorf("web.listen %q: %w", cfg.Web.Listen, err)
	}
	if n, err := strconv.Atoi(port); err == nil && n == 0 {
		return "", fmt.Errorf("%w: web.listen %s picks a free port at start", ErrNoStatusServer, cfg.Web.Listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/api/status"}).String(), nil
}

// FetchStatus asks the running daemon that cfg describes for its status,
// without recent hits (limit 0): what `ctwatch status` and `ctwatch logs`
// show. It fails, within a few seconds, when no daemon answers or what
// answers is not a ctwatch status (another program on the port, or a
// daemon with web.status_page off).
func FetchStatus(ctx context.Context, cfg *config.Config, client *http.Client) (*StatusReport, error) {
	u, err := StatusURL(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?limit=0", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// The URL is said once, here, not again by the *url.Error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: not found (is web.status_page false?)", u)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var rep StatusReport
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("%s: not a ctwatch status: %w", u, err)
	}
	if !rep.Live {
		return nil, fmt.Errorf("%s: not a ctwatch status", u)
	}
	return &rep, nil
}
