// Package auth is mailgate's sender authentication check, the body check
// named "auth": SPF (RFC 7208, through package scan/spf), DKIM (RFC 6376,
// RFC 8463, verified with github.com/emersion/go-msgauth), DMARC (RFC 7489,
// with RFC 9091 np=) and ARC (RFC 8617, verified here).
//
// # Findings
//
// Check returns, in this order: one SPF finding (SPF_PASS, SPF_FAIL, ...),
// one per DKIM-Signature (DKIM_PASS, DKIM_FAIL, ..., or one DKIM_NONE), one
// DMARC finding (DMARC_PASS, DMARC_FAIL, DMARC_NONE, DMARC_TEMPERROR,
// DMARC_PERMERROR, or DMARC_BAD_FROM for a From header DMARC cannot trust),
// one ARC finding (ARC_PASS, ARC_FAIL, ARC_NONE), then OWN_DOMAIN_SPOOF and
// AUTHRES_FORGED when they apply. Every SPF, DKIM, DMARC and ARC finding
// carries an RFC 8601 resinfo in AuthResult, built only from values that
// passed a strict domain or selector grammar (anything else is left out);
// HeaderValue joins them into an Authentication-Results value.
//
// SPF is evaluated for SenderIP/SenderHelo (the hop before a trusted relay)
// and MAIL FROM; a null reverse-path is checked as the HELO identity. At most
// MaxDKIMSignatures signatures are verified; later ones are "policy".
//
// Scores (percentage points): SPF fail +30, softfail +10, permerror +5;
// DKIM fail +10; DMARC fail +40 when the domain publishes quarantine or
// reject, +10 under p=none, DMARC_BAD_FROM at least +20; OWN_DOMAIN_SPOOF
// +50; AUTHRES_FORGED +5. ARC results do not score and do not change DMARC.
//
// # Settings
//
//   - dmarc.enforce (bool, default true): a DMARC failure under a
//     published policy of reject gives Reject (550 5.7.1, naming the From
//     domain whose policy it is) and quarantine gives Quarantine, after pct
//     sampling (RFC 7489 6.6.4: a message outside the sample gets the next
//     weaker policy). Sampling is deterministic: a SHA-256 of the message's
//     header section. When false, such failures give Header only.
//   - auth.own_domain_action (action name, default "quarantine"): the action
//     for OWN_DOMAIN_SPOOF. Allowed: continue, header, tag, quarantine,
//     discard, reject, tempfail; an invalid value means the default.
//
// SPF, DKIM and DMARC findings, and the DMARC Reject/Quarantine actions,
// are Overridable: an allow-list match for the recipient waives them (the
// result stays in the header). OWN_DOMAIN_SPOOF is not overridable: allow
// lists naming the tenant's own domain are common and are exactly what a
// spoofer of that domain would ride on; set auth.own_domain_action instead.
//
// # Own-domain spoofing
//
// With Config.Domains set, a message is OWN_DOMAIN_SPOOF when it arrives
// from outside (no SMTP AUTH user, not outbound, and not handed over by a
// trusted relay without an earlier untrusted hop) and its From domain or
// MAIL FROM domain is one of the tenant's domains or below one, unless that
// identity is authenticated: the From domain by DMARC pass, a DKIM pass or an
// SPF pass relaxed-aligned with it; the MAIL FROM domain by an SPF pass for
// it or an aligned DKIM pass. An ambiguous From naming an own domain is never
// authenticated. When the tenant's domains cannot be read the rule is
// skipped with an OWN_DOMAIN_UNKNOWN fact.
//
// # DMARC and the From header
//
// The author domain comes from the parsed message and is cross-checked with
// the raw header. RFC 7489 6.6.1 spoofing defences: zero or several From
// fields, a From with several addresses, an address that is not a strict
// addr-spec (encoded-words, control characters, domain literals) or a raw
// field naming other domains than the parsed address never give dmarc=pass.
// Such a message is DMARC_BAD_FROM: every domain named in the From fields
// (at most five) is looked up and, if any publishes a record, the result is
// fail under the strictest of their policies with pct taken as 100; if none
// does, the result is permerror with no policy action. Policy discovery
// follows RFC 7489 6.6.3 (the From domain, then its organisational domain
// from the Public Suffix List; several DMARC records mean none) and
// RFC 9091 (np= for a From domain that does not exist).
//
// DNS temporary failures give temperror results and no action; they never
// make Check return an error. A DMARC evaluation without a pass in which an
// aligned DKIM signature or the aligned SPF check had a temporary error is
// temperror, not fail, so a resolver hiccup does not reject good mail.
package auth
