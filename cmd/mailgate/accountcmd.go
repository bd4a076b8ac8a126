package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
)

// readPassword takes the first line of standard input (so scripts can pipe
// it in and it never appears in the process list); the administration
// layer judges it.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("give the password on the first line of standard input")
	}
	return pw, nil
}

func accountCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "account", Short: "Console logins: system operators, tenant administrators and users"}
	var tenant, role string
	add := &cobra.Command{Use: "add LOGIN", Short: "Create a console login (password on standard input)",
		Long: `Create a console login. The password is read from the first line of standard input.
  echo 'long secret pw' | mailgate account add admin --operator
  echo 'long secret pw' | mailgate account add it@example.com --tenant acme --role admin
  echo 'long secret pw' | mailgate account add alice@example.com --tenant acme --role user
Operators and administrators enrol a TOTP second factor at their first login.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op := operator()
			switch store.Role(role) {
			case store.RoleOperator:
				if tenant != "" {
					return fmt.Errorf("operators belong to no tenant")
				}
			case store.RoleAdmin, store.RoleUser:
				var err error
				if op, _, err = inTenant(ctx, a, tenant); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--role: operator, admin or user")
			}
			pw, err := readPassword(g.stdin)
			if err != nil {
				return err
			}
			acct, err := a.Admin().CreateAccount(ctx, op, args[0], store.Role(role), pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "account %s (%s) created, id %d\n", acct.Login, acct.Role, acct.ID)
			return nil
		})}
	add.Flags().StringVar(&tenant, "tenant", "", "tenant of an admin or user")
	add.Flags().StringVar(&role, "role", "admin", "operator, admin or user")
	add.Flags().Bool("operator", false, "shorthand for --role operator")
	add.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if op, _ := cmd.Flags().GetBool("operator"); op {
			role = string(store.RoleOperator)
		}
		return nil
	}
	c.AddCommand(add)
	var ltenant string
	list := &cobra.Command{Use: "list", Short: "List console logins (operators, or a tenant's with --tenant)", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			var tid int64
			if ltenant != "" {
				t, err := tenantOf(ctx, a, ltenant)
				if err != nil {
					return err
				}
				tid = t.ID
			}
			op := operator()
			op.TenantID = tid
			as, err := a.Admin().Accounts(ctx, op)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLOGIN\tROLE\tTOTP\tAPP-PASSWORD\tDISABLED")
			for _, x := range as {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%v\t%v\n", x.ID, x.Login, x.Role, x.TOTPSecret != "", x.AppHash != "", x.Disabled)
			}
			return tw.Flush()
		})}
	list.Flags().StringVar(&ltenant, "tenant", "", "tenant")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{Use: "password LOGIN", Short: "Set a login's password (standard input); ends its sessions", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			svc := a.Admin()
			acct, err := svc.AccountByLogin(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			pw, err := readPassword(g.stdin)
			if err != nil {
				return err
			}
			return svc.SetPassword(ctx, operator(), acct.ID, pw)
		})})
	c.AddCommand(&cobra.Command{Use: "totp-reset LOGIN", Short: "Remove a login's TOTP (it enrols again at next login)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			svc := a.Admin()
			acct, err := svc.AccountByLogin(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			return svc.ResetTOTP(ctx, operator(), acct.ID)
		})})
	var removeApp bool
	appPw := &cobra.Command{Use: "app-password LOGIN", Short: "Make a login's mail app password for IMAP and submission (printed once), or --remove it",
		Long: `Make a new mail app password for a user's or tenant administrator's login and print it
once; it replaces the login's previous one. Mail apps (IMAP and submission) cannot ask for
a second factor, so a login with TOTP (every administrator while http.require_totp is on)
signs in to them only with this password. A new console password removes it.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			svc := a.Admin()
			acct, err := svc.AccountByLogin(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			if removeApp {
				if err := svc.RemoveAppPassword(ctx, operator(), acct.ID); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "mail app password of %s removed\n", acct.Login)
				return nil
			}
			pw, err := svc.NewAppPassword(ctx, operator(), acct.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "mail app password of %s (shown once): %s\n", acct.Login, pw)
			return nil
		})}
	appPw.Flags().BoolVar(&removeApp, "remove", false, "remove the mail app password instead")
	c.AddCommand(appPw)
	c.AddCommand(&cobra.Command{Use: "delete LOGIN", Short: "Delete a console login", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			svc := a.Admin()
			acct, err := svc.AccountByLogin(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			return svc.DeleteAccount(ctx, operator(), acct.ID)
		})})
	return c
}

func tokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "REST API tokens"}
	var tenant, scope, name string
	create := &cobra.Command{Use: "create", Short: "Create an API token (printed once)", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			op := operator()
			if tenant != "" {
				var err error
				if op, _, err = inTenant(ctx, a, tenant); err != nil {
					return err
				}
			}
			t, secret, err := a.Admin().CreateToken(ctx, op, name, scope)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "token %d (%s, %s): %s\n", t.ID, t.Name, t.Scope, secret)
			return nil
		})}
	create.Flags().StringVar(&tenant, "tenant", "", "tenant (empty: an operator token for every tenant)")
	create.Flags().StringVar(&scope, "scope", "read", "read or write")
	create.Flags().StringVar(&name, "name", "cli", "a name to recognise it by")
	c.AddCommand(create)
	var rtenant string
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke an API token", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("token ID: %w", err)
			}
			op := operator()
			if rtenant != "" {
				if op, _, err = inTenant(ctx, a, rtenant); err != nil {
					return err
				}
			}
			return a.Admin().RevokeToken(ctx, op, id)
		})}
	revoke.Flags().StringVar(&rtenant, "tenant", "", "tenant of the token")
	c.AddCommand(revoke)
	return c
}
