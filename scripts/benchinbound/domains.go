package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
)

// SPF outcomes the sender domains are set up to give for 127.0.0.1.
const (
	spfPass     = "pass"
	spfFail     = "fail"
	spfSoftfail = "softfail"
	spfNone     = "none"
)

// senderDomain is one sending organisation served by the fake DNS.
type senderDomain struct {
	name string
	// spfRecord is the TXT value published at name ("" for none);
	// spfResult what it gives for 127.0.0.1.
	spfRecord, spfResult string
	dkim                 string // "", "rsa" or "ed25519": the key the domain signs with
	selector             string
	dmarc                string // "" (no record), "none", "quarantine" or "reject"
	display, local       string // header From of its legitimate mail
	signer               crypto.Signer
	pubTXT               string // the DKIM key record, "v=DKIM1; k=...; p=..."
}

// Names used in the mix and in the DNS data.
const (
	tenantDomain = "example.test"
	heloName     = "mx1.bench-client.test"
	espInclude   = "_spf.esp-mailer.test"
	spoofRelay   = "bounce-relay.test"
	becDomain    = "freemail.test"
	adDomain     = "ad-blast.test"
)

// newDomains returns the sender domains with fresh DKIM keys. RSA keys are
// 2048 bits, the size large senders publish.
func newDomains() ([]*senderDomain, error) {
	ds := []*senderDomain{
		// DKIM-signing senders (newsletters, notices).
		{name: "shop-news.test", spfResult: spfPass, dkim: "rsa", selector: "s2025", dmarc: "reject", display: "Shop News", local: "news"},
		{name: "travel-deals.test", spfResult: spfPass, dkim: "rsa", selector: "esp1", dmarc: "quarantine", display: "Travel Deals", local: "deals"},
		{name: "bank-notice.test", spfResult: spfPass, dkim: "rsa", selector: "k1", dmarc: "reject", display: "Bank Notice", local: "info"},
		{name: "techweekly.test", spfResult: spfPass, dkim: "rsa", selector: "mail", dmarc: "none", display: "Tech Weekly", local: "newsletter"},
		{name: "coupon-mail.test", spfResult: spfFail, dkim: "rsa", selector: "sel1", dmarc: "reject", display: "Coupon Mail", local: "coupon"},
		{name: "event-info.test", spfResult: spfSoftfail, dkim: "ed25519", selector: "ed1", dmarc: "none", display: "Event Info", local: "event"},
		{name: "mag-jp.test", spfResult: spfPass, dkim: "rsa", selector: "jp", dmarc: "none", display: "マガジン編集部", local: "mag"},
		{name: "cloud-status.test", spfResult: spfNone, dkim: "rsa", selector: "st", dmarc: "quarantine", display: "Cloud Status", local: "status"},
		{name: "gov-notice.test", spfResult: spfPass, dkim: "rsa", selector: "g1", dmarc: "reject", display: "Gov Notice", local: "notice"},
		// Senders without DKIM (business mail, small servers).
		{name: "partner-corp.test", spfResult: spfPass, dmarc: "none", display: "Partner Corp", local: "sales"},
		{name: "supplier.test", spfResult: spfPass, dmarc: "quarantine", display: "Supplier Inc.", local: "orders"},
		{name: "univ-lab.test", spfResult: spfPass, display: "Univ Lab", local: "lab"},
		{name: "smallbiz.test", spfResult: spfNone, display: "Small Biz", local: "owner"},
		{name: "kaisha-a.test", spfResult: spfPass, dmarc: "none", display: "株式会社エー 営業部", local: "eigyo"},
		{name: "torihiki.test", spfResult: spfSoftfail, display: "取引先 経理", local: "keiri"},
		{name: "legacy-mail.test", spfResult: spfFail, display: "Legacy Mail", local: "admin"},
		{name: "consult.test", spfResult: spfPass, dmarc: "none", display: "Consulting Partners", local: "contact"},
		{name: becDomain, spfResult: spfPass, dmarc: "none", display: "Free Mail User", local: "user"},
		{name: spoofRelay, spfResult: spfPass, display: "Relay", local: "bounce"},
		{name: adDomain, spfResult: spfPass, display: "Ad Blast", local: "promo"},
	}
	for _, d := range ds {
		switch {
		case d.name == "travel-deals.test" || d.name == "univ-lab.test":
			// Sent through an ESP: the include is resolved too.
			d.spfRecord = "v=spf1 include:" + espInclude + " -all"
		case d.name == "techweekly.test":
			// a and mx mechanisms: A and MX lookups as well.
			d.spfRecord = "v=spf1 a mx -all"
		case d.spfResult == spfPass:
			d.spfRecord = "v=spf1 ip4:127.0.0.1 ip4:192.0.2.0/24 -all"
		case d.spfResult == spfFail:
			d.spfRecord = "v=spf1 ip4:192.0.2.10 ip4:198.51.100.0/24 -all"
		case d.spfResult == spfSoftfail:
			d.spfRecord = "v=spf1 ip4:203.0.113.0/24 ~all"
		}
		if err := d.makeKey(); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (d *senderDomain) makeKey() error {
	var pub []byte
	switch d.dkim {
	case "":
		return nil
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("DKIM key for %s: %w", d.name, err)
		}
		pub, err = x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return fmt.Errorf("DKIM key for %s: %w", d.name, err)
		}
		d.signer = k
	case "ed25519":
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("DKIM key for %s: %w", d.name, err)
		}
		// RFC 8463 3: p= is the bare 32-byte key, not SubjectPublicKeyInfo.
		pub = p
		d.signer = k
	}
	d.pubTXT = fmt.Sprintf("v=DKIM1; k=%s; p=%s", d.dkim, base64.StdEncoding.EncodeToString(pub))
	return nil
}

// domainByName finds a domain of ds; it panics on a name not in the table,
// which is a programming error in the mix.
func domainByName(ds []*senderDomain, name string) *senderDomain {
	for _, d := range ds {
		if d.name == name {
			return d
		}
	}
	panic("unknown sender domain " + name)
}

// dnsRecords returns the zone data for the sender domains and the client's
// HELO name, in the order they are added to the server.
func dnsRecords(ds []*senderDomain) []record {
	var rs []record
	for _, d := range ds {
		rs = append(rs, record{name: d.name, typ: "SOA"})
		if d.spfRecord != "" {
			rs = append(rs, record{name: d.name, typ: "TXT", value: d.spfRecord})
		}
		if d.pubTXT != "" {
			rs = append(rs, record{name: d.selector + "._domainkey." + d.name, typ: "TXT", value: d.pubTXT})
		}
		if d.dmarc != "" {
			rs = append(rs, record{name: "_dmarc." + d.name, typ: "TXT", value: "v=DMARC1; p=" + d.dmarc + "; adkim=r; aspf=r"})
		}
		if d.name == "techweekly.test" {
			rs = append(rs, record{name: d.name, typ: "A", value: "127.0.0.1"},
				record{name: d.name, typ: "MX", value: "10 mx.techweekly.test."},
				record{name: "mx.techweekly.test", typ: "A", value: "127.0.0.2"})
		}
	}
	rs = append(rs,
		record{name: "esp-mailer.test", typ: "SOA"},
		record{name: espInclude, typ: "TXT", value: "v=spf1 ip4:127.0.0.0/24 ip4:192.0.2.0/24 -all"},
		record{name: "bench-client.test", typ: "SOA"},
		record{name: heloName, typ: "A", value: "127.0.0.1"},
		record{name: heloName, typ: "TXT", value: "v=spf1 a -all"},
	)
	return rs
}
