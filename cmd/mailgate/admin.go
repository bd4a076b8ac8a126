package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
)

// The admin commands read the store directly, and make every change through
// the administration layer (internal/admin) as an operator, so the console,
// the API and the CLI follow the same rules and each change is in the audit
// log as "cli:<unix user>".

// withApp opens the store for one admin command and closes it afterwards.
func (g *globals) withApp(fn func(ctx context.Context, a *app.App, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a, err := g.openApp(cmd)
		if err != nil {
			return err
		}
		defer a.Close()
		return fn(cmd.Context(), a, args)
	}
}

// operator is the CLI's identity: the person at the terminal (the one who
// ran sudo, if any), acting as a system operator on every tenant.
func operator() admin.Actor {
	who := os.Getenv("SUDO_USER")
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	return admin.Operator("cli:" + who)
}

func tenantOf(ctx context.Context, a *app.App, name string) (store.Tenant, error) {
	t, err := a.Store.TenantByName(ctx, name)
	if err != nil {
		return t, fmt.Errorf("%w (create it with: mailgate tenant add %s)", err, name)
	}
	return t, nil
}

// inTenant is the operator acting on the named tenant.
func inTenant(ctx context.Context, a *app.App, name string) (admin.Actor, store.Tenant, error) {
	t, err := tenantOf(ctx, a, name)
	return operator().In(t.ID), t, err
}

func tenantCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "tenant", Short: "Manage tenants (one per customer contract)"}
	c.AddCommand(&cobra.Command{Use: "add NAME", Short: "Create a tenant", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := a.Admin().AddTenant(ctx, operator(), args[0])
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
			if err := a.Admin().DeleteTenant(ctx, operator(), t.ID); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "tenant %s deleted\n", t.Name)
			return nil
		})})
	return c
}

func domainCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "domain", Short: "Manage a tenant's mail domains",
		Long: `Manage a tenant's mail domains. A domain the operator adds here is served at once.
A domain a tenant administrator adds on the console or through the API is unverified (not
served) until the TXT record "mailgate-verify=<token>" at _mailgate.<domain> is found:
'domain list' shows the record, 'domain verify' looks it up, and 'domain add' serves the
domain without it (the operator vouches for the tenant).`}
	var routes []string
	var tlsMode string
	add := &cobra.Command{Use: "add TENANT DOMAIN", Short: "Serve a domain for a tenant (at once, without DNS verification)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, t, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			d, err := a.Admin().AddDomain(ctx, op, args[1], routes, tlsMode)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "domain %s added to tenant %s\n", d.Name, t.Name)
			if len(d.Routes) > 0 {
				fmt.Fprintf(g.stdout, "%s now delivers to %s\n", d.Name, formatRoutes(d.Routes))
				return nil
			}
			fmt.Fprintf(g.stdout, "no delivery route yet: mail waits in the queue until you run: mailgate route set %s smtp://HOST:PORT\n", d.Name)
			return nil
		})}
	add.Flags().StringSliceVar(&routes, "route", nil, "delivery target(s), as for 'route set'")
	add.Flags().StringVar(&tlsMode, "tls", "opportunistic", "TLS toward the targets: opportunistic, required, verify, none")
	c.AddCommand(add)
	c.AddCommand(&cobra.Command{Use: "verify TENANT DOMAIN", Short: "Look up an unverified domain's TXT record and serve the domain when it is right", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, t, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			d, err := a.Admin().VerifyDomain(ctx, op, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "domain %s verified: served for tenant %s, delivering to %s\n", d.Name, t.Name, formatRoutes(d.Routes))
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List a tenant's domains, their state and routes", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			ds, err := a.Admin().Domains(ctx, op)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOMAIN\tSTATE\tROUTES")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, d.State(), formatRoutes(d.Routes))
				if d.Record != nil {
					fmt.Fprintf(tw, "\t\tpublish: %s %s %q\n", d.Record.Name, d.Record.Type, d.Record.Value)
				}
			}
			return tw.Flush()
		})})
	c.AddCommand(&cobra.Command{Use: "delete TENANT DOMAIN", Short: "Stop serving a domain (or drop an unverified one)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Admin().DeleteDomain(ctx, op, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "domain %s deleted\n", strings.ToLower(args[1]))
			return nil
		})})
	c.AddCommand(domainOnboardCmd(g))
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
			rs, err := a.Admin().SetRoutes(ctx, operator(), args[0], args[1:], tlsMode)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s now delivers to %s\n", strings.ToLower(args[0]), formatRoutes(rs))
			return nil
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

func userCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage the known addresses of served domains"}
	c.AddCommand(userNameCmd(g))
	c.AddCommand(&cobra.Command{Use: "add ADDRESS...", Short: "Add addresses (the tenant is the one serving each domain)", Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			svc := a.Admin()
			for _, s := range args {
				key, err := svc.AddUser(ctx, operator(), s, "")
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "user %s added\n", key)
			}
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "import", Short: "Add addresses read from standard input (CSV: address[,display name[,password of the user's login]]; # starts a comment)", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			n, err := a.Admin().ImportUsers(ctx, operator(), g.stdin)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d users added\n", n)
			return nil
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
			if err := a.Admin().DeleteUser(ctx, operator(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "user %s deleted\n", strings.ToLower(args[0]))
			return nil
		})})
	return c
}

func userNameCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "name ADDRESS DISPLAY-NAME", Short: "Set a user's display name (impersonation checks compare From names with it)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			return a.Admin().SetDisplayName(ctx, operator(), args[0], args[1])
		})}
}

func relayCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "relay", Short: "Who may relay outbound mail through the outbound listener"}
	c.AddCommand(&cobra.Command{Use: "allow TENANT CIDR", Short: "Allow a network (e.g. 192.0.2.0/24) to relay for a tenant", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, t, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			p, err := a.Admin().AllowRelay(ctx, op, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s may relay for tenant %s\n", p, t.Name)
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "deny TENANT CIDR", Short: "Remove a relay network", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			_, err = a.Admin().DenyRelay(ctx, op, args[1])
			return err
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
			op, t, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(g.stdin)
			sc.Scan()
			if err := a.Admin().SetRelayLogin(ctx, op, args[1], strings.TrimRight(sc.Text(), "\r\n")); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "login %s may relay for tenant %s (after STARTTLS)\n", args[1], t.Name)
			return nil
		})})
	return c
}
