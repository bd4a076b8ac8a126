package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

func continuityCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "continuity", Short: "Mail continuity: switch a domain to mailgate's mailboxes and hand its mail back",
		Long: `Mail continuity (docs/continuity.md). A domain is in mode primary (its mail goes to its
routes, the customer's mail service) or emergency (into mailgate's own mailboxes, which
users read over IMAP and send from over submission). After the primary service is back,
the mail received meanwhile is handed back to it.`}
	c.AddCommand(continuityStatusCmd(g), continuitySwitchCmd(g), continuityEventsCmd(g), handbackCmd(g),
		continuityUsersCmd(g), continuityPurgeCmd(g), credentialsCmd(g))
	return c
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func continuityStatusCmd(g *globals) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{Use: "status [DOMAIN]", Short: "Each domain's mode, failover state and hand-backs", Args: cobra.MaximumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			tid, err := optTenant(ctx, a, tenant)
			if err != nil {
				return err
			}
			domain := ""
			if len(args) == 1 {
				domain = args[0]
			}
			st, err := a.Admin().ContinuityStatus(ctx, operator().In(tid), domain)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOMAIN\tMODE\tSINCE\tBY\tFAILOVER\tPROBE\tHAND-BACK")
			for _, d := range st {
				failover, probe := "off", "-"
				if d.Failover {
					failover = "on (" + d.Canary + ")"
					switch {
					case !d.Probe.FailingSince.IsZero():
						probe = "failing since " + when(d.Probe.FailingSince)
					case !d.Probe.PassingSince.IsZero():
						probe = "passing since " + when(d.Probe.PassingSince)
					}
				}
				hb := "-"
				if len(d.Handbacks) > 0 {
					hb = handbackLine(d.Handbacks[0])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Domain, d.Mode, when(d.Changed), d.ChangedBy, failover, probe, hb)
			}
			return tw.Flush()
		})}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant")
	return cmd
}

// handbackLine summarises a hand-back job on one line.
func handbackLine(h continuity.HandbackStatus) string {
	s := fmt.Sprintf("#%d %s via %s: %d/%d handed back", h.ID, h.State, h.Path, h.Done, h.Total)
	if h.Deferred > 0 {
		s += fmt.Sprintf(", %d deferred", h.Deferred)
	}
	if h.Failed > 0 {
		s += fmt.Sprintf(", %d failed", h.Failed)
	}
	if h.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", h.Skipped)
	}
	if h.Searching {
		s += ", still searching"
	}
	return s
}

func continuitySwitchCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{Use: "switch DOMAIN emergency|mailbox|primary", Short: "Switch where a domain's mail goes: emergency or hosted (mailbox) mailboxes, or its routes (applies to mail already queued)",
		Long: `Switch a domain's delivery mode. emergency: its mail goes into mailgate's mailboxes (one is
created for every user), mail already queued for the primary service included. mailbox:
the same for good, a domain hosted in mailgate (webmail, IMAP, submission). primary: its
mail goes to its routes again, and the mail received in emergency mode is handed back
(unless continuity.handback is manual; a hosted domain's mail is not). The tenant's administrators are told by mail.`,
		Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			res, err := a.Admin().SwitchContinuity(ctx, operator(), args[0], args[1], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: %s → %s; %d queued recipient(s) due now", res.Domain, res.From, res.To, res.Woken)
			if res.To == store.ModeEmergency || res.To == store.ModeMailbox {
				fmt.Fprintf(g.stdout, "; %d mailbox(es) created", res.Created)
			}
			fmt.Fprintln(g.stdout)
			if res.Handback != nil {
				fmt.Fprintf(g.stdout, "hand-back %d started (path %s); follow it with: mailgate continuity handback status %s\n", res.Handback.ID, res.Handback.Path, res.Domain)
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(g.stderr, "warning:", w)
			}
			return nil
		})}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept with the mode, in the audit log and in the notice)")
	return cmd
}

func continuityEventsCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{Use: "events DOMAIN", Short: "The continuity log: probe failures, switches, hand-backs (newest first)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			es, err := a.Admin().ContinuityEvents(ctx, operator(), args[0], 0, limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEVENT\tBY\tDETAIL")
			for _, e := range es {
				by := e.Actor
				if by == "" {
					by = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", when(e.At), e.Kind, by, oneLine(e.Detail, 200))
			}
			return tw.Flush()
		})}
	cmd.Flags().IntVar(&limit, "limit", 50, "most events shown")
	return cmd
}

func handbackCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "handback", Short: "Hand the mail received in emergency mode back to the primary service"}
	c.AddCommand(&cobra.Command{Use: "status DOMAIN", Short: "Hand-backs of a domain with their progress", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			hs, err := a.Admin().HandbackStatus(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			if len(hs) == 0 {
				fmt.Fprintln(g.stdout, "no hand-back yet")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tPATH\tUSER\tTOTAL\tDONE\tPENDING\tDEFERRED\tFAILED\tSKIPPED\tSTARTED\tBY\tFINISHED")
			for _, h := range hs {
				user := h.User
				if user == "" {
					user = "(all)"
				}
				state := h.State
				if h.Searching {
					state += ", searching"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", h.ID, state, h.Path, user, h.Total, h.Done, h.Pending,
					h.Deferred, h.Failed, h.Skipped, when(h.Created), h.CreatedBy, when(h.Finished))
			}
			return tw.Flush()
		})})
	var user string
	start := &cobra.Command{Use: "start DOMAIN", Short: "Start a hand-back of the domain (or of one user with --user)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			h, err := a.Admin().StartHandback(ctx, operator(), args[0], user)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "hand-back %d of %s started (path %s); a running mailgate does the work\n", h.ID, args[0], h.Path)
			return nil
		})}
	start.Flags().StringVar(&user, "user", "", "only this user's mail (an address of the domain)")
	c.AddCommand(start)
	c.AddCommand(&cobra.Command{Use: "retry DOMAIN", Short: "Try the messages the primary service refused (or the path skipped) again", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			n, err := a.Admin().RetryHandback(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d message(s) will be handed back again\n", n)
			return nil
		})})
	return c
}

func continuityUsersCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "users DOMAIN", Short: "Each user's emergency mailbox: mail received, unread, sent, handed back, last login", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			us, err := a.Admin().EmergencyUsage(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tRECEIVED\tUNREAD\tSENT\tHANDED BACK\tLAST LOGIN")
			for _, u := range us {
				login := "never"
				if !u.LastLogin.IsZero() {
					login = when(u.LastLogin)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", u.Address, u.Received, u.Unread, u.Sent, u.HandedBack, login)
			}
			return tw.Flush()
		})}
}

func continuityPurgeCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "purge DOMAIN", Short: "Delete the local copies that were handed back (the rest stay)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			n, err := a.Admin().PurgeContinuity(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d local copies deleted\n", n)
			return nil
		})}
}

func credentialsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "credentials", Short: "API credentials of the graph and gmail hand-back paths (stored encrypted)"}
	c.AddCommand(&cobra.Command{Use: "set TENANT graph|gmail", Short: "Store credentials read from standard input",
		Long: `Store a tenant's credentials for a hand-back path, read from standard input:
  graph: {"tenant": "<directory ID>", "client_id": "...", "client_secret": "..."}
         (an Entra ID application with Mail-Advanced.ReadWrite.All and Mail.ReadBasic.All)
  gmail: the service account's JSON key file (domain-wide delegation for
         gmail.insert and gmail.readonly)
  mailgate continuity credentials set acme gmail < service-account.json`,
		Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			raw, err := io.ReadAll(io.LimitReader(g.stdin, 1<<20))
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(raw)) == "" {
				return fmt.Errorf("give the credentials on standard input (delete them with: credentials delete)")
			}
			info, err := a.Admin().SetHandbackCredentials(ctx, op, args[1], raw)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s credentials of %s stored (client %s)\n", info.Provider, args[0], info.ID)
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "show TENANT graph|gmail", Short: "Show which credentials are stored (never the secret)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			info, err := a.Admin().HandbackCredentials(ctx, op, args[1])
			if err != nil {
				return err
			}
			if !info.Configured {
				fmt.Fprintf(g.stdout, "%s: not configured\n", info.Provider)
				return nil
			}
			fmt.Fprintf(g.stdout, "%s: client %s, stored %s\n", info.Provider, info.ID, when(info.Updated))
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "delete TENANT graph|gmail", Short: "Delete stored credentials", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			if _, err := a.Admin().SetHandbackCredentials(ctx, op, args[1], nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s credentials of %s deleted\n", args[1], args[0])
			return nil
		})})
	return c
}
