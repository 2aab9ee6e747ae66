package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ctwatch/ctwatch/internal/daemon"
	"github.com/ctwatch/ctwatch/rules"
)

func newCheckCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check [--json] FILE...",
		Short: "Show which rules fire on certificate files (PEM or DER; - for stdin)",
		Long: `Check evaluates the configured rules on certificates from files: PEM with one or
more CERTIFICATE blocks, or one DER certificate; "-" reads stdin. Exit status:
0 no rule fired, 1 at least one hit, 2 an error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			engine, err := daemon.LoadRules(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			inputs := make([]rules.CheckInput, 0, len(args))
			for _, name := range args {
				var data []byte
				if name == "-" {
					data, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
				} else {
					data, err = os.ReadFile(name)
				}
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("read %s: %w", name, err)}
				}
				inputs = append(inputs, rules.CheckInput{Name: name, Data: data})
			}
			hits, err := rules.Check(cmd.Context(), engine, inputs, stdout, asJSON)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if hits > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one hit JSON object per line")
	addConfigFlags(cmd)
	return cmd
}
