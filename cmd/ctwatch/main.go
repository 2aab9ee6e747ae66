// Command ctwatch is a Certificate Transparency monitor: it follows CT logs,
// verifies them, matches every certificate against rules and delivers hits
// through NATS JetStream to sinks.
//
// Exit codes: 0 success; 1 `check` found hits; 2 bad usage, configuration or
// rule files, or a failure that stopped the daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ctwatch/ctwatch/internal/config"
)

// exitError carries a specific exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the CLI and returns the process exit code. It is separate
// from main so tests can run commands in-process.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "ctwatch: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "ctwatch: %v\n", err)
	return 2
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "ctwatch",
		Short:         "Certificate Transparency monitor",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(stderr),
		newCheckCmd(stdin, stdout),
		newRulesCmd(stdout),
		newLogsCmd(stdout, stderr),
		newStatusCmd(stdout, stderr),
		newSinksCmd(stdout, stderr),
		newVersionCmd(stdout),
	)
	return root
}

// addConfigFlags adds --config and the flags for scalar configuration keys.
func addConfigFlags(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "configuration file (YAML); default $"+config.EnvConfigFile)
	config.RegisterFlags(cmd.Flags())
}

// loadConfig reads the configuration named by --config, with environment
// and flag overrides. Any problem is a usage error (exit 2).
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	cfg, err := loadConfigFrom(cmd)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return cfg, nil
}

// loadConfigFrom reads the configuration the command's --config,
// environment and flags describe; the daemon calls it again to reload.
func loadConfigFrom(cmd *cobra.Command) (*config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		// The environment may name the file too, like every other key.
		path = os.Getenv(config.EnvConfigFile)
	}
	return config.Load(path, cmd.Flags())
}

// newLogger builds the process logger from the configuration.
func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := "(devel)"
			goVersion := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					v = bi.Main.Version
				}
				goVersion = bi.GoVersion
			}
			_, err := fmt.Fprintf(stdout, "ctwatch %s %s\n", v, goVersion)
			return err
		},
	}
}
