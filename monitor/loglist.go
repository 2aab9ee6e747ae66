package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctwatch/ctwatch/cert"
)

// logListMaxBytes caps a log list read from a file or the network. Chrome's
// "all logs" list is about 110 KiB; the cap leaves ample room for growth
// while refusing to buffer an endless or hostile response.
const logListMaxBytes = 8 << 20

// logListFetchTimeout bounds one fetch of a log list URL, whatever the
// client's own timeout.
const logListFetchTimeout = 30 * time.Second

// ParseLogList reads a log list in Chrome's v3 JSON format and returns the
// logs ctwatch follows: RFC 6962 logs and static-ct-api ("tiled") logs
// whose state is usable, qualified or readonly. Other logs are not errors:
// skipped says, one line per log, which were left out and why (their state,
// a key that does not parse, a log_id that is not the key's SHA-256, …).
//
// For RFC 6962 logs, URL is the list's url without its trailing slash. For
// static logs, URL is the submission URL, MonitoringURL the monitoring URL
// (where checkpoints and tiles are read), both without a trailing slash, and
// Origin the submission URL without its scheme. Start is nil (begin at the
// end) for every log.
//
// err is non-nil only when data is not a log list at all. Hostile input
// gives errors or skipped entries, never a panic.
func ParseLogList(data []byte) (logs []Log, skipped []string, err error) {
	_, logs, skipped, err = parseLogList(data)
	return logs, skipped, err
}

// parseLogList is ParseLogList that also returns the list, for its
// version and timestamp.
func parseLogList(data []byte) (*loglist3.LogList, []Log, []string, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, nil, errors.New("parse log list: empty document")
	}
	ll, err := loglist3.NewFromJSON(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse log list: %w", err)
	}
	if ll.Operators == nil {
		return nil, nil, nil, errors.New(`parse log list: no "operators" array: not a v3 log list`)
	}
	var (
		logs    []Log
		skipped []string
		seen    = map[cert.Hash]string{}
	)
	add := func(name, url, monitoring, state string, kind Kind, key, listID []byte) {
		label := fmt.Sprintf("%s (%s)", name, url)
		reason := logListFollowable(state, url, key, listID)
		if reason == "" {
			id := cert.Hash(sha256.Sum256(key))
			if first, dup := seen[id]; dup {
				reason = "same key as " + first
			} else {
				seen[id] = label
				l := Log{
					Name: name,
					Kind: kind,
					URL:  strings.TrimRight(url, "/"),
					Key:  bytes.Clone(key),
					ID:   id,
				}
				if kind == KindStatic {
					l.MonitoringURL = strings.TrimRight(monitoring, "/")
					l.Origin = StaticOrigin(l.URL)
				}
				logs = append(logs, l)
				return
			}
		}
		skipped = append(skipped, label+": "+reason)
	}
	for _, op := range ll.Operators {
		if op == nil {
			continue
		}
		for _, l := range op.Logs {
			if l == nil {
				continue
			}
			add(logListLogName(l.Description, op.Name, l.URL), l.URL, "", logListState(l.State), KindRFC6962, l.Key, l.LogID)
		}
		for _, l := range op.TiledLogs {
			if l == nil {
				continue
			}
			add(logListLogName(l.Description, op.Name, l.SubmissionURL), l.SubmissionURL, l.MonitoringURL, logListState(l.State), KindStatic, l.Key, l.LogID)
		}
	}
	return ll, logs, skipped, nil
}

// logListFollowable returns why a log should not be followed, or "" when it should.
func logListFollowable(state, rawURL string, key, listID []byte) string {
	switch state {
	case "usable", "qualified", "readonly":
	case "":
		return "no state in the list"
	default:
		return "state " + state
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Sprintf("URL %q is not an http(s) URL", rawURL)
	}
	if len(key) == 0 {
		return "no key"
	}
	if _, err := x509.ParsePKIXPublicKey(key); err != nil {
		return "key is not a DER SubjectPublicKeyInfo"
	}
	if id := sha256.Sum256(key); !bytes.Equal(id[:], listID) {
		return "log_id is not the SHA-256 of the key"
	}
	return ""
}

// logListState names the state a log is in, "" when it has none.
func logListState(s *loglist3.LogStates) string {
	switch s.LogStatus() { // LogStatus handles a nil s
	case loglist3.PendingLogStatus:
		return "pending"
	case loglist3.QualifiedLogStatus:
		return "qualified"
	case loglist3.UsableLogStatus:
		return "usable"
	case loglist3.ReadOnlyLogStatus:
		return "readonly"
	case loglist3.RetiredLogStatus:
		return "retired"
	case loglist3.RejectedLogStatus:
		return "rejected"
	default:
		return ""
	}
}

