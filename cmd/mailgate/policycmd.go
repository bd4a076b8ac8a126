package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
)

// scopeFlags select where a policy value or list entry applies.
type scopeFlags struct {
	tenant, domain, group, address string
}

func (f *scopeFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.tenant, "tenant", "", "tenant (required with --group; implied by --domain/--address)")
	c.Flags().StringVar(&f.domain, "domain", "", "a domain of the tenant")
	c.Flags().StringVar(&f.group, "group", "", "a group of the tenant")
	c.Flags().StringVar(&f.address, "address", "", "one address")
}

// resolve returns who acts (the operator, in the tenant when one is named)
// with the scope and its owner; the administration layer finds the tenant
// of a domain or an address and checks the owner belongs to it.
func (f *scopeFlags) resolve(ctx context.Context, a *app.App) (admin.Actor, string, string, error) {
	n := 0
	for _, v := range []string{f.domain, f.group, f.address} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return admin.Actor{}, "", "", fmt.Errorf("give at most one of --domain, --group, --address")
	}
	op := operator()
	if f.tenant != "" {
		var err error
		if op, _, err = inTenant(ctx, a, f.tenant); err != nil {
			return op, "", "", err
		}
	}
	switch {
	case f.address != "":
		return op, store.ScopeAddress, f.address, nil
	case f.domain != "":
		return op, store.ScopeDomain, f.domain, nil
	case f.tenant == "":
		return op, "", "", fmt.Errorf("say whose policy: --tenant T (with optional --group G), --domain D or --address A")
	case f.group != "":
		return op, store.ScopeGroup, f.group, nil
	}
	return op, store.ScopeTenant, "", nil
}

func policyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Inbound policy values per tenant, domain, group or address (most specific wins)",
		Long: `Policy values are key=value pairs read by the checks, e.g.
  dmarc.enforce=false  av.encrypted_action=quarantine  lists.priority=domain
  bec.threshold=40  quarantine.retention_days=14
See docs/inbound.md for every key and its default.`}
	var sf scopeFlags
	set := &cobra.Command{Use: "set KEY=VALUE...", Short: "Set policy values", Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, scope, owner, err := sf.resolve(ctx, a)
			if err != nil {
				return err
			}
			svc := a.Admin()
			for _, kv := range args {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: want KEY=VALUE", kv)
				}
				if err := svc.SetSetting(ctx, op, scope, owner, k, v); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s %s: %s = %s\n", scope, owner, k, v)
			}
			return nil
		})}
	sf.add(set)
	var uf scopeFlags
	unset := &cobra.Command{Use: "unset KEY...", Short: "Remove policy values (the less specific value applies again)", Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, scope, owner, err := uf.resolve(ctx, a)
			if err != nil {
				return err
			}
			svc := a.Admin()
			for _, k := range args {
				if err := svc.UnsetSetting(ctx, op, scope, owner, k); err != nil {
					return err
				}
			}
			return nil
		})}
	uf.add(unset)
	show := &cobra.Command{Use: "show TENANT", Short: "Show every policy value of a tenant", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			ss, err := a.Store.Settings(ctx, t.ID)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCOPE\tOWNER\tKEY\tVALUE")
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Scope, s.Owner, s.Key, s.Value)
			}
			return tw.Flush()
		})}
	c.AddCommand(set, unset, show, policyDryRunCmd(g))
	return c
}

