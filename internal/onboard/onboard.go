// Package onboard is the onboarding wizard of a domain: the steps from
// "domain added" to "MX switched to mailgate", with the settings of the
// primary mail service filled in with mailgate's own values, and the DNS
// checks of each step, whose findings say in words what differs from what
// mailgate needs. The administration layer (internal/admin) keeps where
// each domain is; the console and the CLI show the same steps and checks.
package onboard

import (
	"strings"
)

// Text is one sentence in both languages of the console.
type Text struct {
	En string `json:"en"`
	Ja string `json:"ja"`
}

// In returns the text in lang ("ja" or anything else for English).
func (t Text) In(lang string) string {
	if strings.HasPrefix(lang, "ja") && t.Ja != "" {
		return t.Ja
	}
	return t.En
}

// The primary mail services the wizard knows.
const (
	M365   = "m365"   // Microsoft 365 (Exchange Online)
	Google = "google" // Google Workspace
	Other  = "other"  // any other SMTP server
)

// Services lists the primary services in the order the wizard offers them.
var Services = []string{M365, Google, Other}

// ValidService reports whether s is one of Services.
func ValidService(s string) bool {
	for _, v := range Services {
		if s == v {
			return true
		}
	}
	return false
}

// ServiceName is how the wizard names a primary service.
func ServiceName(s string) Text {
	switch s {
	case M365:
		return Text{"Microsoft 365", "Microsoft 365"}
	case Google:
		return Text{"Google Workspace", "Google Workspace"}
	case Other:
		return Text{"Another mail server", "その他のメールサーバ"}
	}
	return Text{}
}

// The wizard's steps, numbered from 1.
const (
	StepOwnership = 1 // the TXT token proves the domain is the tenant's
	StepService   = 2 // the primary service's connectors
	StepAuth      = 3 // SPF, DKIM, DMARC
	StepTTL       = 4 // lower the MX TTL before the switch
	StepTest      = 5 // a test message through mailgate
	StepMX        = 6 // publish the MX (and MTA-STS mx: lines)
	Steps         = 6
)

// StepTitle names step n.
func StepTitle(n int) Text {
	switch n {
	case StepOwnership:
		return Text{"Domain ownership", "ドメインの所有確認"}
	case StepService:
		return Text{"Primary mail service", "メールサービスの設定"}
	case StepAuth:
		return Text{"SPF, DKIM and DMARC", "SPF・DKIM・DMARC"}
	case StepTTL:
		return Text{"MX TTL", "MX レコードの TTL"}
	case StepTest:
		return Text{"Test message", "テストメール"}
	case StepMX:
		return Text{"Switch the MX", "MX の切り替え"}
	}
	return Text{}
}

// Facts are mailgate's own values that the steps fill in.
type Facts struct {
	// Hostname is mailgate's SMTP name: the MX target, the SPF mechanism,
	// the smart host of the primary service's outbound connector.
	Hostname string
	// CertName is the name in the certificate mailgate presents when it
	// delivers (a Microsoft 365 partner connector identifies gateways by
	// it); "" when it presents none.
	CertName string
	// IPs are mailgate's addresses (its hostname's A and AAAA records).
	IPs []string
	// SpamHeader and SpamValue mark the mail the spam check judged spam.
	SpamHeader, SpamValue string
	// RelayPort is the port of mailgate's outbound (relay) listener; 0
	// when it has none.
	RelayPort int
	// Sealer is mailgate's ARC sealing domain ([arc] domain), the one to
	// list as a trusted ARC sealer.
	Sealer string
	// ARC is the sealing key's DNS record when mailgate seals the copies
	// it delivers ([arc] seal); nil when it does not.
	ARC *ARCKey `json:",omitempty"`
}

// ARCKey is the DNS record publishing mailgate's ARC sealing key.
type ARCKey struct {
	Name  string // the TXT record's name
	Value string // the TXT record's text
}

// IPList is the addresses joined for a form field, or a placeholder when
// the hostname's addresses could not be found.
func (f Facts) IPList() string {
	if len(f.IPs) == 0 {
		return "(" + f.Hostname + ": no address found)"
	}
	return strings.Join(f.IPs, ", ")
}
