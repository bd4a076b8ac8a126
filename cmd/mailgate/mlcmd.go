package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/store"
)

// The mailing list commands. A list is named by its address, which also
// tells the tenant (list addresses are unique across tenants). "list" is
// the allow and deny lists' command, so these are "ml".

// mailingListOf finds the list at address and the operator acting in its
// tenant.
func mailingListOf(ctx context.Context, a *app.App, address string) (admin.Actor, store.MailingList, error) {
	key, err := mlist.CheckAddress(address)
	if err != nil {
		return admin.Actor{}, store.MailingList{}, err
	}
	ls, err := a.Store.MailingListsByAddress(ctx, []string{key})
	if err != nil {
		return admin.Actor{}, store.MailingList{}, fmt.Errorf("find list %s: %w", key, err)
	}
	if len(ls) == 0 {
		return admin.Actor{}, store.MailingList{}, fmt.Errorf("%s is no mailing list (create it with: mailgate ml add %s)", key, key)
	}
	return operator().In(ls[0].TenantID), ls[0], nil
}

// mlSettingFlags are the flags that change a list's settings; only the
// ones given change.
type mlSettingFlags struct {
	name, description, posting string
	serial, replyTo            bool
}

func (f *mlSettingFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.name, "name", "", "short name in the Subject tag ([name:00042]); default: the address's local part")
	c.Flags().StringVar(&f.description, "description", "", "description shown to administrators")
	c.Flags().StringVar(&f.posting, "posting", "", "who may post: members, domain (senders in the tenant's domains) or anyone")
	c.Flags().BoolVar(&f.serial, "serial", false, "number the posts in the Subject")
	c.Flags().BoolVar(&f.replyTo, "reply-to-list", false, "set Reply-To to the list's address")
}

// settings applies the flags given on c to cur.
func (f *mlSettingFlags) settings(c *cobra.Command, cur store.MailingList) admin.ListSettings {
	set := admin.ListSettings{Name: cur.Name, Description: cur.Description, Posting: cur.Posting, SubjectSerial: cur.SubjectSerial, ReplyToList: cur.ReplyToList}
	ch := c.Flags().Changed
	if ch("name") {
		set.Name = f.name
	}
	if ch("description") {
		set.Description = f.description
	}
	if ch("posting") {
		set.Posting = f.posting
	}
	if ch("serial") {
		set.SubjectSerial = f.serial
	}
	if ch("reply-to-list") {
		set.ReplyToList = f.replyTo
	}
	return set
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func mlCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "ml", Aliases: []string{"mailing-list"}, Short: "Manage mailing lists (members, administrators, posting policy)",
		Long: `Manage mailing lists. A list is an address in a served domain whose mail goes to every
member, inside or outside the tenant's domains; a member may be another list of the tenant.
Bounces come back to the list's bounce address (local-bounces@domain) and are counted per
member. A tenant has at most ml.max_lists lists (tenant policy key; without it, half the
tenant's users, between 10 and 500).`}
	var add mlSettingFlags
	var addCmd *cobra.Command
	addCmd = &cobra.Command{Use: "add ADDRESS", Short: "Create a list in the tenant serving the address's domain", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			l, err := a.Admin().CreateMailingList(ctx, operator(), args[0], add.settings(addCmd, store.MailingList{}))
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "mailing list %s created (bounces to %s)\n", l.Address, mlist.BounceAddress(l.Address))
			return nil
		})}
	add.add(addCmd)
	c.AddCommand(addCmd)

	var set mlSettingFlags
	var setCmd *cobra.Command
	setCmd = &cobra.Command{Use: "set ADDRESS", Short: "Change a list's settings (only the flags given)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Admin().UpdateMailingList(ctx, op, l.ID, set.settings(setCmd, l)); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "mailing list %s changed\n", l.Address)
			return nil
		})}
	set.add(setCmd)
	c.AddCommand(setCmd)

	c.AddCommand(&cobra.Command{Use: "list TENANT", Short: "List a tenant's mailing lists", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, t, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			ls, err := a.Admin().MailingLists(ctx, op)
			if err != nil {
				return err
			}
			max, err := a.Admin().MaxMailingLists(ctx, op)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tNAME\tPOSTING\tSERIAL\tREPLY-TO\tADMINS")
			for _, l := range ls {
				serial := "off"
				if l.SubjectSerial {
					serial = fmt.Sprintf("[%s:%05d]", l.Name, l.Serial)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Address, l.Name, l.Posting, serial, onOff(l.ReplyToList), strings.Join(l.Admins, ","))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d of %d mailing lists for tenant %s\n", len(ls), max, t.Name)
			return nil
		})})

	c.AddCommand(&cobra.Command{Use: "delete ADDRESS", Short: "Delete a list with its members (refused while it is a member of another list)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Admin().DeleteMailingList(ctx, op, l.ID); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "mailing list %s deleted\n", l.Address)
			return nil
		})})

	c.AddCommand(&cobra.Command{Use: "admins ADDRESS [USER...]", Short: "Set a list's administrators (users of its tenant; none given: no administrators)", Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Admin().SetListAdmins(ctx, op, l.ID, args[1:]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "mailing list %s: %d administrators\n", l.Address, len(args)-1)
			return nil
		})})

	c.AddCommand(&cobra.Command{Use: "members ADDRESS", Short: "Print a list's members as CSV (address,comment,bounces,disabled)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			return a.Admin().ExportListMembers(ctx, op, l.ID, g.stdout)
		})})

	var replace bool
	imp := &cobra.Command{Use: "import ADDRESS", Short: "Add members read from standard input (CSV: address[,comment]; the output of 'ml members' reads back)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			n, err := a.Admin().ImportListMembers(ctx, op, l.ID, g.stdin, replace)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "mailing list %s: %d new members\n", l.Address, n)
			return nil
		})}
	imp.Flags().BoolVar(&replace, "replace", false, "make the file's addresses the list's only members")
	c.AddCommand(imp)
	c.AddCommand(mlMemberCmd(g))
	return c
}

func mlMemberCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "member", Short: "Add, remove or re-enable one member of a list"}
	var comment string
	add := &cobra.Command{Use: "add LIST MEMBER", Short: "Add a member (or change its comment)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			return a.Admin().AddListMember(ctx, op, l.ID, args[1], comment)
		})}
	add.Flags().StringVar(&comment, "comment", "", "who the member is (name, company)")
	c.AddCommand(add)
	c.AddCommand(&cobra.Command{Use: "remove LIST MEMBER...", Short: "Remove members", Args: cobra.MinimumNArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			return a.Admin().RemoveListMembers(ctx, op, l.ID, args[1:])
		})})
	c.AddCommand(&cobra.Command{Use: "enable LIST MEMBER", Short: "Send to a member stopped by bounces again (its bounce count starts over)", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, l, err := mailingListOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			return a.Admin().EnableListMember(ctx, op, l.ID, args[1])
		})})
	return c
}
