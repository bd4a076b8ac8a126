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
	"github.com/mailgate/mailgate/internal/sdnotify"
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
	root.AddCommand(mlCmd(g), mailboxCmd(g), dkimCmd(g), arcCmd(g), linksCmd(g))
	root.AddCommand(archiveCmd(g))
	root.AddCommand(backupCmd(g), restoreCmd(g))
	root.AddCommand(doctorCmd(g))
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
	lv := new(slog.LevelVar)
	setLevel(lv, level)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}

// serveLogger is the server's logger, in log_format at log_level (which
// a reload may change through the LevelVar).
func serveLogger(w io.Writer, cfg config.Config) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	setLevel(level, cfg.LogLevel)
	return slog.New(logHandler(w, cfg.LogFormat, level)), level
}

// logHandler writes records in the configured log_format: one JSON object
// per line for "json", key=value text otherwise.
func logHandler(w io.Writer, format string, level slog.Leveler) slog.Handler {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

// setLevel sets lv from a log_level value (info when unknown).
func setLevel(lv *slog.LevelVar, level string) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	lv.Set(l)
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
		Long: `Runs the node until SIGINT or SIGTERM, then stops taking connections and lets
sessions and deliveries finish (up to 30 s; accepted mail is durable either
way). SIGHUP reads the configuration file again and applies the TLS
certificate ([tls] cert_file, key_file) and log_level without dropping any
session; other changed keys are logged and take effect at the next restart.
Under systemd (Type=notify) it reports READY=1 once every listener is up,
RELOADING=1 during a reload and STOPPING=1 when it starts draining.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			log, level := serveLogger(g.stderr, cfg)
			return serve(cmd.Context(), cfg, serveOptions{log: log, level: level, notify: sdnotify.FromEnv(),
				reload: func() (config.Config, error) { return g.loadConfig(cmd) }})
		},
	}
}

// serveOptions are what serve needs besides the configuration.
type serveOptions struct {
	log *slog.Logger
	// level is the logger's level, set again from log_level on reload.
	level *slog.LevelVar
	// reload reads the configuration again (SIGHUP); nil: the certificate
	// files of the starting configuration are read again.
	reload func() (config.Config, error)
	notify sdnotify.Notifier
	// ready, when set, is called once listening.
	ready func(*app.App)
}

// run starts the node and blocks until SIGINT/SIGTERM, then shuts down
// gracefully. ready, when set, is called once listening.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(*app.App)) error {
	return serve(ctx, cfg, serveOptions{log: log, ready: ready})
}

// serve starts the node, tells the service manager it is ready, reloads on
// SIGHUP and shuts down gracefully on SIGINT/SIGTERM or when ctx ends.
func serve(ctx context.Context, cfg config.Config, o serveOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log := o.log
	// Signals are taken from before the start: a SIGHUP while starting
	// must not kill the process (its default action).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	tuneGCFromEnv(cfg.Runtime, log)
	a, err := app.Open(ctx, cfg, log, app.Options{Version: version})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		a.Close()
		return err
	}
	if cfg.Debug.PprofListen != "" {
		_, stop, err := startPprof(cfg.Debug.PprofListen, log)
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a.Shutdown(sctx)
			return err
		}
		defer stop()
	}
	log.Info("mailgate running", "listeners", strings.Join(a.Addrs(), " "), "data", cfg.DataDir, "version", version)
	if o.ready != nil {
		o.ready(a)
	}
	if err := o.notify.Notify(sdnotify.Ready, "STATUS=listening on "+strings.Join(a.Addrs(), " ")); err != nil {
		log.Warn("service manager not notified", "err", err)
	}
	for running := true; running; {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				reload(a, cfg, o)
				continue
			}
			log.Info("shutting down", "signal", s.String())
			running = false
		case <-ctx.Done():
			running = false
		}
	}
	if err := o.notify.Notify(sdnotify.Stopping, "STATUS=draining"); err != nil {
		log.Warn("service manager not notified", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.Shutdown(sctx)
}

// reload applies what SIGHUP reloads; a configuration that does not load
// or a certificate that does not read is logged and the node keeps running
// as it was.
func reload(a *app.App, started config.Config, o serveOptions) {
	log := o.log
	o.notify.Notify(sdnotify.Reloading, sdnotify.Monotonic())
	defer o.notify.Notify(sdnotify.Ready, "STATUS=listening on "+strings.Join(a.Addrs(), " "))
	cfg := started
	if o.reload != nil {
		c, err := o.reload()
		if err != nil {
			log.Error("reload: configuration not loaded; nothing changed", "err", err)
			return
		}
		cfg = c
	}
	restart, err := a.Reload(cfg)
	if err != nil {
		log.Error("reload failed; nothing changed", "err", err)
		return
	}
	if o.level != nil {
		setLevel(o.level, cfg.LogLevel)
	}
	if len(restart) > 0 {
		log.Warn("reload: these settings changed and take effect at the next restart", "keys", strings.Join(restart, " "))
	}
	log.Info("reloaded: TLS certificate and log_level")
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
