package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ctwatch/ctwatch/internal/daemon"
)

func newLogsCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "List the followed logs with their size, our position and lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			rep, err := daemon.Status(cmd.Context(), cfg, newLogger(stderr, cfg))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tURL\tTREE SIZE\tNEXT INDEX\tLAG")
			for _, s := range rep.Logs {
				size, next, lag := "-", "-", "-"
				if cp := s.Checkpoint; cp != nil {
					size = fmt.Sprint(cp.TreeSize)
					next = fmt.Sprint(cp.NextIndex)
					lag = fmt.Sprint(cp.TreeSize - min(cp.NextIndex, cp.TreeSize))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Log.Name, s.Log.Kind, s.Log.URL, size, next, lag)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%d logs; positions: %s\n", len(rep.Logs), rep.Positions)
			return err
		},
	}
	addConfigFlags(cmd)
	return cmd
}
