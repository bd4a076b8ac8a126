package dirsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// maxPages bounds the pages of one listing (a source that pages forever
// is an error, not a hang).
const maxPages = 5000

// Microsoft Graph: GET /v1.0/users and /v1.0/groups with their
// proxyAddresses ("SMTP:" the primary address, "smtp:" the others), paged
// by @odata.nextLink, with the application's client credentials token
// (application permissions User.Read.All and GroupMember.Read.All or
// Group.Read.All). Users without a mailbox have no mail address and are
// left out; shared mailboxes are users and are kept.

type graphPage struct {
	Value []struct {
		DisplayName    string   `json:"displayName"`
		Mail           string   `json:"mail"`
		ProxyAddresses []string `json:"proxyAddresses"`
	} `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

func (s *Syncer) fetchGraph(ctx context.Context, tenantID int64, c *collector) error {
	ts, err := s.API.TokenSource(ctx, tenantID, continuity.PathGraph, "", nil)
	if err != nil {
		return err
	}
	base := s.API.URLs().GraphURL
	for _, l := range []struct{ path, kind string }{{"users", store.DirUser}, {"groups", store.DirGroup}} {
		q := url.Values{"$select": {"id,displayName,mail,proxyAddresses"}, "$top": {"999"}}
		next := base + "/v1.0/" + l.path + "?" + q.Encode()
		for page := 0; next != ""; page++ {
			if page >= maxPages {
				return fmt.Errorf("graph %s: more than %d pages", l.path, maxPages)
			}
			b, err := s.API.Get(ctx, ts, next)
			if err != nil {
				return fmt.Errorf("graph %s: %w", l.path, err)
			}
			var p graphPage
			if err := json.Unmarshal(b, &p); err != nil {
				return fmt.Errorf("graph %s: not the expected JSON: %v", l.path, err)
			}
			for _, o := range p.Value {
				primary := o.Mail
				for _, pa := range o.ProxyAddresses {
					if a, ok := strings.CutPrefix(pa, "SMTP:"); ok {
						primary = a
					}
				}
				c.add(primary, l.kind, "", o.DisplayName)
				for _, pa := range o.ProxyAddresses {
					if len(pa) > 5 && strings.EqualFold(pa[:5], "smtp:") {
						c.add(pa[5:], store.DirAlias, primary, o.DisplayName)
					}
				}
			}
			if c.err != nil {
				return c.err
			}
			if next = p.NextLink; next != "" && !sameOrigin(next, base) {
				// The token goes only to the configured Graph host.
				return fmt.Errorf("graph %s: next page on another host (%s)", l.path, oneLine(next, 100))
			}
		}
	}
	return nil
}

// sameOrigin reports whether u is on base's scheme and host.
func sameOrigin(u, base string) bool {
	a, err1 := url.Parse(u)
	b, err2 := url.Parse(base)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && strings.EqualFold(a.Host, b.Host)
}

// Google Directory API: GET /admin/directory/v1/users?domain=… (primaryEmail,
// aliases, nonEditableAliases) and /admin/directory/v1/groups?domain=…
// (email, aliases, nonEditableAliases), paged by nextPageToken, with the
// service account's token for a Workspace administrator (domain-wide
// delegation of the read-only directory scopes below).

// GoogleScopes are the scopes the service account must be granted for
// the directory synchronisation.
var GoogleScopes = []string{
	"https://www.googleapis.com/auth/admin.directory.user.readonly",
	"https://www.googleapis.com/auth/admin.directory.group.readonly",
}

type googleName struct {
	FullName string `json:"fullName"`
}

type googlePage struct {
	Users []struct {
		PrimaryEmail       string     `json:"primaryEmail"`
		Aliases            []string   `json:"aliases"`
		NonEditableAliases []string   `json:"nonEditableAliases"`
		Name               googleName `json:"name"`
	} `json:"users"`
	Groups []struct {
		Email              string   `json:"email"`
		Name               string   `json:"name"`
		Aliases            []string `json:"aliases"`
		NonEditableAliases []string `json:"nonEditableAliases"`
	} `json:"groups"`
	NextPageToken string `json:"nextPageToken"`
}

func (s *Syncer) fetchGoogle(ctx context.Context, tenantID int64, admin string, c *collector) error {
	if !strings.Contains(admin, "@") {
		return errors.New("google: the administrator address the service account acts as is not set")
	}
	ts, err := s.API.TokenSource(ctx, tenantID, continuity.PathGmail, admin, GoogleScopes)
	if err != nil {
		return err
	}
	base := s.API.URLs().GoogleAdminURL + "/admin/directory/v1/"
	for _, l := range []struct{ path, max string }{{"users", "500"}, {"groups", "200"}} {
		token := ""
		for page := 0; page == 0 || token != ""; page++ {
			if page >= maxPages {
				return fmt.Errorf("google %s: more than %d pages", l.path, maxPages)
			}
			q := url.Values{"domain": {c.domain}, "maxResults": {l.max}}
			if token != "" {
				q.Set("pageToken", token)
			}
			b, err := s.API.Get(ctx, ts, base+l.path+"?"+q.Encode())
			if err != nil {
				return fmt.Errorf("google %s: %w", l.path, err)
			}
			var p googlePage
			if err := json.Unmarshal(b, &p); err != nil {
				return fmt.Errorf("google %s: not the expected JSON: %v", l.path, err)
			}
			for _, u := range p.Users {
				c.add(u.PrimaryEmail, store.DirUser, "", u.Name.FullName)
				for _, a := range append(u.Aliases, u.NonEditableAliases...) {
					c.add(a, store.DirAlias, u.PrimaryEmail, u.Name.FullName)
				}
			}
			for _, g := range p.Groups {
				c.add(g.Email, store.DirGroup, "", g.Name)
				for _, a := range append(g.Aliases, g.NonEditableAliases...) {
					c.add(a, store.DirAlias, g.Email, g.Name)
				}
			}
			if c.err != nil {
				return c.err
			}
			token = p.NextPageToken
		}
	}
	return nil
}
