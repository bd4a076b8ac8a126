package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

// withApp opens the store for one admin command and closes it afterwards.
func (g *globals) withApp(fn func(ctx context.Context, a *app.App, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a, err := g.openApp(cmd)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := fn(cmd.Context(), a, args); err != nil {
			return err
		}
		auditCLI(cmd, a, args)
		return nil
	}
}

// readOnly names the commands that change nothing (not audited).
var readOnly = map[string]bool{"list": true, "show": true, "score": true, "track": true}

// auditCLI records a successful changing command in the audit log, so the
// console's log covers CLI changes too.
func auditCLI(cmd *cobra.Command, a *app.App, args []string) {
	if readOnly[cmd.Name()] {
		return
	}
	who := os.Getenv("SUDO_USER")
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	err := a.Store.AddAudit(cmd.Context(), store.AuditEntry{At: a.Clock.Now(), Actor: "cli:" + who, IP: "local",
		Action: strings.ReplaceAll(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), " ", "."), After: strings.Join(args, " ")})
	if err != nil {
		a.Log.Warn("audit log write failed", "err", err)
	}
}

func tenantOf(ctx context.Context, a *app.App, name string) (store.Tenant, error) {
	t, err := a.Store.TenantByName(ctx, name)
	if err != nil {
		return t, fmt.Errorf("%w (create it with: mailgate tenant add %s)", err, name)
	}
	return t, nil
}

func tenantCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "tenant", Short: "Manage tenants (one per customer contract)"}
	c.AddCommand(&cobra.Command{Use: "add NAME", Short: "Create a tenant", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := a.Store.CreateTenant(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "tenant %s created (id %d)\n", t.Name, t.ID)
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "list", Short: "List tenants", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			ts, err := a.Store.Tenants(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED")
			for _, t := range ts {
				fmt.Fprintf(tw, "%d\t%s\t%s\n", t.ID, t.Name, t.Created.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		})})
	c.AddCommand(&cobra.Command{Use: "delete NAME", Short: "Delete a tenant with its domains, users and routes", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Store.DeleteTenant(ctx, t.ID); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "tenant %s deleted\n", t.Name)
			return nil
		})})
	return c
}

func domainCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "domain", Short: "Manage a tenant's mail domains"}
	var routes []string
	var tlsMode string
	add := &cobra.Command{Use: "add TENANT DOMAIN", Short: "Serve a domain for a tenant", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			name, err := addr.NormalizeDomain(args[1])
			if err != nil {
				return fmt.Errorf("domain %q: %w", args[1], err)
			}
			d, err := a.Store.CreateDomain(ctx, t.ID, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "domain %s added to tenant %s\n", d.Name, t.Name)
			if len(routes) > 0 {
				return setRoutes(ctx, g, a, d, routes, tlsMode)
			}
			fmt.Fprintf(g.stdout, "no delivery route yet: mail waits in the queue until you run: mailgate route set %s smtp://HOST:PORT\n", d.Name)
			return nil
		})}
	add.Flags().StringSliceVar(&routes, "route", nil, "delivery target(s), as for 'route set'")
	add.Flags().StringVar(&tlsMode, "tls", "opportunistic", "TLS toward the targets: opportunistic, required, verify, none")
	c.AddCommand(add)
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List a tenant's domains and routes", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			ds, err := a.Store.Domains(ctx, t.ID)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOMAIN\tROUTES")
			for _, d := range ds {
				rs, err := a.Store.Routes(ctx, t.ID, d.ID)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\n", d.Name, formatRoutes(rs))
			}
			return tw.Flush()
		})})
	c.AddCommand(&cobra.Command{Use: "delete TENANT DOMAIN", Short: "Stop serving a domain", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Store.DeleteDomain(ctx, t.ID, strings.ToLower(args[1])); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "domain %s deleted\n", args[1])
			return nil
		})})
	return c
}

func formatRoutes(rs []store.Route) string {
	if len(rs) == 0 {
		return "(none: mail is held)"
	}
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d=%s tls=%s", r.Priority, r.Target, r.TLS))
	}
	return strings.Join(parts, ", ")
}

func routeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "route", Short: "Set where a domain's mail is delivered"}
	var tlsMode string
	set := &cobra.Command{Use: "set DOMAIN TARGET...",
		Short: "Replace a domain's delivery targets",
		Long: `Replace a domain's delivery targets. Each TARGET is smtp://host[:port], "mx" (MX lookup of the
domain) or mx:NAME (MX lookup of another name), optionally prefixed with a priority and "="
(lower is tried first; default: the order given). Example:
  mailgate route set example.com 10=smtp://mail1.example.net:25 20=smtp://mail2.example.net:25`,
		Args: cobra.MinimumNArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			d, err := a.Store.DomainByName(ctx, strings.ToLower(args[0]))
			if err != nil {
				return err
			}
			return setRoutes(ctx, g, a, d, args[1:], tlsMode)
		})}
	set.Flags().StringVar(&tlsMode, "tls", "opportunistic", "TLS toward the targets: opportunistic, required, verify, none")
	c.AddCommand(set)
	c.AddCommand(&cobra.Command{Use: "show DOMAIN", Short: "Show a domain's delivery targets", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			d, err := a.Store.DomainByName(ctx, strings.ToLower(args[0]))
			if err != nil {
				return err
			}
			rs, err := a.Store.Routes(ctx, d.TenantID, d.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: %s\n", d.Name, formatRoutes(rs))
			return nil
		})})
	return c
}

