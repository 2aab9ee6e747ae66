package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

func newSinksCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sinks",
		Short: "List, test and replay the configured sinks",
	}
	cmd.AddCommand(newSinksListCmd(stdout), newSinksTestCmd(stdout, stderr), newSinksDeadCmd(stdout, stderr), newSinksReplayCmd(stdout, stderr))
	return cmd
}

// findSink returns the configured sink called name, or a usage error
// listing the names there are.
func findSink(cfg *config.Config, name string) (config.Sink, error) {
	var names []string
	for _, s := range cfg.Sinks {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return config.Sink{}, &exitError{code: 2, err: fmt.Errorf("no sink %q in the configuration (sinks: %s)", name, strings.Join(names, ", "))}
}

func newSinksListCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the configured sinks and what each takes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tEVENTS\tROUTE\tGROUP\tRATE")
			for _, s := range cfg.Sinks {
				group, rate := "-", "-"
				if s.Group.Window > 0 {
					group = s.Group.Window.String()
				}
				if s.Rate > 0 {
					rate = fmt.Sprintf("%g/s", s.Rate)
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", s.Name, s.Type, s.Events, daemon.RouteSummary(s.Route), group, rate)
			}
			return tw.Flush()
		},
	}
	addConfigFlags(cmd)
	return cmd
}

func newSinksTestCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test NAME",
		Short: "Send a test alert, clearly marked as such, through one sink and report the result",
		Long: `Send one test alert straight through the named sink (not through NATS, so the
daemon need not run), and report whether the receiver accepted it. The alert
is marked as a test in every integration (Slack text, mail subject, webhook
header X-Ctwatch-Test, Alertmanager label test="true", exec variable
CTWATCH_TEST=1). Exit 0 when delivered, 1 when the receiver refused it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			s, err := findSink(cfg, args[0])
			if err != nil {
				return err
			}
			kind, _ := cmd.Flags().GetString("kind")
			m, err := testMessage(kind, time.Now())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			n, closeSink, err := daemon.NewNotifier(s, newLogger(stderr, cfg))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer closeSink()
			start := time.Now()
			if err := n.Notify(cmd.Context(), m); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("sink %s: test %s %s not delivered: %w", s.Name, m.Kind(), m.ID(), err)}
			}
			_, err = fmt.Fprintf(stdout, "sink %s (%s): test %s %s delivered in %s\n", s.Name, s.Type, m.Kind(), m.ID(), time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().String("kind", "hit", "what to send: hit, event or digest")
	addConfigFlags(cmd)
	return cmd
}

// testMessage builds a self-describing test alert of the given kind. Its
// names are under .invalid (RFC 2606), so it cannot be mistaken for, or
// collide with, a real certificate's.
func testMessage(kind string, now time.Time) (*alerting.Message, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	id := "test-" + hex.EncodeToString(nonce[:])
	now = now.UTC().Truncate(time.Second)
	hit := func(i int) event.Hit {
		return event.Hit{
			ID:       fmt.Sprintf("%s-%d", id, i),
			Rule:     "ctwatch-sink-test",
			Severity: event.SeverityInfo,
			Reason:   "TEST ALERT sent by `ctwatch sinks test`; no certificate was found, nothing to do",
			Tags:     []string{"test"},
			Cert: event.CertInfo{
				SHA256:    strings.Repeat("0", 64),
				TBSSHA256: strings.Repeat("0", 64),
				DNSNames:  []string{fmt.Sprintf("test%d.ctwatch.invalid", i)},
				Subject:   "CN=ctwatch sink test",
				Issuer:    "CN=ctwatch sink test",
				NotBefore: now,
				NotAfter:  now.Add(24 * time.Hour),
			},
		}
	}
	m := &alerting.Message{Test: true}
	var v any
	switch kind {
	case "hit":
		h := hit(0)
		h.ID = id
		m.Hit, m.Subject, v = &h, alerting.HitSubject(h.Severity), &h
	case "event":
		ev := event.LogEvent{ID: id, Kind: event.LogUnreachable, Time: now, Detail: "TEST EVENT sent by `ctwatch sinks test`; no log is down",
			Log: event.LogRef{Name: "ctwatch test log", URL: "https://log.ctwatch.invalid/"}}
		m.Event, m.Subject, v = &ev, alerting.EventSubject(ev.Kind), &ev
	case "digest":
		hits := []event.Hit{hit(0), hit(1), hit(2)}
		d := &event.Digest{ID: "digest-" + strings.Repeat("0", 16) + hex.EncodeToString(nonce[:]), Kind: event.DigestKind, Rule: "ctwatch-sink-test",
			Severity: event.SeverityInfo, Count: len(hits), First: now, Last: now, Hits: hits}
		for _, h := range hits {
			d.Names = append(d.Names, h.Cert.DNSNames...)
		}
		m.Digest, m.Subject, v = d, alerting.HitSubject(event.SeverityInfo), d
	default:
		return nil, fmt.Errorf("--kind %q: use hit, event or digest", kind)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode test %s: %w", kind, err)
	}
	m.Data = data
	return m, nil
}

// openSinkBus loads the configuration, checks that it has the sink called
// name, and opens the daemon's stream; errors are usage errors (exit 2).
func openSinkBus(cmd *cobra.Command, name string, stderr io.Writer) (*alerting.Bus, func(), error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	if _, err := findSink(cfg, name); err != nil {
		return nil, nil, err
	}
	bus, closeBus, err := daemon.OpenBus(cmd.Context(), cfg, newLogger(stderr, cfg))
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return bus, closeBus, nil
}

func newSinksDeadCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead NAME",
		Short: "List the messages a sink gave up on (its dead letters)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bus, closeBus, err := openSinkBus(cmd, args[0], stderr)
			if err != nil {
				return err
			}
			defer closeBus()
			dead, err := alerting.DeadLetters(cmd.Context(), bus.JetStream(), args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tID\tATTEMPTS\tLAST ERROR")
			for _, d := range dead {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", d.Seq, d.Time.UTC().Format(time.RFC3339), d.Subject, d.ID, d.Attempts, d.Error)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%d dead letters for sink %s\n", len(dead), args[0])
			return err
		},
	}
	addConfigFlags(cmd)
	return cmd
}

func newSinksReplayCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay NAME",
		Short: "Give a sink's dead letters another delivery",
		Long: `Put every dead letter of the named sink back in its queue (and only its
queue: other sinks do not see them again). The daemon delivers them as soon
as it runs. With the embedded NATS server, stop the daemon first (it holds
the data directory); with an external NATS, run this beside it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bus, closeBus, err := openSinkBus(cmd, args[0], stderr)
			if err != nil {
				return err
			}
			defer closeBus()
			n, err := alerting.Replay(cmd.Context(), bus.JetStream(), args[0])
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("replayed %d before: %w", n, err)}
			}
			_, err = fmt.Fprintf(stdout, "replayed %d dead letters for sink %s\n", n, args[0])
			return err
		},
	}
	addConfigFlags(cmd)
	return cmd
}