// logListLogName is what people see: the list's description, else something that
// still identifies the log.
func logListLogName(description, operator, url string) string {
	if d := strings.TrimSpace(description); d != "" {
		return d
	}
	if o := strings.TrimSpace(operator); o != "" {
		return o + " log " + url
	}
	return url
}

// LogListSource loads the log list from a file or a URL, falling back to a
// bundled copy when the URL cannot be used.
//
// It holds no state between loads, so Load may be called again to refresh
// the list and is safe for concurrent use.
type LogListSource struct {
	src      string
	client   *http.Client
	logger   *slog.Logger
	fallback []byte
}

// NewLogListSource returns a source reading src: an http(s) URL, or else a
// file path; "" means no list. client is used for URLs (nil for
// http.DefaultClient). logger (nil to discard) receives the warning when
// the fallback is used. fallback is a v3 log list used when a URL cannot be
// fetched or what it returns cannot be parsed; nil for none. A file that
// cannot be read is an error whatever the fallback: the user named it.
func NewLogListSource(src string, client *http.Client, logger *slog.Logger, fallback []byte) *LogListSource {
	if client == nil {
		client = http.DefaultClient
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LogListSource{src: src, client: client, logger: logger, fallback: bytes.Clone(fallback)}
}

// isURL reports whether src names an http(s) URL rather than a file.
func (s *LogListSource) isURL() bool {
	lower := strings.ToLower(s.src)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")
}

// Load reads and parses the list and returns the logs to follow (see
// ParseLogList); the skipped logs are logged at debug level. It returns
// (nil, nil) when the source is "".
func (s *LogListSource) Load(ctx context.Context) ([]Log, error) {
	if s.src == "" {
		return nil, nil
	}
	if !s.isURL() {
		data, err := logListReadFile(s.src)
		if err != nil {
			return nil, err
		}
		ll, logs, skipped, err := parseLogList(data)
		if err != nil {
			return nil, fmt.Errorf("log list %s: %w", s.src, err)
		}
		s.report(ll, s.src, logs, skipped)
		return logs, nil
	}

	ll, logs, skipped, err := s.fetchAndParse(ctx)
	if err == nil {
		s.report(ll, s.src, logs, skipped)
		return logs, nil
	}
	if s.fallback == nil || ctx.Err() != nil {
		return nil, err
	}
	fll, flogs, fskipped, ferr := parseLogList(s.fallback)
	if ferr != nil {
		return nil, fmt.Errorf("%w; bundled log list: %w", err, ferr)
	}
	s.logger.Warn("cannot use the live CT log list; using the bundled copy, which is OLD and may lack newer logs or list retired ones as usable",
		"url", s.src,
		"error", err,
		"bundled_log_list_timestamp", fll.LogListTimestamp.UTC().Format(time.RFC3339),
		"bundled_log_list_version", fll.Version)
	s.report(fll, "bundled", flogs, fskipped)
	return flogs, nil
}

func (s *LogListSource) report(ll *loglist3.LogList, from string, logs []Log, skipped []string) {
	for _, why := range skipped {
		s.logger.Debug("log list: not following log", "log", why)
	}
	s.logger.Info("log list loaded",
		"source", from,
		"version", ll.Version,
		"timestamp", ll.LogListTimestamp.UTC().Format(time.RFC3339),
		"followed", len(logs),
		"skipped", len(skipped))
}

func (s *LogListSource) fetchAndParse(ctx context.Context) (*loglist3.LogList, []Log, []string, error) {
	data, err := s.fetch(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	ll, logs, skipped, err := parseLogList(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("log list %s: %w", s.src, err)
	}
	return ll, logs, skipped, nil
}

func (s *LogListSource) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, logListFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.src, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch log list: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch log list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch log list %s: HTTP status %s", s.src, resp.Status)
	}
	data, err := logListReadCapped(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("fetch log list %s: %w", s.src, err)
	}
	return data, nil
}

func logListReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read log list: %w", err)
	}
	defer f.Close()
	data, err := logListReadCapped(f)
	if err != nil {
		return nil, fmt.Errorf("read log list %s: %w", path, err)
	}
	return data, nil
}

// logListReadCapped reads at most logListMaxBytes, failing beyond.
func logListReadCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, logListMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > logListMaxBytes {
		return nil, fmt.Errorf("larger than %d bytes", logListMaxBytes)
	}
	return data, nil
}

// StaticOrigin is the default checkpoint origin of a static-ct-api log: its
// submission URL without the scheme and without a trailing slash.
func StaticOrigin(submissionURL string) string {
	o := strings.TrimRight(submissionURL, "/")
	if i := strings.Index(o, "://"); i >= 0 {
		o = o[i+3:]
	}
	return o
}
