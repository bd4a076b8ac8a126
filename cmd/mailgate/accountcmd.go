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
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web"
)

// readPassword takes the first line of standard input (so scripts can pipe
// it in and it never appears in the process list).
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if len([]rune(pw)) < 10 {
		return "", fmt.Errorf("password on standard input: at least 10 characters")
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
			acct := store.Account{Login: strings.ToLower(args[0]), Role: store.Role(role), Created: a.Clock.Now()}
			switch acct.Role {
			case store.RoleOperator:
				if tenant != "" {
					return fmt.Errorf("operators belong to no tenant")
				}
			case store.RoleAdmin, store.RoleUser:
				t, err := tenantOf(ctx, a, tenant)
				if err != nil {
					return err
				}
				acct.TenantID = t.ID
				if acct.Role == store.RoleUser {
					tid, key, err := addressOwner(ctx, a, acct.Login)
					if err != nil {
						return err
					}
					if tid != t.ID {
						return fmt.Errorf("%s is not an address of tenant %s", acct.Login, t.Name)
					}
					acct.Login = key
				}
			default:
				return fmt.Errorf("--role: operator, admin or user")
			}
			pw, err := readPassword(g.stdin)
			if err != nil {
				return err
			}
			if acct.Hash, err = passwd.Hash(pw); err != nil {
				return err
			}
			acct, err = a.Store.CreateAccount(ctx, acct)
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
			as, err := a.Store.Accounts(ctx, tid)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLOGIN\tROLE\tTOTP\tDISABLED")
			for _, x := range as {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%v\n", x.ID, x.Login, x.Role, x.TOTPSecret != "", x.Disabled)
			}
			return tw.Flush()
		})}
	list.Flags().StringVar(&ltenant, "tenant", "", "tenant")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{Use: "password LOGIN", Short: "Set a login's password (standard input); ends its sessions", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			acct, err := a.Store.AccountByLogin(ctx, strings.ToLower(args[0]))
			if err != nil {
				return err
			}
			pw, err := readPassword(g.stdin)
			if err != nil {
				return err
			}
			if acct.Hash, err = passwd.Hash(pw); err != nil {
				return err
			}
			acct.PasswordChanged = a.Clock.Now()
			if err := a.Store.UpdateAccount(ctx, acct); err != nil {
				return err
			}
			_, err = a.Store.DeleteSessions(ctx, acct.ID)
			return err
		})})
	c.AddCommand(&cobra.Command{Use: "totp-reset LOGIN", Short: "Remove a login's TOTP (it enrols again at next login)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			acct, err := a.Store.AccountByLogin(ctx, strings.ToLower(args[0]))
			if err != nil {
				return err
			}
			acct.TOTPSecret = ""
			acct.PasswordChanged = a.Clock.Now()
			if err := a.Store.UpdateAccount(ctx, acct); err != nil {
				return err
			}
			_, err = a.Store.DeleteSessions(ctx, acct.ID)
			return err
		})})
	c.AddCommand(&cobra.Command{Use: "delete LOGIN", Short: "Delete a console login", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			acct, err := a.Store.AccountByLogin(ctx, strings.ToLower(args[0]))
			if err != nil {
				return err
			}
			if _, err := a.Store.DeleteSessions(ctx, acct.ID); err != nil {
				return err
			}
			return a.Store.DeleteAccount(ctx, acct.TenantID, acct.ID)
		})})
	return c
}

func tokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "REST API tokens"}
	var tenant, scope, name string
	create := &cobra.Command{Use: "create", Short: "Create an API token (printed once)", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			var tid int64
			if tenant != "" {
				t, err := tenantOf(ctx, a, tenant)
				if err != nil {
					return err
				}
				tid = t.ID
			}
			if scope != "read" && scope != "write" {
				return fmt.Errorf("--scope: read or write")
			}
			secret, hash := web.NewAPISecret()
			t, err := a.Store.CreateAPIToken(ctx, store.APIToken{TenantID: tid, Name: name, Hash: hash, Scope: scope,
				CreatedBy: "cli", Created: a.Clock.Now()})
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
			var tid int64
			if rtenant != "" {
				t, err := tenantOf(ctx, a, rtenant)
				if err != nil {
					return err
				}
				tid = t.ID
			}
			return a.Store.RevokeAPIToken(ctx, tid, id)
		})}
	revoke.Flags().StringVar(&rtenant, "tenant", "", "tenant of the token")
	c.AddCommand(revoke)
	return c
}
