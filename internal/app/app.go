// Package app wires mailgate's stages together from the static configuration
// and runs them: open the store and the blobs, recover after a crash, start the
// queue, then the listeners; stop in the reverse order.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/imapd"
	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/mtasts"
	"github.com/mailgate/mailgate/internal/netguard"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/rsasign"
	"github.com/mailgate/mailgate/internal/scan/auth"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/store"
)

// App is a running mailgate node.
type App struct {
	Config config.Config
	Log    *slog.Logger
	Clock  clock.Clock
	Store  store.Store
	// Spool holds the queue's message bodies.
	Spool    blob.Store
	Queue    *queue.Queue
	Delivery *delivery.Client
	Resolver dnsx.Resolver
	// QSpool holds quarantined copies; Quarantine acts on them.
	QSpool     blob.Store
	Quarantine *quarantine.Manager
	Pipeline   *inbound.Pipeline
	// Passwords bounds every password check of the node (console and SMTP
	// AUTH) by one memory budget; LoginThrottle is their shared record of
	// failed attempts, and APILimit the API's per-token rate (throttle.go).
	Passwords     *passwd.Verifier
	LoginThrottle loginlimit.Limiter
	APILimit      loginlimit.Limiter
	// Continuity switches domains between their primary service and
	// mailgate's mailboxes and hands mail back (continuity.go).
	Continuity *continuity.Service
	// Mailboxes are the emergency mailboxes (imap.go).
	Mailboxes *mailbox.Service
	// OutPipeline checks outbound mail and OutHolds decides about held
	// and delayed mail (outbound.go).
	OutPipeline *outbound.Pipeline
	OutHolds    *outbound.Service
	// Archive is the audit archive (archive.go); nil until OpenArchive.
	Archive     *archive.Service
	archiveMu   sync.Mutex
	stopArchive func()
	// Lists are the mailing lists: expanded by the queue, their posting
	// policy applied at RCPT.
	Lists *mlist.Service
	// Links keeps attachment download links (attachlinks.go).
	Links *AttachLinks

	mailboxBlobs        blob.Store
	imap                *imapd.Server
	imapLns, imapTLSLns []net.Listener

	inbound, outbound *smtpin.Server
	submission        *smtpin.Server
	submissionAddrs   []string
	cont              continuityParts
	dir               directoryParts
	certs             *certificate // the listeners' certificate (Reload)
	listeners         []net.Listener
	httpSrv           *http.Server
	serveWG           sync.WaitGroup
	metrics           *metrics
	stopMaint         context.CancelFunc
	stopLifecycle     func()
	history           []*asyncHistory // written out by Close, before the store closes
	done              chan struct{}   // closed by Close: background helpers stop
	closeOnce         sync.Once
	spam              spamState
	// clamd is the node's one client of checks.clamd (clamdClient).
	clamd     *clamd.Client
	clamdOnce sync.Once

	// The node in the cluster (cluster.go).
	version       string
	started       time.Time
	stopHeartbeat func()
	wall          func() time.Time
}

// Options override dependencies (tests inject a clock or their own checks).
type Options struct {
	Clock clock.Clock
	// Stages, when set, replaces the configured inbound checks.
	Stages []policy.Stage
	// Passwords, when set, replaces the password verifier built from
	// [auth] (tests instrument it).
	Passwords *passwd.Verifier
	// Version is reported in the node's heartbeat.
	Version string
	// WallClock is the machine's clock, compared with the database
	// server's (time.Now when nil; tests skew it).
	WallClock func() time.Time
	// Mailboxes is the emergency mailbox store (mail continuity); nil:
	// domains in emergency mode keep their mail queued.
	Mailboxes MailboxStore
}

