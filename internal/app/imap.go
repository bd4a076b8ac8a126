package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/mailgate/mailgate/internal/imapd"
	"github.com/mailgate/mailgate/internal/mailbox"
)

// openMailboxes builds the emergency mailboxes: bodies in the node's blob
// store (namespace "mailbox": data_dir/mailbox, or the shared S3 bucket),
// metadata in the store. The queue that carries their notices is set
// once it exists (it delivers into the mailboxes, so it comes second).
func (a *App) openMailboxes(ctx context.Context) error {
	blobs, err := openBlobs(ctx, a.Config, mailboxBlobs, 0, a.Log)
	if err != nil {
		return err
	}
	a.mailboxBlobs = blobs
	a.Mailboxes = &mailbox.Service{Store: a.Store, Blobs: blobs, Clock: a.Clock,
		Log: a.Log.With("stage", "mailbox"), Hostname: a.Config.Hostname, Bus: mailbox.NewBus(), Learn: a.LearnMessage}
	return nil
}

// startIMAP opens the [imap] listeners.
func (a *App) startIMAP(tlsCfg *tls.Config) error {
	c := a.Config.IMAP
	if len(c.Listen) == 0 && len(c.ListenTLS) == 0 {
		return nil
	}
	a.imap = imapd.New(imapd.Deps{Mailboxes: a.Mailboxes, TLS: tlsCfg, Passwords: a.Passwords, Throttle: a.LoginThrottle,
		Clock: a.Clock, Log: a.Log.With("stage", "imap"), Config: c, MaxMessageBytes: a.Config.Limits.MaxMessageBytes,
		RequireTOTP: a.Config.HTTP.RequireTOTP, Command: a.metrics.imapCommand})
	for _, l := range []struct {
		addrs    []string
		implicit bool
	}{{c.Listen, false}, {c.ListenTLS, true}} {
		for _, addr := range l.addrs {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("imap listen %s: %w", addr, err)
			}
			ln = countingListener{Listener: ln, c: a.metrics.imapTotal}
			if l.implicit {
				a.imapTLSLns = append(a.imapTLSLns, ln)
			} else {
				a.imapLns = append(a.imapLns, ln)
			}
			srv, implicit := a.imap, l.implicit
			a.serveWG.Add(1)
			go func() {
				defer a.serveWG.Done()
				serve := srv.Serve
				if implicit {
					serve = srv.ServeTLS
				}
				if err := serve(ln); err != nil {
					a.Log.Error("imap listener stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
		}
	}
	a.metrics.imap.Store(a.imap)
	a.Log.Info("imap listening", "starttls", addrsOf(a.imapLns), "tls", addrsOf(a.imapTLSLns))
	return nil
}

// stopIMAP ends the IMAP listeners and sessions (every acknowledged
// change is already durable).
func (a *App) stopIMAP() {
	if a.imap != nil {
		a.imap.Close()
	}
	// A listener whose Serve had not registered yet is closed here.
	for _, l := range append(append([]net.Listener{}, a.imapLns...), a.imapTLSLns...) {
		l.Close()
	}
}

func addrsOf(lns []net.Listener) []string {
	var out []string
	for _, l := range lns {
		out = append(out, l.Addr().String())
	}
	return out
}

// IMAPAddr is the first STARTTLS IMAP listener's bound address ("" if none).
func (a *App) IMAPAddr() string {
	if len(a.imapLns) == 0 {
		return ""
	}
	return a.imapLns[0].Addr().String()
}

// IMAPTLSAddr is the first implicit-TLS IMAP listener's bound address.
func (a *App) IMAPTLSAddr() string {
	if len(a.imapTLSLns) == 0 {
		return ""
	}
	return a.imapTLSLns[0].Addr().String()
}

// recoverMailboxes removes mailbox bodies written before a crash but never
// acknowledged; it runs before the queue can deliver into mailboxes.
func (a *App) recoverMailboxes(ctx context.Context) error {
	if err := a.Mailboxes.Recover(ctx); err != nil {
		return fmt.Errorf("recover mailboxes: %w", err)
	}
	return nil
}
