package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/sealbox"
	"github.com/mailgate/mailgate/internal/zipcrypt"
)

// zipHook is the outbound "zip" action: zipcrypt.Rewrite with the
// sender's zip.* settings, and the password mail as a follow-up that the
// pipeline commits with the message (held and released with it, due
// zip.password_delay after it goes out).
type zipHook struct {
	secrets sealbox.SecretStore
}

func (z zipHook) Transform(ctx context.Context, in outbound.TransformInput, r io.Reader, w io.Writer) (outbound.TransformOutput, error) {
	var sealKey []byte
	if v, ok := in.Settings.Get(zipcrypt.KeyFixedPassword); ok && strings.TrimSpace(v) != "" {
		k, err := zipcrypt.LoadPasswordKey(ctx, z.secrets)
		if err != nil {
			return outbound.TransformOutput{}, err
		}
		sealKey = k
	}
	cfg, err := zipcrypt.ConfigFrom(in.Settings, in.TenantID, in.Sender, sealKey)
	if err != nil {
		return outbound.TransformOutput{}, fmt.Errorf("zip settings: %w", err)
	}
	var out outbound.TransformOutput
	var zipped []string
	for _, a := range in.Rcpts {
		if cfg.Exempt(a) {
			out.Skip = append(out.Skip, a)
		} else {
			zipped = append(zipped, a)
		}
	}
	if len(zipped) == 0 {
		return outbound.TransformOutput{}, nil
	}
	if in.Sender == "" {
		// Nobody to send the password from or to: refuse for now rather
		// than send a ZIP nobody can open.
		return outbound.TransformOutput{}, fmt.Errorf("zip: no sender for the password mail")
	}
	cfg.Options.Now = in.Now
	res, err := zipcrypt.Rewrite(ctx, w, r, cfg.Options)
	if err != nil {
		return outbound.TransformOutput{}, err
	}
	if !res.Zipped {
		return outbound.TransformOutput{}, nil
	}
	out.Changed = true
	cipher := cfg.Cipher
	if cipher == "" {
		cipher = zipcrypt.ZipCrypto
	}
	out.Detail = fmt.Sprintf("%d attachments into %s (%s), password to the %s", len(res.Files), res.ZipName, cipher, passwordTo(cfg))
	to := []string{in.Sender}
	if cfg.PasswordTo == zipcrypt.PasswordToRecipients {
		to = zipped
	}
	subject := in.Subject
	pm := zipcrypt.PasswordMail{Lang: cfg.Lang, From: in.Sender, To: to, ToSender: cfg.PasswordTo != zipcrypt.PasswordToRecipients,
		Subject: subject, Recipients: zipped, Sent: in.Now, ZipName: res.ZipName, Files: res.Files, Password: res.Password}
	body, err := pm.Build()
	if err != nil {
		return outbound.TransformOutput{}, err
	}
	out.FollowUps = []outbound.FollowUp{{Rcpts: to, Subject: "[password] " + subject, Body: body, Delay: cfg.PasswordDelay}}
	return out, nil
}

func passwordTo(c zipcrypt.Config) string {
	if c.PasswordTo == zipcrypt.PasswordToRecipients {
		return "recipients"
	}
	return "sender"
}

// linkHook is the outbound "link" action: attachlink.Rewrite with the
// sender's link.* settings, the links' blob store and records.
type linkHook struct {
	links *AttachLinks
}

func (l linkHook) Transform(ctx context.Context, in outbound.TransformInput, r io.Reader, w io.Writer) (outbound.TransformOutput, error) {
	o, err := attachlink.ConfigFrom(in.Settings)
	if err != nil {
		return outbound.TransformOutput{}, fmt.Errorf("link settings: %w", err)
	}
	key, err := l.links.Key(ctx)
	if err != nil {
		return outbound.TransformOutput{}, err
	}
	o.TenantID, o.Sender, o.Rcpts, o.Subject, o.BaseURL, o.Key, o.Now = in.TenantID, in.Sender, in.Rcpts, in.Subject, l.links.BaseURL, key, in.Now
	res, err := attachlink.Rewrite(ctx, w, r, l.links.Blobs, l.links.Records, o)
	if err != nil {
		return outbound.TransformOutput{}, err
	}
	if !res.Linked {
		return outbound.TransformOutput{}, nil
	}
	return outbound.TransformOutput{Changed: true, Detail: fmt.Sprintf("%d attachments behind link %s (expires %s)",
		len(res.Link.Files), res.Link.ID, res.Link.Expires.UTC().Format("2006-01-02 15:04 MST"))}, nil
}
