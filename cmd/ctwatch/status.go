package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

// watchEvery is how often --watch refreshes.
const watchEvery = 2 * time.Second

// statusView says what a status command shows beyond the logs table.
type statusView struct {
	// full adds hits, sinks and the last reload (`ctwatch status`).
	full bool
	// urls adds the logs' URLs (`ctwatch logs`).
	urls bool
	// tty is set on a terminal, where a person reads: a progress bar per
	// log that is behind, and digits grouped (1,234,567). Into a pipe
	// numbers stay plain, for scripts.
	tty bool
}

func newStatusCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running daemon's logs, hits, sinks and last reload",
		Long: `Status asks the daemon at web.listen (127.0.0.1 when it listens on every
address) for its live state: each followed log with its size, position, lag,
state and last error, the hits published, each sink's queue and dead letters,
and the outcome of the last reload. On a terminal, a log that is behind gets
a progress bar. With --watch the view refreshes every 2 seconds until Ctrl-C.

When no daemon answers, it shows the positions stored in the data directory
or NATS, as ` + "`ctwatch logs`" + ` does, and says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd, stdout, stderr, statusView{full: true})
		},
	}
	addStatusFlags(cmd)
	return cmd
}

func addStatusFlags(cmd *cobra.Command) {
	cmd.Flags().Bool("watch", false, "refresh every 2s until interrupted")
	addConfigFlags(cmd)
}

// runStatus shows the status once, or with --watch until the command's
// context ends (Ctrl-C), which is then a normal exit.
func runStatus(cmd *cobra.Command, stdout, stderr io.Writer, view statusView) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	watch, _ := cmd.Flags().GetBool("watch")
	tty := isTerminal(stdout)
	view.tty = tty
	logger := newLogger(stderr, cfg)
	client := &http.Client{}
	ctx := cmd.Context()
	for {
		var buf bytes.Buffer
		if watch && tty {
			// Home and clear: each refresh replaces the last.
			buf.WriteString("\x1b[H\x1b[2J")
		}
		rep, note, err := gatherStatus(ctx, cfg, client, logger)
		if err != nil {
			if watch && ctx.Err() != nil {
				return nil
			}
			return &exitError{code: 2, err: err}
		}
		writeStatus(&buf, rep, note, view, time.Now())
		if watch {
			fmt.Fprintf(&buf, "(refreshing every %s; Ctrl-C to stop)\n", watchEvery)
			if !tty {
				buf.WriteString("\n")
			}
		}
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		if !watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchEvery):
		}
	}
}

// isTerminal reports whether w is a terminal, where progress bars and
// screen refreshes make sense; a pipe or file gets plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// gatherStatus asks the running daemon; when none answers it reads the
// stored positions itself (daemon.Status), and note says why.
func gatherStatus(ctx context.Context, cfg *config.Config, client *http.Client, logger *slog.Logger) (*daemon.StatusReport, string, error) {
	rep, err := daemon.FetchStatus(ctx, cfg, client)
	if err == nil {
		u, _ := daemon.StatusURL(cfg)
		return rep, "live from " + strings.TrimSuffix(u, "/api/status"), nil
	}
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}
	why := "no running daemon answered (" + err.Error() + ")"
	if errors.Is(err, daemon.ErrNoStatusServer) {
		why = "cannot ask a running daemon: " + err.Error()
	}
	off, serr := daemon.Status(ctx, cfg, logger)
	if serr != nil {
		return nil, "", serr
	}
	return off, why + "; positions " + off.Positions, nil
}

// writeStatus renders a report as text: the logs table, then for the full
// view hits, sinks and the last reload.
func writeStatus(w io.Writer, rep *daemon.StatusReport, note string, view statusView, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	num := strconv.FormatUint
	if view.tty {
		num = func(n uint64, _ int) string { return daemon.GroupDigits(n) }
	}
	head := []string{"NAME", "KIND", "STATE", "TREE SIZE", "NEXT INDEX", "LAG"}
	if view.tty {
		head = append(head, "PROGRESS")
	}
	if view.urls {
		head = append(head, "URL")
	}
	head = append(head, "LAST ERROR")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, l := range rep.Logs {
		size, pos, lag := "-", "-", "-"
		if l.HasPosition {
			size, pos, lag = num(l.TreeSize, 10), num(l.NextIndex, 10), num(l.Lag, 10)
			if d := l.LagTime(now); d > 0 {
				lag += " (" + d.Round(time.Second).String() + ")"
			}
		}
		row := []string{l.Name, string(l.Kind), l.State.Label(), size, pos, lag}
		if view.tty {
			bar := ""
			if l.Behind() {
				bar = progressBar(l)
			}
			row = append(row, bar)
		}
		if view.urls {
			row = append(row, l.URL)
		}
		lastErr := "-"
		if l.LastError != "" {
			lastErr = oneLine(l.LastError, 80)
			if !l.LastErrorTime.IsZero() {
				lastErr += " (" + now.Sub(l.LastErrorTime).Round(time.Second).String() + " ago)"
			}
		}
		row = append(row, lastErr)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d logs; %s\n", len(rep.Logs), note)
	if !view.full {
		return
	}
	if !rep.Live {
		fmt.Fprintln(w, "Hits, sinks and reloads are known only to a running daemon.")
		return
	}
	fmt.Fprintf(w, "\nDaemon: ctwatch %s, up %s; NATS %s\n", rep.Version, rep.Uptime().Round(time.Second), rep.NATS)
	if h := rep.Hits; h != nil {
		fmt.Fprintf(w, "Hits: %s published by this daemon since it started; %s stored in the stream",
			num(rep.HitsSinceStart(), 10), num(h.StoredTotal(), 10))
		// Highest severity first.
		sevs := slices.SortedFunc(maps.Keys(h.Stored), func(a, b event.Severity) int { return b.Rank() - a.Rank() })
		var parts []string
		for _, sev := range sevs {
			if n := h.Stored[sev]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", num(n, 10), sev))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
		}
		fmt.Fprintln(w)
		if h.Error != "" {
			fmt.Fprintf(w, "  (hits could not be read: %s)\n", h.Error)
		}
	}
	switch r := rep.LastReload; {
	case r == nil:
		fmt.Fprintln(w, "Last reload: none since start")
	case r.Error != "":
		fmt.Fprintf(w, "Last reload: %s ago, refused: %s\n", now.Sub(r.Time).Round(time.Second), oneLine(r.Error, 200))
	default:
		fmt.Fprintf(w, "Last reload: %s ago, ok\n", now.Sub(r.Time).Round(time.Second))
	}
	fmt.Fprintf(w, "Rules: %d loaded\n", len(rep.Rules))
	if len(rep.Sinks) == 0 {
		fmt.Fprintln(w, "Sinks: none")
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tTYPE\tTAKES\tPENDING\tDEAD LETTERS\tERROR")
	for _, s := range rep.Sinks {
		errText := "-"
		if s.Error != "" {
			errText = oneLine(s.Error, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Type, s.Route, num(s.Pending, 10), num(s.DeadLetters, 10), errText)
	}
	_ = tw.Flush()
}

// barWidth is the number of cells in a progress bar.
const barWidth = 20

// progressBar draws how far a log that is behind has got, for a terminal:
// "[########------------]  42.1%  1,234,567 left".
func progressBar(l daemon.LogStatus) string {
	p := l.Progress()
	filled := min(int(p*barWidth), barWidth)
	return fmt.Sprintf("[%s%s]  %5.1f%%  %s left", strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), 100*p, daemon.GroupDigits(l.Lag))
}

// oneLine folds s onto one line of at most n runes, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
