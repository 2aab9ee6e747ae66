package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newLogsCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "List the followed logs with their size, our position, lag and state",
		Long: `Logs asks the daemon at web.listen (127.0.0.1 when it listens on every
address) for its followed logs: size, position, lag, state and last error. On
a terminal, a log that is behind gets a progress bar; --watch refreshes every
2 seconds until Ctrl-C.

When no daemon answers, it lists the configured logs with the positions
stored in the data directory (only while no daemon holds it) or in an
external NATS, and says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd, stdout, stderr, statusView{urls: true})
		},
	}
	addStatusFlags(cmd)
	return cmd
}
