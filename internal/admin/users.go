package admin

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/csvsafe"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/store"
)

// MaxImport bounds the addresses of one user import.
const MaxImport = 100000

// ownAddress normalises an address of a domain served by a's tenant and
// returns its tenant and lookup key. An address of a claimed (unverified)
// domain is refused: addresses are unique across tenants, so one would
// otherwise reserve it before ownership is proven.
func (s *Service) ownAddress(ctx context.Context, a Actor, address string) (int64, string, error) {
	ad, err := addr.Parse(strings.TrimSpace(address))
	if err != nil {
		return 0, "", Invalidf("address %q: %v", address, err)
	}
	d, err := s.servedDomain(ctx, a, ad.Domain)
	if errors.Is(err, store.ErrNotFound) {
		if a.allTenants() {
			return 0, "", Invalidf("%s is not a domain mailgate serves (add it first: mailgate domain add TENANT %s)", ad.Domain, ad.Domain)
		}
		return 0, "", Invalidf("%s is not one of this tenant's verified domains", ad.Domain)
	}
	if err != nil {
		return 0, "", err
	}
	return d.TenantID, ad.Key(), nil
}

// AddUser adds a known address (with an optional display name) to the
// tenant serving its domain, which must be a's.
func (s *Service) AddUser(ctx context.Context, a Actor, address, name string) (string, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return "", err
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return "", err
	}
	if err := s.notListAddress(ctx, key); err != nil {
		return "", err
	}
	name = strings.TrimSpace(name)
	if err := displayNameOK(name); err != nil {
		return "", err
	}
	if _, err := s.Store.CreateUser(ctx, tid, key); err != nil {
		return "", err
	}
	if name != "" {
		if err := s.Store.SetDisplayName(ctx, tid, key, name); err != nil {
			return "", err
		}
	}
	return key, s.Audit(ctx, a, tid, "user.add", key, "", jsonString(map[string]string{"address": key, "name": name}))
}

// notListAddress refuses a mailing list's address, or its bounce
// address, as a user's: the list would take the user's mail.
func (s *Service) notListAddress(ctx context.Context, key string) error {
	list, ok, err := mlist.ReservedAddress(ctx, s.Store, key)
	if err != nil {
		return err
	}
	if ok {
		return Invalidf("%s belongs to the mailing list %s", key, list)
	}
	return nil
}

func displayNameOK(name string) error {
	if len(name) > 200 || strings.ContainsAny(name, "\r\n\x00") {
		return Invalidf("display name: at most 200 characters on one line")
	}
	return nil
}

// SetDisplayName sets a user's display name (impersonation checks compare
// From names with it).
func (s *Service) SetDisplayName(ctx context.Context, a Actor, address, name string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if err := displayNameOK(name); err != nil {
		return err
	}
	if ok, err := s.Store.UserExists(ctx, tid, key); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("user %s: %w", key, store.ErrNotFound)
	}
	if err := s.Store.SetDisplayName(ctx, tid, key, name); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "user.name", key, "", name)
}

// DeleteUser removes an address.
func (s *Service) DeleteUser(ctx context.Context, a Actor, address string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteUser(ctx, tid, key); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "user.delete", key, key, "")
}

// ImportUsers reads CSV lines "address[,display name]"; a header line
// "address,..." and lines starting with # are skipped, and a UTF-8 byte
// order mark is ignored. The whole file is checked before any change;
// addresses already known keep existing (their name is updated). It
// returns how many addresses were added. An operator acting on every
// tenant imports each address into the tenant serving its domain.
func (s *Service) ImportUsers(ctx context.Context, a Actor, r io.Reader) (int, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return 0, err
	}
	if !a.allTenants() {
		if _, err := a.tenant(); err != nil {
			return 0, err
		}
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	type row struct {
		tid        int64
		addr, name string
	}
	var rows []row
	seen := map[string]bool{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, Invalidf("CSV: %v", err)
		}
		line, _ := cr.FieldPos(0)
		first := strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
		if len(first) > 1 && first[0] == '\'' && strings.ContainsRune("=+-@", rune(first[1])) {
			first = first[1:] // as ExportUsers wrote it
		}
		if first == "" || (len(rows) == 0 && strings.EqualFold(first, "address")) {
			continue
		}
		tid, key, err := s.ownAddress(ctx, a, first)
		if err == nil {
			err = s.notListAddress(ctx, key)
		}
		if err != nil {
			return 0, Invalidf("CSV line %d: %v", line, err)
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		name := ""
		if len(rec) > 1 {
			name = strings.TrimSpace(rec[1])
		}
		if err := displayNameOK(name); err != nil {
			return 0, Invalidf("CSV line %d: %v", line, err)
		}
		rows = append(rows, row{tid, key, name})
		if len(rows) > MaxImport {
			return 0, Invalidf("at most %d addresses per import", MaxImport)
		}
	}
	added := map[int64]int{}
	total := map[int64]int{}
	n := 0
	for _, r := range rows {
		total[r.tid]++
		if ok, err := s.Store.UserExists(ctx, r.tid, r.addr); err != nil {
			return n, err
		} else if !ok {
			if _, err := s.Store.CreateUser(ctx, r.tid, r.addr); err != nil {
				return n, err
			}
			n++
			added[r.tid]++
		}
		if r.name != "" {
			if err := s.Store.SetDisplayName(ctx, r.tid, r.addr, r.name); err != nil {
				return n, err
			}
		}
	}
	for tid, t := range total {
		if err := s.Audit(ctx, a, tid, "user.import", fmt.Sprintf("%d rows", t), "", fmt.Sprintf("%d added", added[tid])); err != nil {
			return n, err
		}
	}
	return n, nil
}

// ExportUsers writes a's tenant's addresses with display names as CSV
// (the format ImportUsers reads), every cell defused against spreadsheet
// formulas (csvsafe).
func (s *Service) ExportUsers(ctx context.Context, a Actor, w io.Writer) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid, err := a.tenant()
	if err != nil {
		return err
	}
	us, err := s.Store.Users(ctx, tid)
	if err != nil {
		return err
	}
	people, err := s.Store.People(ctx, tid)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, pp := range people {
		names[pp.Address] = pp.Name
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "name"})
	for _, u := range us {
		cw.Write(csvsafe.Cells([]string{u.Address, names[u.Address]}))
	}
	cw.Flush()
	return cw.Error()
}
