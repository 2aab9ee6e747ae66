package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/ctwatch/ctwatch/internal/config"
	"github.com/ctwatch/ctwatch/internal/daemon"
)

func newRunCmd(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Follow CT logs, match rules and deliver hits (the daemon)",
		Long: `Run follows every configured CT log until SIGINT or SIGTERM, verifying each
tree head and entry, matching rules and publishing hits to NATS JetStream, from
where the sinks deliver them. With no configuration it starts an embedded NATS
server under ./ctwatch-data and follows Chrome's log list.

SIGHUP, or a change to the configuration file or a rule file, reloads the
rules, sinks and logs; a file with a problem is refused (every problem is
logged with its file and line, and a reload_failed event is raised) and the
running configuration stays in force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			logger := newLogger(stderr, cfg)
			// Rule problems are the user's to fix: exit 2 before anything starts.
			if _, err := daemon.LoadRules(cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			reload := func() (*config.Config, error) { return loadConfigFrom(cmd) }
			if err := daemon.Run(cmd.Context(), cfg, logger, daemon.WithReload(reload)); err != nil {
				return &exitError{code: 2, err: err}
			}
			return nil
		},
	}
	addConfigFlags(cmd)
	return cmd
}