func policyDryRunCmd(g *globals) *cobra.Command {
	var sf scopeFlags
	var days, limit int
	var asJSON bool
	c := &cobra.Command{Use: "dry-run KEY=VALUE...", Short: "Show what a policy change would have done to the archived inbound mail",
		Long: `Judge the inbound mail archived in the last --days again with today's checks, once under
today's policy and once with the given values set at the scope (KEY= removes a value), and
list the recipients whose outcome would change. Nothing is written and no mail is touched.
Needs the tenant's archive. Example:
  mailgate policy dry-run --domain example.com --days 30 spam.quarantine_at=80`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, scope, owner, err := sf.resolve(ctx, a)
			if err != nil {
				return err
			}
			ch := admin.SettingsChange{}
			for _, kv := range args {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: want KEY=VALUE (or KEY= to remove)", kv)
				}
				ch[k] = v
			}
			res, err := a.Admin().PolicyDryRun(ctx, op, scope, owner, ch, days, limit)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			more := ""
			if res.Truncated {
				more = " (limit reached: older mail not judged)"
			}
			fmt.Fprintf(g.stdout, "%d messages (%d recipients) since %s judged, %d skipped%s: %d outcomes would change\n",
				res.Messages, res.Recipients, res.Since.Format(time.DateOnly), res.Skipped, more, len(res.Changes))
			var ts []string
			for t := range res.Transitions {
				ts = append(ts, t)
			}
			sort.Strings(ts)
			for _, t := range ts {
				fmt.Fprintf(g.stdout, "  %s: %d\n", t, res.Transitions[t])
			}
			if len(res.Changes) == 0 {
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECEIVED\tRECIPIENT\tFROM\tSUBJECT\tNOW\tAFTER\tDECIDED BY\tARCHIVE ID")
			for _, c := range res.Changes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Received.Format("2006-01-02 15:04"), c.Rcpt, oneLine(c.From, 40),
					oneLine(c.Subject, 50), c.Before, c.After, c.Reason, c.ArchiveID)
			}
			return tw.Flush()
		})}
	sf.add(c)
	c.Flags().IntVar(&days, "days", admin.DryRunDefaultDays, "days of archived mail to judge again")
	c.Flags().IntVar(&limit, "limit", admin.DryRunDefaultLimit, "at most this many messages, newest first")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func groupCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Groups of a tenant's addresses (policies and lists can target a group)"}
	c.AddCommand(&cobra.Command{Use: "add TENANT GROUP", Short: "Create a group", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			return a.Admin().AddGroup(ctx, op, args[1])
		})})
	c.AddCommand(&cobra.Command{Use: "delete TENANT GROUP", Short: "Delete a group", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			return a.Admin().DeleteGroup(ctx, op, args[1])
		})})
	for _, op := range []string{"join", "leave"} {
		c.AddCommand(&cobra.Command{Use: op + " TENANT GROUP ADDRESS...", Short: map[string]string{"join": "Add addresses to a group", "leave": "Remove addresses from a group"}[op], Args: cobra.MinimumNArgs(3),
			RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
				actor, _, err := inTenant(ctx, a, args[0])
				if err != nil {
					return err
				}
				svc := a.Admin()
				for _, s := range args[2:] {
					if err := svc.GroupMember(ctx, actor, args[1], s, op == "join"); err != nil {
						return err
					}
				}
				return nil
			})})
	}
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List groups and members", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			gs, err := a.Store.Groups(ctx, t.ID)
			if err != nil {
				return err
			}
			for _, gr := range gs {
				fmt.Fprintf(g.stdout, "%s: %s\n", gr.Name, strings.Join(gr.Members, ", "))
			}
			return nil
		})})
	return c
}

func listCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "list", Short: "Allow and deny lists per domain, group or address"}
	var sf scopeFlags
	var field, mode, action, comment string
	add := &cobra.Command{Use: "add allow|deny VALUE",
		Short: "Add a list entry",
		Long: `Add an allow or deny entry. --field: env_from, from_addr, from_domain or subject;
--mode: exact, contains, prefix, suffix or regex. Deny entries drop the message silently
unless --action says reject or quarantine. Examples:
  mailgate list add deny --domain example.com --field subject --mode contains 未承諾広告
  mailgate list add allow --address alice@example.com --field from_domain partner.example`,
		Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, scope, owner, err := sf.resolve(ctx, a)
			if err != nil {
				return err
			}
			e, err := a.Admin().AddListEntry(ctx, op, store.ListEntry{Scope: scope, Owner: owner, Kind: args[0], Field: field, Mode: mode,
				Value: args[1], Action: action, Comment: comment})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "entry %d: %s %s %s %s %q\n", e.ID, e.Kind, e.Field, e.Mode, e.Scope+":"+e.Owner, e.Value)
			return nil
		})}
	sf.add(add)
	add.Flags().StringVar(&field, "field", "from_addr", "what to match: env_from, from_addr, from_domain, subject")
	add.Flags().StringVar(&mode, "mode", "exact", "how: exact, contains, prefix, suffix, regex")
	add.Flags().StringVar(&action, "action", "", "deny only: discard (default), reject, quarantine")
	add.Flags().StringVar(&comment, "comment", "", "free text")
	c.AddCommand(add)
	c.AddCommand(&cobra.Command{Use: "import TENANT", Short: "Add list entries from CSV on standard input",
		Long: `Each CSV line: scope,owner,kind,field,mode,value[,action[,comment]]
where scope is domain, group or address and owner the domain, group name or address. Example:
  address,alice@example.com,deny,subject,contains,未承諾広告,,spam words
  domain,example.com,allow,from_domain,exact,partner.example
The whole file is checked before anything is added.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			r := csv.NewReader(g.stdin)
			r.FieldsPerRecord = -1
			r.Comment = '#'
			recs, err := r.ReadAll()
			if err != nil {
				return fmt.Errorf("CSV: %w", err)
			}
			var es []store.ListEntry
			for i, rec := range recs {
				if len(rec) < 6 {
					return fmt.Errorf("line %d: want scope,owner,kind,field,mode,value[,action[,comment]]", i+1)
				}
				for len(rec) < 8 {
					rec = append(rec, "")
				}
				es = append(es, store.ListEntry{Scope: rec[0], Owner: rec[1], Kind: rec[2], Field: rec[3], Mode: rec[4], Value: rec[5], Action: rec[6], Comment: rec[7]})
			}
			n, err := a.Admin().ImportListEntries(ctx, op, es)
			if err != nil {
				return fmt.Errorf("line %d: %w", n+1, err)
			}
			fmt.Fprintf(g.stdout, "%d entries added\n", n)
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "delete TENANT ID", Short: "Delete a list entry", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			id, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("entry ID %q: %w", args[1], err)
			}
			return a.Admin().DeleteListEntry(ctx, op, id)
		})})
	c.AddCommand(&cobra.Command{Use: "show TENANT", Short: "Show a tenant's list entries", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			es, err := a.Store.ListEntries(ctx, t.ID)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLIST\tKIND\tFIELD\tMODE\tVALUE\tACTION\tCOMMENT")
			for _, e := range es {
				fmt.Fprintf(tw, "%d\t%s:%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Scope, e.Owner, e.Kind, e.Field, e.Mode, e.Value, e.Action, e.Comment)
			}
			return tw.Flush()
		})})
	return c
}

func trustedCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "trusted", Short: "Upstream security services in front of mailgate (their IPs are trusted hops)"}
	c.AddCommand(&cobra.Command{Use: "add TENANT CIDR NAME", Short: "Trust a network as an upstream filter for a tenant", Args: cobra.ExactArgs(3),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			_, err = a.Admin().AddTrustedNet(ctx, op, args[1], args[2])
			return err
		})})
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List trusted upstream networks", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			ns, err := a.Store.TrustedNets(ctx, t.ID)
			if err != nil {
				return err
			}
			for _, n := range ns {
				fmt.Fprintf(g.stdout, "%s\t%s\n", n.Prefix, n.Name)
			}
			return nil
		})})
	return c
}

func quarantineCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "quarantine", Short: "Per-recipient quarantine: list, show, release, delete"}
	var tenant, rcpt, state string
	var limit int
	list := &cobra.Command{Use: "list", Short: "List quarantined messages", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			tid, err := optTenant(ctx, a, tenant)
			if err != nil {
				return err
			}
			if rcpt != "" {
				rcpt = strings.ToLower(rcpt)
			}
			items, err := a.Store.QuarantineItems(ctx, tid, rcpt, store.QuarantineState(state), limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRECEIVED\tRECIPIENT\tFROM\tSUBJECT\tSTATE\tREASON")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t<%s>\t%s\t%s\t%s\n", it.ID, it.Created.Local().Format("01-02 15:04"), it.Rcpt, it.MailFrom,
					oneLine(it.Subject, 40), it.State, oneLine(it.Reasons, 60))
			}
			return tw.Flush()
		})}
	list.Flags().StringVar(&tenant, "tenant", "", "only this tenant")
	list.Flags().StringVar(&rcpt, "rcpt", "", "only this recipient")
	list.Flags().StringVar(&state, "state", "held", "held, released, deleted or empty for all")
	list.Flags().IntVar(&limit, "limit", 100, "most entries shown")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{Use: "show ID", Short: "Print a quarantined message", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			r, it, err := a.Quarantine.Open(ctx, 0, args[0])
			if err != nil {
				return err
			}
			defer r.Close()
			fmt.Fprintf(g.stderr, "quarantine %s for %s, %s, expires %s: %s\n", it.ID, it.Rcpt, it.State, it.Expires.Local().Format(time.RFC3339), it.Reasons)
			_, err = io.Copy(g.stdout, r)
			return err
		})})
	for _, act := range []struct{ use, action, short string }{
		{"release ID...", "release", "Deliver quarantined messages to their recipients"},
		{"delete ID...", "delete", "Delete quarantined messages"},
		{"allow ID...", "allow", "Allow the sender of a quarantined message for its recipient (the copy stays held)"},
		{"block ID...", "block", "Block the sender of a quarantined message for its recipient's domain and delete the copy"},
	} {
		c.AddCommand(&cobra.Command{Use: act.use, Short: act.short, Args: cobra.MinimumNArgs(1),
			RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
				svc := a.Admin()
				for _, id := range args {
					res, err := svc.QuarantineAction(ctx, operator(), id, act.action, "")
					if err != nil {
						return fmt.Errorf("%s: %w", id, err)
					}
					switch {
					case res.QueueID != "":
						fmt.Fprintf(g.stdout, "%s released, queued as %s\n", id, res.QueueID)
					case res.Entry != nil:
						fmt.Fprintf(g.stdout, "%s: %s %s:%s %s=%s\n", id, res.Entry.Kind, res.Entry.Scope, res.Entry.Owner, res.Entry.Field, res.Entry.Value)
					default:
						fmt.Fprintf(g.stdout, "%s %s\n", id, res.Outcome)
					}
				}
				return nil
			})})
	}
	c.AddCommand(&cobra.Command{Use: "jobs", Short: "Run the quarantine's scheduled jobs now: retention and any digest that is due", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			l, err := a.NewLifecycle(ctx, app.LifecycleOptions{BaseURL: a.ConsoleURL(), Zone: a.Zone()})
			if err != nil {
				return err
			}
			if err := l.Tick(ctx); err != nil {
				return err
			}
			return a.Admin().Audit(ctx, operator(), 0, "quarantine.jobs", "", "", "run")
		})})
	c.AddCommand(&cobra.Command{Use: "purge", Short: "Delete messages past their retention now (a running server does this every 5 minutes)", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			n, err := a.Quarantine.Purge(ctx)
			fmt.Fprintf(g.stdout, "%d deleted\n", n)
			if err != nil {
				return err
			}
			return a.Admin().Audit(ctx, operator(), 0, "quarantine.purge", "", "", fmt.Sprintf("%d deleted", n))
		})})
	return c
}
