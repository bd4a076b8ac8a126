// Command mailgate is the email security gateway: `mailgate serve` runs it,
// `mailgate demo` runs a self-contained demonstration, and the other
// subcommands administer tenants, domains, users, routes and the queue in
// the same store a running server uses (changes take effect without restart).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
)

var version = "0.1.0-dev"

type globals struct {
	configPath string
	stdout     io.Writer
	stderr     io.Writer
	stdin      io.Reader
}

func main() {
	g := &globals{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}
	root := newRoot(g)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mailgate:", err)
		os.Exit(1)
	}
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "mailgate",
		Short:         "Email security gateway and mail-continuity platform",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "mailgate.toml", "configuration file (TOML)")
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetIn(g.stdin)
	root.AddCommand(serveCmd(g), demoCmd(g), versionCmd(g), configDocCmd(g))
	root.AddCommand(tenantCmd(g), domainCmd(g), routeCmd(g), userCmd(g), relayCmd(g), queueCmd(g), trackCmd(g))
	root.AddCommand(policyCmd(g), groupCmd(g), listCmd(g), trustedCmd(g), quarantineCmd(g), spamCmd(g))
	root.AddCommand(accountCmd(g), tokenCmd(g), reportCmd(g), migrateCmd(g), migrateStoreCmd(g), clusterCmd(g), continuityCmd(g), outboundCmd(g))
	root.AddCommand(mlCmd(g))
	root.AddCommand(archiveCmd(g))
	return root
}

// loadConfig reads the config file; a missing default file means defaults.
func (g *globals) loadConfig(cmd *cobra.Command) (config.Config, error) {
	if _, err := os.Stat(g.configPath); errors.Is(err, os.ErrNotExist) && !cmd.Flags().Changed("config") && !cmd.Root().PersistentFlags().Changed("config") {
		c := config.Default()
		return c, c.Validate()
	}
	return config.Load(g.configPath)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// openApp opens the store and queue for an admin command.
func (g *globals) openApp(cmd *cobra.Command) (*app.App, error) {
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	return app.Open(cmd.Context(), cfg, newLogger(g.stderr, "warn"), app.Options{})
}

func serveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run mailgate with the configuration file",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			log := newLogger(g.stderr, cfg.LogLevel)
			return run(cmd.Context(), cfg, log, nil)
		},
	}
}

// run starts the node and blocks until SIGINT/SIGTERM, then shuts down
// gracefully. ready, when set, is called once listening.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(*app.App)) error {
	if ctx == nil {
		ctx = context.Background()
	}
	a, err := app.Open(ctx, cfg, log, app.Options{Version: version})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		a.Close()
		return err
	}
	log.Info("mailgate running", "listeners", strings.Join(a.Addrs(), " "), "data", cfg.DataDir, "version", version)
	if ready != nil {
		ready(a)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.Shutdown(sctx)
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the version", Run: func(*cobra.Command, []string) {
		fmt.Fprintln(g.stdout, "mailgate", version)
	}}
}

func configDocCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "config-doc", Short: "Print the configuration reference (Markdown)", Run: func(*cobra.Command, []string) {
		fmt.Fprint(g.stdout, config.Reference())
	}}
}
