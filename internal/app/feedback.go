package app

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
)

// spamFeedback handles mail to a tenant's feedback addresses (settings
// spam.feedback_spam_address and spam.feedback_ham_address, addresses of
// the tenant's users): the messages forwarded as attachments train the
// tenant's model as spam or ham, and the feedback mail itself is not
// delivered. Only the tenant's own people may teach its model: the sender
// must be in one of the tenant's domains and pass DMARC.
func (a *App) spamFeedback(ctx context.Context, m store.Message, env *policy.Envelope, rcpt string, s policy.Settings, findings []policy.Finding) (string, inbound.Interception, bool) {
	isSpam := false
	switch strings.ToLower(rcpt) {
	case setting(s, "spam.feedback_spam_address"):
		isSpam = true
	case setting(s, "spam.feedback_ham_address"):
	default:
		return "", nil, false
	}
	if !a.ownAuthenticatedSender(ctx, m, findings) {
		return "feedback ignored: the sender is not an authenticated address of this organisation", nil, true
	}
	kind := map[bool]string{true: "spam", false: "not spam"}[isSpam]
	learn := func(ctx context.Context) string { return a.learnForwarded(ctx, m, isSpam) }
	return "feedback from <" + m.MailFrom + "> to learn as " + kind, learn, true
}

// learnForwarded trains the tenant's model with the messages forwarded as
// attachments in a committed feedback mail.
func (a *App) learnForwarded(ctx context.Context, m store.Message, isSpam bool) string {
	f, err := a.Spool.Open(ctx, m.BlobKey)
	if err != nil {
		return "feedback not read: " + err.Error()
	}
	defer f.Close()
	label := spam.LabelHam
	if isSpam {
		label = spam.LabelSpam
	}
	var exs []spam.Example
	for _, raw := range spam.ExtractForwarded(f, 20, 20<<20) {
		msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
		if err != nil {
			continue
		}
		exs = append(exs, spam.NewExample(msg, label))
	}
	st, err := a.SpamClassifier().Learn(ctx, m.TenantID, exs)
	if err != nil {
		return "feedback not learned: " + err.Error()
	}
	kind := map[bool]string{true: "spam", false: "not spam"}[isSpam]
	return fmt.Sprintf("feedback from <%s>: %d forwarded message(s) learned as %s (%s)", m.MailFrom, len(exs), kind, st)
}

func setting(s policy.Settings, key string) string {
	v, _ := s.Get(key)
	return strings.ToLower(strings.TrimSpace(v))
}

// ownAuthenticatedSender reports whether the message comes from one of the
// tenant's domains with a DMARC pass.
func (a *App) ownAuthenticatedSender(ctx context.Context, m store.Message, findings []policy.Finding) bool {
	pass := false
	for _, f := range findings {
		if f.Symbol == "DMARC_PASS" {
			pass = true
		}
	}
	at := strings.LastIndexByte(m.MailFrom, '@')
	if !pass || at < 0 {
		return false
	}
	d, err := a.Store.DomainByName(ctx, strings.ToLower(m.MailFrom[at+1:]))
	return err == nil && d.TenantID == m.TenantID
}
