// Package bec detects impersonation (business e-mail compromise): mail
// from outside that borrows the name or the domain of the recipient's own
// organisation, or of a brand it trusts, to ask for payments, bank-detail
// changes or credentials.
//
// The check (Checker, named "bec") is a policy.BodyCheck for inbound mail.
// It reads the decoded From and Reply-To of the message and the tenant's
// people and domains (Directory), and reports these signals, each a
// policy.Finding that an allow-list match may waive (Overridable):
//
//   - BEC_DISPLAY_NAME (60): the From display name is one of the tenant's
//     people while the From address is outside the tenant's domains.
//     Names are compared after NFKC, case folding, removal of honorifics
//     and titles (様, さん, Mr., 社長), bracketed notes and punctuation, in
//     any word order and with or without spaces ("Yamada, Taro" = "Taro
//     Yamada"; "山田太郎様" = "山田 太郎"). A romanised name is also derived
//     from the person's address ("taro.yamada@" gives "Taro Yamada"). A
//     display name showing an address of the tenant's domains counts too.
//   - BEC_LOOKALIKE_DOMAIN (50): the From or Reply-To domain imitates one of
//     the tenant's domains or a configured brand: the registrable domains
//     (public suffix + 1) have equal confusable skeletons, or are within
//     Damerau–Levenshtein distance 1 (2 for names of 10 or more characters;
//     names under 5 characters only by skeleton), or the protected name is
//     used as a subdomain (example.co.jp.secure-mail.net).
//   - BEC_IDN_MIXED_SCRIPT (40): the From or Reply-To domain is an
//     internationalised name (xn--) whose label mixes scripts (Cyrillic а
//     in "аpple"), or is wholly written in non-Latin letters that look Latin
//     under an ASCII top-level domain. Latin mixed with Han, kana, Hangul or
//     Bopomofo is ordinary and not reported.
//   - BEC_REPLYTO_MISMATCH (15; 30 together with one of the above): replies
//     go to a registrable domain other than the From one and not the
//     tenant's.
//   - BEC_FIRST_TIME_SENDER (5; 15 together with another signal): the
//     sender (From address, else MAIL FROM) has not written to the tenant
//     before (History). Senders of the tenant's own domains are not
//     reported. Every checked message's sender is recorded afterwards.
//
// Settings (policy.Settings keys) and their defaults:
//
//	bec.threshold  50            summed score from which bec.action applies
//	bec.action     tag           action at or above the threshold: tag,
//	                             header, quarantine, discard, reject, ...
//	                             (an unknown value or "allow" means tag)
//	bec.tag        [Suspicious]  Subject tag for the tag action; ASCII by
//	                             default so every rewriter and client shows
//	                             it (a Japanese tag such as [要注意] works too)
//	bec.banner     on            at or above the threshold, add a bilingual
//	                             (Japanese, then English) warning Banner
//	bec.brands     (empty)       further domains to protect, separated by
//	                             commas or spaces: "microsoft.com,paypal.com"
//
// Below the threshold the findings only add the header
// "X-Mailgate-Impersonation: score=<sum>; symbols=<SYMBOL,...>"; at or
// above it they add the header too. The header carries only numbers and
// symbol names, never text from the message. Every finding of one message
// carries the same action; the first carries the header, tag and banner.
//
// The Banner is plain text with "\n" line ends. The parts taken from the
// message (display name, addresses) are stripped of control and format
// characters and shortened, but the rewriter must still escape the banner
// for HTML bodies.
//
// Outbound messages are not checked. A Directory failure with no cached
// copy makes Check return an error (the runner's failure policy applies);
// a History failure only drops the first-time signal.
package bec