// Open builds the node without listening yet (Start recovers and listens).
// It is also what the admin CLI uses to act on the same store and queue.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (*App, error) {
	if log == nil {
		log = slog.Default()
	}
	if opt.Clock == nil {
		opt.Clock = clock.System{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st, err := openStore(ctx, cfg, (&App{Config: cfg}).Zone(), log)
	if err != nil {
		return nil, err
	}
	sp, err := openBlobs(ctx, cfg, spoolBlobs, cfg.Limits.MinFreeBytes, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	var res dnsx.Resolver = dnsx.Unconfigured()
	if cfg.DNS.Resolver != "" {
		c, err := dnsx.New(cfg.DNS.Resolver, dnsx.WithTimeout(cfg.DNS.Timeout.Duration), dnsx.WithCache(10000))
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("dns resolver: %w", err)
		}
		res = c
	}
	var cert *tls.Certificate
	if cfg.Delivery.ClientCertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Delivery.ClientCertFile, cfg.Delivery.ClientKeyFile)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("delivery client certificate: %w", err)
		}
		cert = &c
	}
	dl := delivery.New(cfg.Hostname, cfg.Delivery, res, cert, log.With("stage", "delivery"))
	qsp, err := openBlobs(ctx, cfg, quarantineBlobs, 0, log)
	if err != nil {
		sp.Close()
		st.Close()
		return nil, err
	}
	pw := opt.Passwords
	if pw == nil {
		if pw, err = passwd.New(passwd.Options{Budget: uint32(cfg.Auth.PasswordMemoryMiB) * 1024}); err != nil {
			st.Close()
			return nil, fmt.Errorf("auth.password_memory_mib: %w", err)
		}
	}
	a := &App{Config: cfg, Log: log, Clock: opt.Clock, Store: st, Spool: sp, QSpool: qsp, Delivery: dl, Resolver: res, done: make(chan struct{}),
		Passwords: pw, version: opt.Version, wall: opt.WallClock}
	a.LoginThrottle, a.APILimit = limiters(cfg, st, log)
	if a.wall == nil {
		a.wall = time.Now
	}
	a.metrics = newMetrics(st.ClusterStatus)
	if err := a.openMailboxes(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := a.openAttachLinks(ctx); err != nil {
		st.Close()
		return nil, err
	}
	mb := opt.Mailboxes
	if mb == nil {
		mb = mailboxes{a.Mailboxes}
	}
	router := &delivery.Router{Store: st, Client: dl, SmartHost: cfg.Delivery.SmartHost}
	a.Lists = &mlist.Service{Store: st, Spool: sp, Hostname: cfg.Hostname, Clock: opt.Clock, Log: log.With("stage", "lists")}
	if cfg.DNS.Resolver != "" {
		// Without a resolver no policy can be read, and mailgate delivers
		// nothing by MX either: list copies keep the author's From.
		a.Lists.DMARC = auth.New(auth.Config{Resolver: res, Hostname: cfg.Hostname}).PublishedPolicy
	}
	if cfg.Delivery.MTASTS && cfg.DNS.Resolver != "" {
		router.STS = MTASTSFetcher(res, log)
	}
	if cfg.Delivery.DANE && cfg.DNS.Resolver != "" {
		if sr, ok := res.(delivery.SecureResolver); ok {
			router.DANE = sr
		}
	}
	a.Queue = queue.New(queue.Deps{
		Store: st, Spool: queueSpool(sp, st), Deliver: a.metrics.wrapDeliverer(a.deliverer(dl, mb)),
		Router: router, Lists: a.Lists,
		Clock: opt.Clock, Log: log, Config: cfg.Queue, Node: cfg.NodeID, Hostname: cfg.Hostname,
	})
	a.Quarantine = &quarantine.Manager{Store: st, Blobs: qsp, Queue: a.Queue, Clock: opt.Clock, Log: log, Hostname: cfg.Hostname}
	a.Mailboxes.Queue = a.Queue // notices (the queue delivers into the mailboxes, so it comes second)
	a.Pipeline = a.newPipeline(opt.Stages)
	a.newOutbound()
	a.newContinuity(router, mb)
	a.newDirectory(router)
	return a, nil
}

// MTASTSFetcher fetches MTA-STS policies through the resolver. Policy
// servers are never reached on internal networks (netguard), as any URL a
// domain names.
func MTASTSFetcher(res dnsx.Resolver, log *slog.Logger) *mtasts.Fetcher {
	hc := (&netguard.Dialer{Resolver: res, Timeout: 30 * time.Second}).HTTPClient(30 * time.Second)
	return &mtasts.Fetcher{Resolver: res, Client: hc, Log: log.With("stage", "mta-sts")}
}

