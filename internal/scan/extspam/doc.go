// Package extspam runs spam engines that a site already operates as
// mailgate body checks: rspamd over its HTTP protocol (POST /checkv2 on the
// normal worker) and SpamAssassin's spamd over SPAMC/1.5. Both are optional;
// mailgate's own "spam" check does not need them.
//
// Each check sends the raw message as received, streamed from the spool, with
// a per-message timeout and a bounded reply. A message larger than the
// configured MaxSize is not sent (as spamc does): the check then returns a
// zero-score finding saying so, because big messages are rarely spam and
// engines are slow on them. When the engine cannot judge (unreachable,
// timeout, error reply, a reply that is not the protocol) Check returns an
// error and the runner's failure policy for the stage applies.
//
// What the engines are told: rspamd gets the envelope in its request
// headers (IP and Helo of the sender as policy.Envelope.SenderIP sees it,
// From, one Rcpt per recipient, User when authenticated, and Queue-Id and
// Hostname when the configuration supplies them). SpamAssassin has no such
// headers, so the copy sent to spamd starts with a Received header for the
// connecting host, standing in for mailgate's own, which
// policy.Message.Open leaves out; without it SpamAssassin would see no
// relay at all (NO_RELAYS) and its relay rules would judge the wrong host.
//
// # Findings
//
// Each engine gives one finding, Symbol RSPAMD_SCORE (check "rspamd") or
// SA_SCORE (check "spamassassin"), Overridable, with Action Header, the
// engine's top symbols in Reason and one header:
//
//	X-Mailgate-Rspamd: score=7.30/15.00 action=add_header
//	X-Mailgate-SpamAssassin: score=7.50/5.00
//
// (rspamd's action name with spaces written as underscores). When a
// recipient's settings ask for it (below), a second finding with Symbol
// RSPAMD_REJECT or SA_REJECT and Action Reject is scoped to those
// recipients, with a generic 550 5.7.1 text.
//
// # Score mapping
//
// mailgate's spam stage (package scan/spam) adds every other check's Score
// divided by 16 to one log-odds sum. The engine's score is mapped so that
// the engine's own threshold (rspamd's required_score, which is its reject
// score, 15 by default; SpamAssassin's required score, 5 by default)
// contributes +3 log-odds, about 95% on its own:
//
//	Score = 16 * 3 * engineScore / threshold, clipped to [-120, +120]
//
// The clip (±7.5 log-odds) keeps one engine from deciding alone against
// strong contrary evidence (GTUBE scores 1000 in SpamAssassin). A threshold
// that is missing, zero or negative is replaced by the engine's default.
//
// # Settings
//
// Read per recipient (defaults in brackets):
//
//	rspamd.reject             reject when rspamd's action is "reject" [false]
//	spamassassin.reject_at    reject when SpamAssassin's score reaches this [off]
//
// A value that does not parse counts as the default. rspamd's other actions
// ("soft reject", "greylist", "rewrite subject", "add header") only inform
// the score: mailgate's own stages own those decisions.
package extspam
