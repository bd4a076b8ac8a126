package app

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	_ "time/tzdata" // report_zone works on systems without a zoneinfo database

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailgate/mailgate/internal/netguard"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/web"
)

// Zone is the time zone of reports, digests and the dashboard.
func (a *App) Zone() *time.Location {
	if a.Config.HTTP.ReportZone != "" {
		if loc, err := time.LoadLocation(a.Config.HTTP.ReportZone); err == nil {
			return loc
		}
	}
	return time.Local
}

// ConsoleURL is the console's public root URL (links in digest mails).
func (a *App) ConsoleURL() string {
	if a.Config.HTTP.BaseURL != "" {
		return strings.TrimRight(a.Config.HTTP.BaseURL, "/")
	}
	scheme := "http"
	if a.Config.HTTP.TLS {
		scheme = "https"
	}
	_, port, err := net.SplitHostPort(a.Config.HTTP.Listen)
	if err != nil || port == "" {
		return scheme + "://" + a.Config.Hostname
	}
	return scheme + "://" + net.JoinHostPort(a.Config.Hostname, port)
}

// Web builds the console and API over this node's store and queue.
func (a *App) Web() (*web.Server, error) {
	var allowed []netip.Prefix
	for _, n := range a.Config.HTTP.MetricsFrom {
		if p, err := netip.ParsePrefix(n); err == nil {
			allowed = append(allowed, p)
		}
	}
	metricsH := promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{})
	return web.New(web.Deps{
		Store: a.Store, Queue: a.Queue, Quarantine: a.Quarantine, Learn: a.LearnMessage, Admin: a.Admin(),
		Quota: func(ctx context.Context, tenantID int64, address string) int64 {
			s, err := a.Pipeline.SettingsFor(ctx, tenantID, address)
			if err != nil {
				return 0 // shown as unknown; the pipeline enforces the real value
			}
			return quarantine.QuotaBytes(s)
		},
		Config: a.Config.HTTP, Hostname: a.Config.Hostname, Clock: a.Clock, Log: a.Log.With("stage", "web"), Zone: a.Zone(),
		DeadAfter: a.Config.Cluster.DeadAfter.Duration,
		Mailboxes: a.Mailboxes, Submit: a.submitFromWeb, MaxMessageBytes: a.Config.Limits.MaxMessageBytes, ConsoleURL: a.ConsoleURL(),
		Passwords: a.Passwords, Throttle: a.LoginThrottle, APILimit: a.APILimit, Resolver: a.Resolver,
		Upstreams: netguard.Policy{Allow: a.Config.Auth.UpstreamNets()},
		Extra: map[string]http.Handler{
			"GET /metrics": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				host, _, _ := net.SplitHostPort(r.RemoteAddr)
				ip, err := netip.ParseAddr(host)
				ok := false
				for _, p := range allowed {
					ok = ok || (err == nil && p.Contains(ip.Unmap()))
				}
				if !ok {
					http.Error(w, "forbidden", http.StatusForbidden)
					return
				}
				metricsH.ServeHTTP(w, r)
			}),
			"GET /healthz":     http.HandlerFunc(a.healthz),
			"GET /readyz":      http.HandlerFunc(a.readyz),
			"GET " + LinkPath:  a.linkHandler(),
			"POST " + LinkPath: a.linkHandler(),
		},
	})
}
