package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
)

// outboundCmd manages outbound protection: the tenant's rules, the test
// of a message, and held and delayed messages with their decisions. Every
// change goes through the administration layer as the operator.
func outboundCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "outbound", Short: "Outbound protection: rules, approval, delayed send (docs/outbound.md)"}
	c.AddCommand(outboundRuleCmd(g), outboundTestCmd(g), outboundHoldsCmd(g))
	for _, d := range []struct{ name, short string }{
		{outbound.Approve, "Approve a held message: it is sent"},
		{outbound.Reject, "Reject a held message: it is not sent, the sender is told"},
		{outbound.Cancel, "Cancel a held or delayed message"},
		{outbound.SendNow, "Send a delayed message now"},
	} {
		var note string
		dc := &cobra.Command{Use: d.name + " TENANT QUEUE-ID", Short: d.short, Args: cobra.ExactArgs(2),
			RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
				op, _, err := inTenant(ctx, a, args[0])
				if err != nil {
					return err
				}
				h, err := a.Admin().DecideOutboundHold(ctx, op, args[1], d.name, note)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s: %s\n", h.MessageID, h.State)
				return nil
			})}
		dc.Flags().StringVar(&note, "note", "", "comment kept with the decision (told to the sender with a rejection)")
		c.AddCommand(dc)
	}
	return c
}

// ruleFlags build a rule's definition from flags.
type ruleFlags struct {
	action, match, reason, reasonJA, tag, header, approverGroup, onTimeout, group, address, jsonFile string
	conds, excepts, bcc                                                                              []string
	delay, timeoutHours                                                                              int
	stop, disabled                                                                                   bool
}

func (f *ruleFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.action, "action", "", "block, hold, delay, bcc, zip, link, header, tag or archive")
	fl.StringArrayVar(&f.conds, "cond", nil, `a condition, e.g. "body contains 社外秘, 顧客リスト" or "outside_count ge 10" (repeatable)`)
	fl.StringArrayVar(&f.excepts, "except", nil, "an exception in the same form (repeatable)")
	fl.StringVar(&f.match, "match", "", "all (default) or any of the conditions")
	fl.StringVar(&f.reason, "reason", "", "reason told to the sender and approvers")
	fl.StringVar(&f.reasonJA, "reason-ja", "", "the reason in Japanese")
	fl.IntVar(&f.delay, "delay", 0, "delay action: minutes")
	fl.StringArrayVar(&f.bcc, "bcc", nil, "bcc action: address (repeatable)")
	fl.StringVar(&f.tag, "tag", "", "tag action: subject tag")
	fl.StringVar(&f.header, "header", "", "header action: Name: value")
	fl.StringVar(&f.approverGroup, "approver-group", "", "hold action: the group whose approvers decide")
	fl.IntVar(&f.timeoutHours, "timeout-hours", 0, "hold action: hours to wait for an approver (0: the tenant's)")
	fl.StringVar(&f.onTimeout, "on-timeout", "", "hold action: send or reject when nobody approved in time")
	fl.BoolVar(&f.stop, "stop", false, "no later rule is looked at when this one applies")
	fl.BoolVar(&f.disabled, "disabled", false, "add the rule switched off")
	fl.StringVar(&f.group, "group", "", "the rule looks only at this group's senders")
	fl.StringVar(&f.address, "address", "", "the rule looks only at this sender")
	fl.StringVar(&f.jsonFile, "json", "", "read the definition from this JSON file instead (- for stdin)")
}

func (f *ruleFlags) rule(stdin io.Reader, name string) (store.OutboundRule, error) {
	r := store.OutboundRule{Name: name, Enabled: !f.disabled, Scope: store.ScopeTenant}
	switch {
	case f.group != "" && f.address != "":
		return r, fmt.Errorf("give at most one of --group, --address")
	case f.group != "":
		r.Scope, r.Owner = store.ScopeGroup, f.group
	case f.address != "":
		r.Scope, r.Owner = store.ScopeAddress, f.address
	}
	if f.jsonFile != "" {
		var b []byte
		var err error
		if f.jsonFile == "-" {
			b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			b, err = os.ReadFile(f.jsonFile)
		}
		if err != nil {
			return r, err
		}
		r.Spec = string(b)
		return r, nil
	}
	sp := outbound.Spec{Action: f.action, Match: f.match, Reason: f.reason, ReasonJA: f.reasonJA, Tag: f.tag, Bcc: f.bcc,
		DelayMinutes: f.delay, ApproverGroup: f.approverGroup, TimeoutHours: f.timeoutHours, OnTimeout: f.onTimeout, Stop: f.stop}
	if f.header != "" {
		n, v, ok := strings.Cut(f.header, ":")
		if !ok {
			return r, fmt.Errorf("--header: Name: value")
		}
		sp.Header, sp.HeaderValue = strings.TrimSpace(n), strings.TrimSpace(v)
	}
	var err error
	if sp.Conditions, err = outbound.ParseConditionLines(strings.Join(f.conds, "\n")); err != nil {
		return r, fmt.Errorf("--cond: %w", err)
	}
	if sp.Exceptions, err = outbound.ParseConditionLines(strings.Join(f.excepts, "\n")); err != nil {
		return r, fmt.Errorf("--except: %w", err)
	}
	r.Spec = sp.Encode()
	return r, nil
}

func outboundRuleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "rule", Short: "A tenant's outbound rules, applied in order"}
	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List the rules in order", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			rs, err := a.Admin().OutboundRules(ctx, op)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPOS\tON\tSCOPE\tNAME\tDEFINITION")
			for _, r := range rs {
				scope := r.Scope
				if r.Owner != "" {
					scope += ":" + r.Owner
				}
				fmt.Fprintf(tw, "%d\t%d\t%v\t%s\t%s\t%s\n", r.ID, r.Position, r.Enabled, scope, r.Name, r.Spec)
			}
			return tw.Flush()
		})})
	var af ruleFlags
	add := &cobra.Command{Use: "add TENANT NAME", Short: "Add a rule at the end", Args: cobra.ExactArgs(2),
		Example: `  mailgate outbound rule add acme "customer list" --action hold --cond "attachment_text contains 顧客リスト" --cond "rcpt outside"
  mailgate outbound rule add acme "confidential" --action block --cond "body contains 社外秘" --reason-ja 社外秘の記載があります`,
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			r, err := af.rule(g.stdin, args[1])
			if err != nil {
				return err
			}
			out, err := a.Admin().AddOutboundRule(ctx, op, r)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "rule %d added at position %d\n", out.ID, out.Position)
			return nil
		})}
	af.add(add)
	c.AddCommand(add)
	var uf ruleFlags
	update := &cobra.Command{Use: "update TENANT ID NAME", Short: "Replace a rule (same flags as add)", Args: cobra.ExactArgs(3),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			r, err := uf.rule(g.stdin, args[2])
			if err != nil {
				return err
			}
			if r.ID, err = strconv.ParseInt(args[1], 10, 64); err != nil {
				return fmt.Errorf("rule ID %q: a number", args[1])
			}
			if _, err := a.Admin().UpdateOutboundRule(ctx, op, r); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "rule %d updated\n", r.ID)
			return nil
		})}
	uf.add(update)
	c.AddCommand(update)
	simple := func(use, short string, fn func(ctx context.Context, a *app.App, args []string, id int64) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.MinimumNArgs(2),
			RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
				id, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil {
					return fmt.Errorf("rule ID %q: a number", args[1])
				}
				return fn(ctx, a, args, id)
			})}
	}
	c.AddCommand(simple("delete TENANT ID", "Delete a rule", func(ctx context.Context, a *app.App, args []string, id int64) error {
		op, _, err := inTenant(ctx, a, args[0])
		if err != nil {
			return err
		}
		return a.Admin().DeleteOutboundRule(ctx, op, id)
	}))
	for _, on := range []bool{true, false} {
		use := map[bool]string{true: "enable", false: "disable"}[on]
		c.AddCommand(simple(use+" TENANT ID", "Switch a rule "+map[bool]string{true: "on", false: "off"}[on],
			func(ctx context.Context, a *app.App, args []string, id int64) error {
				op, _, err := inTenant(ctx, a, args[0])
				if err != nil {
					return err
				}
				return a.Admin().SetOutboundRuleEnabled(ctx, op, id, on)
			}))
	}
	c.AddCommand(simple("move TENANT ID up|down", "Move a rule one place", func(ctx context.Context, a *app.App, args []string, id int64) error {
		if len(args) != 3 || (args[2] != "up" && args[2] != "down") {
			return fmt.Errorf("move TENANT ID up|down")
		}
		op, _, err := inTenant(ctx, a, args[0])
		if err != nil {
			return err
		}
		delta := 1
		if args[2] == "up" {
			delta = -1
		}
		return a.Admin().MoveOutboundRule(ctx, op, id, delta)
	}))
	return c
}

func outboundTestCmd(g *globals) *cobra.Command {
	var from string
	var rcpts []string
	c := &cobra.Command{Use: "test TENANT FILE", Short: "Run a message (FILE, - for stdin) through the tenant's rules; nothing is sent",
		Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			var raw []byte
			if args[1] == "-" {
				raw, err = io.ReadAll(io.LimitReader(g.stdin, outbound.MaxTestBytes+1))
			} else {
				raw, err = os.ReadFile(args[1])
			}
			if err != nil {
				return err
			}
			res, err := a.Admin().TestOutboundRules(ctx, op, raw, from, rcpts, nil)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		})}
	c.Flags().StringVar(&from, "from", "", "envelope sender (default: the From address)")
	c.Flags().StringArrayVar(&rcpts, "rcpt", nil, "envelope recipient (repeatable; default: To, Cc and Bcc)")
	return c
}

func outboundHoldsCmd(g *globals) *cobra.Command {
	var f store.HoldFilter
	c := &cobra.Command{Use: "holds TENANT", Short: "List held and delayed messages, newest first", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			hs, err := a.Admin().OutboundHolds(ctx, op, f)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE-ID\tKIND\tSTATE\tDUE\tSENDER\tRCPTS\tSUBJECT\tREASON")
			for _, h := range hs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.MessageID, h.Kind, h.State, h.ReleaseAt.Local().Format("2006-01-02 15:04"),
					h.Sender, h.Rcpts, h.Subject, h.Reason)
			}
			return tw.Flush()
		})}
	c.Flags().StringVar(&f.State, "state", "", "pending, sent, rejected or cancelled")
	c.Flags().StringVar(&f.Kind, "kind", "", "approval or delay")
	c.Flags().StringVar(&f.Sender, "sender", "", "one sender's")
	return c
}