func setRoutes(ctx context.Context, g *globals, a *app.App, d store.Domain, targets []string, tlsMode string) error {
	rs, err := delivery.ParseRoutes(targets, tlsMode)
	if err != nil {
		return err
	}
	if err := a.Store.SetRoutes(ctx, d.TenantID, d.ID, rs); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s now delivers to %s\n", d.Name, formatRoutes(rs))
	return nil
}

func userCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage the known addresses of served domains"}
	c.AddCommand(userNameCmd(g))
	c.AddCommand(&cobra.Command{Use: "add ADDRESS...", Short: "Add addresses (the tenant is the one serving each domain)", Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			for _, s := range args {
				if err := addUser(ctx, a, s); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "user %s added\n", strings.ToLower(s))
			}
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "import", Short: "Add addresses read from standard input, one per line", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			sc := bufio.NewScanner(g.stdin)
			n := 0
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				if err := addUser(ctx, a, line); err != nil {
					return fmt.Errorf("line %q: %w", line, err)
				}
				n++
			}
			fmt.Fprintf(g.stdout, "%d users added\n", n)
			return sc.Err()
		})})
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List a tenant's users", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			us, err := a.Store.Users(ctx, t.ID)
			if err != nil {
				return err
			}
			for _, u := range us {
				fmt.Fprintln(g.stdout, u.Address)
			}
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "delete ADDRESS", Short: "Remove an address", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			tid, key, err := addressOwner(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Store.DeleteUser(ctx, tid, key); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "user %s deleted\n", key)
			return nil
		})})
	return c
}

func addUser(ctx context.Context, a *app.App, s string) error {
	tid, key, err := addressOwner(ctx, a, s)
	if err != nil {
		return err
	}
	_, err = a.Store.CreateUser(ctx, tid, key)
	return err
}

// addressOwner parses an address of a served domain and returns the tenant
// serving it and the address's lookup key.
func addressOwner(ctx context.Context, a *app.App, s string) (int64, string, error) {
	ad, err := addr.Parse(s)
	if err != nil {
		return 0, "", fmt.Errorf("address %q: %w", s, err)
	}
	d, err := a.Store.DomainByName(ctx, ad.Domain)
	if err != nil {
		return 0, "", fmt.Errorf("%w (add the domain first: mailgate domain add TENANT %s)", err, ad.Domain)
	}
	return d.TenantID, ad.Key(), nil
}

// tenantAndPrefix reads the TENANT CIDR arguments of the network commands.
func tenantAndPrefix(ctx context.Context, a *app.App, tenant, cidr string) (store.Tenant, netip.Prefix, error) {
	t, err := tenantOf(ctx, a, tenant)
	if err != nil {
		return t, netip.Prefix{}, err
	}
	p, err := parsePrefix(cidr)
	return t, p, err
}

func relayCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "relay", Short: "Who may relay outbound mail through the outbound listener"}
	c.AddCommand(&cobra.Command{Use: "allow TENANT CIDR", Short: "Allow a network (e.g. 192.0.2.0/24) to relay for a tenant", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, p, err := tenantAndPrefix(ctx, a, args[0], args[1])
			if err != nil {
				return err
			}
			if err := a.Store.AddRelayNet(ctx, t.ID, p); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s may relay for tenant %s\n", p, t.Name)
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "deny TENANT CIDR", Short: "Remove a relay network", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, p, err := tenantAndPrefix(ctx, a, args[0], args[1])
			if err != nil {
				return err
			}
			return a.Store.DeleteRelayNet(ctx, t.ID, p)
		})})
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List relay networks", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			ns, err := a.Store.RelayNets(ctx, t.ID)
			if err != nil {
				return err
			}
			for _, n := range ns {
				fmt.Fprintln(g.stdout, n.Prefix)
			}
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "login TENANT USERNAME", Short: "Create or change an SMTP AUTH login (password read from standard input)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(g.stdin)
			if !sc.Scan() || strings.TrimSpace(sc.Text()) == "" {
				return fmt.Errorf("give the password on standard input")
			}
			h, err := passwd.Hash(strings.TrimRight(sc.Text(), "\r\n"))
			if err != nil {
				return err
			}
			if err := a.Store.SetRelayLogin(ctx, t.ID, args[1], h); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "login %s may relay for tenant %s (after STARTTLS)\n", args[1], t.Name)
			return nil
		})})
	return c
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("network %q: %w", s, err)
		}
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("network %q: %w", s, err)
	}
	return p.Masked(), nil
}
