package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ctwatch/ctwatch/internal/daemon"
)

func newRulesCmd(stdout io.Writer) *cobra.Command {
	rulesCmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with rule files",
	}
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Parse and compile the configured rules; report every problem as file:line: message",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			e, err := daemon.LoadRules(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			_, err = fmt.Fprintf(stdout, "ok: %d rules\n", len(e.Rules()))
			return err
		},
	}
	addConfigFlags(validate)
	rulesCmd.AddCommand(validate)
	return rulesCmd
}