// Recover reconciles this node's blobs with the store after an unclean
// stop: blobs never acknowledged are discarded, damaged ones moved aside
// and their messages held (and logged), never silently deleted. Blobs
// other nodes wrote are theirs to recover (blob.Recover).
func (a *App) Recover(ctx context.Context) error {
	var pending map[string]store.PendingBlob
	rep, err := blob.Recover(ctx, a.Spool, func(ctx context.Context) (map[string]int64, error) {
		var err error
		if pending, err = a.Store.PendingBlobs(ctx); err != nil {
			return nil, err
		}
		sizes := make(map[string]int64, len(pending))
		for k, p := range pending {
			sizes[k] = p.Size
		}
		return sizes, nil
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	hold := func(key, reason string) error {
		a.Log.Error("queued message cannot be delivered", "id", pending[key].MessageID, "reason", reason)
		if err := a.Store.MarkCorrupt(ctx, pending[key].MessageID, reason); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		return nil
	}
	for _, k := range rep.Missing {
		if err := hold(k, "blob missing after restart"); err != nil {
			return err
		}
	}
	for k, where := range rep.Damaged {
		if err := hold(k, "blob damaged (size differs); moved to "+where); err != nil {
			return err
		}
	}
	a.Log.Info("spool recovered", "queued", rep.Kept, "discarded_unacknowledged", rep.Discarded,
		"missing", len(rep.Missing), "damaged", len(rep.Damaged))
	return a.recoverMailboxes(ctx)
}

// Start recovers, starts the queue and opens the listeners.
func (a *App) Start(ctx context.Context) error {
	// The RSA engine is chosen before any key is loaded: keys are
	// wrapped for libcrypto when the signing key cache opens them.
	engine, err := rsasign.Use(rsasign.Engine(a.Config.DKIM.RSAEngine))
	if err != nil {
		return err
	}
	a.Log.Info("rsa signing", "engine", engine, "for", "DKIM, ARC")
	if err := a.joinCluster(ctx); err != nil {
		return err
	}
	if err := a.Recover(ctx); err != nil {
		return err
	}
	tlsCfg, certs, err := loadTLS(a.Config, a.Log.With("stage", "tls"))
	if err != nil {
		return err
	}
	a.certs = certs
	if err := a.Queue.Start(ctx); err != nil {
		return err
	}
	a.startMaintenance()
	if a.stopLifecycle, err = a.StartLifecycle(ctx, LifecycleOptions{BaseURL: a.ConsoleURL(), Zone: a.Zone()}); err != nil {
		a.Queue.Stop(ctx)
		return err
	}
	if err := a.startArchive(ctx); err != nil {
		a.Queue.Stop(ctx)
		return err
	}
	for _, c := range a.Config.Checks.Enabled {
		cc := a.Config.Checks
		if c == "av" && cc.Clamd == "" || c == "rspamd" && cc.Rspamd == "" || c == "spamassassin" && cc.Spamd == "" {
			a.Log.Warn("check enabled but its peer is not configured; it does not run", "check", c)
		}
	}
	a.startOutbound()
	mk := func(kind smtpin.Kind, lc config.ListenerConfig) *smtpin.Server {
		return smtpin.New(smtpin.Deps{Kind: kind, Hostname: a.Config.Hostname, Listener: lc, Limits: a.Config.Limits,
			TLS: tlsCfg, Store: a.Store, Spool: a.Spool, Queue: a.metrics.wrapEnqueuer(a.enqueuer(kind), kind), Log: a.Log, Clock: a.Clock, Observer: a.metrics,
			Passwords: a.Passwords, AuthThrottle: a.LoginThrottle,
			ScanBudget: a.Config.Checks.ScanBudget(), Postmaster: a.Config.Postmaster, Lists: a.Lists, Recipients: a.recipients()})
	}
	a.inbound = mk(smtpin.Inbound, a.Config.Inbound)
	a.outbound = mk(smtpin.Outbound, a.Config.Outbound)
	for _, l := range []struct {
		srv   *smtpin.Server
		addrs []string
	}{{a.inbound, a.Config.Inbound.Listen}, {a.outbound, a.Config.Outbound.Listen}} {
		for _, addr := range l.addrs {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				a.Shutdown(context.Background())
				return fmt.Errorf("listen %s: %w", addr, err)
			}
			a.listeners = append(a.listeners, ln)
			srv := l.srv
			a.serveWG.Add(1)
			go func() {
				defer a.serveWG.Done()
				if err := srv.Serve(ln); err != nil {
					a.Log.Error("smtp listener stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
		}
	}
	if err := a.startSubmission(tlsCfg); err != nil {
		a.Shutdown(context.Background())
		return err
	}
	if err := a.startIMAP(tlsCfg); err != nil {
		a.Shutdown(context.Background())
		return err
	}
	if err := a.startContinuity(ctx); err != nil {
		a.Shutdown(context.Background())
		return err
	}
	if a.Config.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", a.Config.HTTP.Listen)
		if err != nil {
			a.Shutdown(context.Background())
			return fmt.Errorf("listen %s: %w", a.Config.HTTP.Listen, err)
		}
		h, err := a.Web()
		if err != nil {
			ln.Close()
			a.Shutdown(context.Background())
			return fmt.Errorf("web console: %w", err)
		}
		a.httpSrv = &http.Server{Handler: a.certs.acme.handler(h), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn)}
		a.listeners = append(a.listeners, ln)
		if a.Config.HTTP.TLS {
			a.httpSrv.TLSConfig = tlsCfg.Clone()
			a.certs.acme.consoleTLS(a.httpSrv.TLSConfig)
			go a.httpSrv.ServeTLS(ln, "", "")
		} else {
			go a.httpSrv.Serve(ln)
		}
	}
	a.startHeartbeat()
	return nil
}

// Addrs lists the bound listener addresses (inbound first, then outbound, then HTTP).
func (a *App) Addrs() []string {
	var out []string
	for _, l := range a.listeners {
		out = append(out, l.Addr().String())
	}
	return out
}

// InboundAddr is the first inbound listener's bound address.
func (a *App) InboundAddr() string {
	if len(a.Config.Inbound.Listen) == 0 || len(a.listeners) == 0 {
		return ""
	}
	return a.listeners[0].Addr().String()
}

// OutboundAddr is the first outbound listener's bound address.
func (a *App) OutboundAddr() string {
	n := len(a.Config.Inbound.Listen)
	if len(a.Config.Outbound.Listen) == 0 || len(a.listeners) <= n {
		return ""
	}
	return a.listeners[n].Addr().String()
}

// Shutdown stops listening, lets sessions and deliveries finish until ctx
// ends, and closes the store. Accepted mail is already durable, so a short
// ctx loses nothing: unfinished deliveries resume at the next start.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	for _, s := range []*smtpin.Server{a.inbound, a.outbound, a.submission} {
		if s != nil {
			if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, err)
			}
		}
	}
	if a.httpSrv != nil {
		a.httpSrv.Shutdown(ctx)
	}
	// go-smtp closes only the listeners its Serve has registered; one that
	// was started just before the shutdown may not be yet, and would accept
	// forever. Closing them all ourselves ends every Serve.
	for _, l := range a.listeners {
		l.Close()
	}
	a.stopIMAP()
	a.serveWG.Wait()
	a.stopContinuity(ctx)
	if err := a.Queue.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if a.stopLifecycle != nil {
		a.stopLifecycle()
	}
	if a.stopArchive != nil {
		a.stopArchive()
	}
	if a.stopMaint != nil {
		a.stopMaint()
	}
	a.Delivery.CloseIdle(true)
	return errors.Join(append(errs, a.Close())...)
}

// Close releases the store and spools (for CLI use after Open).
func (a *App) Close() error {
	var err error
	a.closeOnce.Do(func() {
		close(a.done)
		if a.stopHeartbeat != nil {
			a.stopHeartbeat()
		}
		for _, h := range a.history {
			h.Stop()
		}
		if cl, ok := a.clamdClient(); ok {
			cl.CloseIdleConnections()
		}
		err = errors.Join(a.closeArchive(), a.Store.Close(), a.Spool.Close(), a.QSpool.Close(), a.mailboxBlobs.Close(), a.Links.Blobs.Close())
	})
	return err
}
