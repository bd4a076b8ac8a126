package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
)

func queueCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "queue", Short: "Inspect and manage the delivery queue"}
	var tenant string
	var held bool
	list := &cobra.Command{Use: "list", Short: "List messages waiting for delivery", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			tid, err := optTenant(ctx, a, tenant)
			if err != nil {
				return err
			}
			f := store.QueueFilter{TenantID: tid, Limit: 10000}
			if held {
				f.State = store.Held
			}
			es, err := a.Store.ListQueue(ctx, f)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAGE\tSIZE\tFROM\tRECIPIENT\tSTATE\tATTEMPTS\tNEXT\tLAST REPLY")
			now := a.Clock.Now()
			for _, e := range es {
				for _, r := range e.Recipients {
					next := "-"
					if r.State == store.Queued {
						next = r.NextAttempt.Local().Format("01-02 15:04")
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t<%s>\t%s\t%s\t%d\t%s\t%s\n", e.Message.ID, now.Sub(e.Message.ReceivedAt).Round(time.Second),
						e.Message.Size, e.Message.MailFrom, r.Addr, r.State, r.Attempts, next, oneLine(r.LastReply, 60))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d messages\n", len(es))
			return nil
		})}
	list.Flags().StringVar(&tenant, "tenant", "", "only this tenant")
	list.Flags().BoolVar(&held, "held", false, "only held messages")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{Use: "show ID", Short: "Show a message's envelope, recipients and headers", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			m, rs, err := a.Store.Message(ctx, 0, args[0])
			if err != nil {
				return err
			}
			printMessage(g, m, rs)
			return nil
		})})
	for _, ac := range []struct{ use, action, short, done string }{
		{"hold ID...", "hold", "Stop delivery attempts until released", "held"},
		{"release ID...", "release", "Release held messages for delivery now", "released"},
		{"retry ID...", "retry", "Attempt delivery now", "due now"},
		{"delete ID...", "delete", "Remove from the queue without notifying the sender", "deleted"},
		{"bounce ID...", "bounce", "Give up now and send the sender a failure DSN", "bounced"},
	} {
		c.AddCommand(&cobra.Command{Use: ac.use, Short: ac.short, Args: cobra.MinimumNArgs(1),
			RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
				svc := a.Admin()
				for _, id := range args {
					n, err := svc.QueueAction(ctx, operator(), id, ac.action)
					if err != nil {
						return fmt.Errorf("%s: %w", id, err)
					}
					if n == 0 {
						fmt.Fprintf(g.stdout, "%s: no recipient in a state that allows this\n", id)
						continue
					}
					fmt.Fprintf(g.stdout, "%s: %d recipient(s) %s\n", id, n, ac.done)
				}
				return nil
			})})
	}
	flush := &cobra.Command{Use: "flush", Short: "Attempt delivery of every queued message now (e.g. after the server is back)", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			tid, err := optTenant(ctx, a, tenant)
			if err != nil {
				return err
			}
			n, err := a.Admin().Flush(ctx, operator().In(tid))
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d recipient(s) due now; a running mailgate starts within its poll interval\n", n)
			return nil
		})}
	flush.Flags().StringVar(&tenant, "tenant", "", "only this tenant")
	c.AddCommand(flush)
	return c
}

func optTenant(ctx context.Context, a *app.App, name string) (int64, error) {
	if name == "" {
		return 0, nil
	}
	t, err := tenantOf(ctx, a, name)
	return t.ID, err
}

// oneLine shortens mail text for a table cell: one line, at most n
// characters (never a Japanese character cut in half).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func printMessage(g *globals, m store.Message, rs []store.Recipient) {
	w := g.stdout
	fmt.Fprintf(w, "id:          %s\n", m.ID)
	fmt.Fprintf(w, "tenant:      %d\n", m.TenantID)
	fmt.Fprintf(w, "direction:   %s\n", m.Direction)
	fmt.Fprintf(w, "received:    %s from %s (helo %s, tls %v)\n", m.ReceivedAt.Local().Format(time.RFC3339), m.ClientIP, m.Helo, m.TLS)
	fmt.Fprintf(w, "from:        <%s>\n", m.MailFrom)
	fmt.Fprintf(w, "size:        %d\n", m.Size)
	fmt.Fprintf(w, "message-id:  %s\n", m.MessageID)
	fmt.Fprintf(w, "subject:     %s\n", m.Subject)
	fmt.Fprintf(w, "done:        %v\n", m.Done)
	for _, r := range rs {
		fmt.Fprintf(w, "rcpt:        %s  state=%s attempts=%d", r.Addr, r.State, r.Attempts)
		if r.State == store.Queued {
			fmt.Fprintf(w, " next=%s", r.NextAttempt.Local().Format(time.RFC3339))
		}
		if r.LastReply != "" {
			fmt.Fprintf(w, " last=%q", r.LastReply)
		}
		fmt.Fprintln(w)
	}
}

func trackCmd(g *globals) *cobra.Command {
	var tenant string
	var limit int
	c := &cobra.Command{Use: "track QUERY",
		Short: "Message tracking: find messages by queue ID, Message-ID, sender, recipient or subject and show every event",
		Args:  cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			tid, err := optTenant(ctx, a, tenant)
			if err != nil {
				return err
			}
			ms, err := a.Store.FindMessages(ctx, tid, args[0], limit)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				fmt.Fprintln(g.stdout, "no message found")
				return nil
			}
			for i, m := range ms {
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				_, rs, err := a.Store.Message(ctx, m.TenantID, m.ID)
				if err != nil {
					return err
				}
				printMessage(g, m, rs)
				evs, err := a.Store.Events(ctx, m.TenantID, m.ID)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  TIME\tEVENT\tRECIPIENT\tREMOTE\tDETAIL")
				for _, e := range evs {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05.000"), e.Kind, e.Rcpt, e.Remote, e.Detail)
				}
				tw.Flush()
			}
			return nil
		})}
	c.Flags().StringVar(&tenant, "tenant", "", "only this tenant")
	c.Flags().IntVar(&limit, "limit", 20, "most messages shown")
	return c
}
