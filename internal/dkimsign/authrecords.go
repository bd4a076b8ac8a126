package dkimsign

import (
	"context"
	"strings"
)

// AuthRecord is the SPF or DMARC record of a domain as published, with
// what mailgate suggests.
type AuthRecord struct {
	Name      string // the DNS name: the domain (SPF) or _dmarc.<domain>
	Published string // the record found, "" when none
	Suggested string // what to publish when Published is missing or does not fit
	OK        bool   // Published fits mail sent through mailgate
	// Found is every record of the kind at Name: more than one makes the
	// domain's SPF (RFC 7208 4.5) or DMARC (RFC 7489 6.6.3) unusable.
	Found []string
}

// CheckSPF looks up the domain's SPF record (RFC 7208) and says whether
// it names hostname, mailgate's outbound host, with an a: or include:
// mechanism. A record that authorises mailgate by IP address only cannot
// be judged from here and is reported as not OK, with the suggestion.
func CheckSPF(ctx context.Context, r Resolver, domain, hostname string) AuthRecord {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	hostname = strings.ToLower(strings.TrimSuffix(hostname, "."))
	rec := AuthRecord{Name: domain, Suggested: "v=spf1 a:" + hostname + " ~all"}
	txts, _ := r.LookupTXT(ctx, domain)
	for _, t := range txts {
		if f := strings.Fields(strings.ToLower(t)); len(f) > 0 && f[0] == "v=spf1" {
			rec.Published = t
			rec.Found = append(rec.Found, t)
			for _, m := range f[1:] {
				m = strings.TrimLeft(m, "+")
				if m == "a:"+hostname || m == "include:"+hostname {
					rec.OK = true
				}
			}
			if !rec.OK {
				// Keep the domain's other senders: add mailgate in front.
				rec.Suggested = "v=spf1 a:" + hostname + " " + strings.Join(strings.Fields(t)[1:], " ")
			}
		}
	}
	return rec
}

// CheckDMARC looks up the domain's DMARC record (RFC 7489). Without one it
// suggests p=none with aggregate reports to postmaster while the records
// are new; once DKIM is published and verified (dkimOK) it suggests
// p=quarantine, which mail sent through mailgate meets.
func CheckDMARC(ctx context.Context, r Resolver, domain string, dkimOK bool) AuthRecord {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	policy := "none"
	if dkimOK {
		policy = "quarantine"
	}
	rec := AuthRecord{Name: "_dmarc." + domain, Suggested: "v=DMARC1; p=" + policy + "; rua=mailto:postmaster@" + domain}
	txts, _ := r.LookupTXT(ctx, rec.Name)
	for _, t := range txts {
		if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
			rec.Published, rec.OK = t, true
			rec.Found = append(rec.Found, t)
		}
	}
	return rec
}
