package zipcrypt

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/sealbox"
)

// Policy setting keys (tenant, domain, group or address scope, resolved
// for the sender; docs/outbound.md).
const (
	KeyCipher         = "zip.cipher"          // zipcrypto | aes256
	KeyNames          = "zip.names"           // cp932 | utf8
	KeyPasswordLength = "zip.password_length" // 8–64
	KeyPasswordChars  = "zip.password_chars"  // the characters of generated passwords
	KeyPasswordTo     = "zip.password_to"     // sender | recipients
	KeyPasswordDelay  = "zip.password_delay"  // e.g. 5m: wait before the password mail
	KeyLang           = "zip.lang"            // ja | en
	KeyExceptions     = "zip.exceptions"      // recipients or domains never encrypted for
	// KeyFixedPassword holds a user's own password for all their ZIPs
	// (address scope), sealed: see SealPassword.
	KeyFixedPassword = "zip.fixed_password"
)

// Settings is the view of the policy settings zipcrypt reads
// (policy.Settings).
type Settings interface {
	Get(key string) (string, bool)
}

// Config is the encryption policy of one sender: the Options for
// Rewrite and what happens around it.
type Config struct {
	Options
	// PasswordDelay is how long after the message the password mail
	// waits in the queue.
	PasswordDelay time.Duration
	// Exceptions are recipients (addresses) and domains ("example.com"
	// also covers its subdomains) whose copies are not encrypted.
	Exceptions []string
}

// PasswordKeyName is the store secret that seals fixed passwords.
const PasswordKeyName = "zip-password-key"

// ConfigFrom reads a sender's settings. sealKey opens a fixed password
// (nil: a fixed password is an error). Invalid values are errors, so a
// typo never silently weakens the encryption.
func ConfigFrom(s Settings, tenantID int64, sender string, sealKey []byte) (Config, error) {
	var c Config
	get := func(k string) string { v, _ := s.Get(k); return strings.TrimSpace(v) }
	c.Cipher = Cipher(strings.ToLower(get(KeyCipher)))
	c.Names = NameEncoding(strings.ToLower(get(KeyNames)))
	c.PasswordTo = strings.ToLower(get(KeyPasswordTo))
	c.Lang = strings.ToLower(get(KeyLang))
	if c.Lang != "" && c.Lang != "ja" && c.Lang != "en" {
		return Config{}, fmt.Errorf("%s: %q is not ja or en", KeyLang, c.Lang)
	}
	if v := get(KeyPasswordLength); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < MinPasswordLength || n > MaxPasswordLength {
			return Config{}, fmt.Errorf("%s: %q is not a number from %d to %d", KeyPasswordLength, v, MinPasswordLength, MaxPasswordLength)
		}
		c.PasswordLength = n
	}
	if v, ok := s.Get(KeyPasswordChars); ok && v != "" {
		if err := checkPasswordChars(v); err != nil {
			return Config{}, fmt.Errorf("%s: %w", KeyPasswordChars, err)
		}
		c.PasswordChars = v
	}
	if v := get(KeyPasswordDelay); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			return Config{}, fmt.Errorf("%s: %q is not a duration up to 7 days", KeyPasswordDelay, v)
		}
		c.PasswordDelay = d
	}
	for _, e := range strings.Split(get(KeyExceptions), ",") {
		if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
			c.Exceptions = append(c.Exceptions, strings.TrimPrefix(e, "@"))
		}
	}
	if v := get(KeyFixedPassword); v != "" {
		if sealKey == nil {
			return Config{}, fmt.Errorf("%s is set but no key opens it", KeyFixedPassword)
		}
		pw, err := OpenPassword(sealKey, tenantID, sender, v)
		if err != nil {
			return Config{}, err
		}
		c.Password = pw
	}
	if err := c.Options.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Exempt reports whether rcpt is on the exception list: its address, its
// domain, or a parent domain of it.
func (c Config) Exempt(rcpt string) bool {
	rcpt = strings.ToLower(strings.TrimSpace(rcpt))
	dom := rcpt
	if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
		dom = rcpt[i+1:]
	}
	for _, e := range c.Exceptions {
		switch {
		case strings.Contains(e, "@"):
			if e == rcpt {
				return true
			}
		case dom == e || strings.HasSuffix(dom, "."+e):
			return true
		}
	}
	return false
}

func passwordAD(tenantID int64, address string) []byte {
	return sealbox.AD(tenantID, "zip-password/"+strings.ToLower(address))
}

// SealPassword seals a user's fixed password for the KeyFixedPassword
// setting of address: only that tenant's address opens it.
func SealPassword(key []byte, tenantID int64, address, password string) (string, error) {
	if err := CheckFixedPassword(password); err != nil {
		return "", err
	}
	b, err := sealbox.Seal(key, passwordAD(tenantID, address), []byte(password))
	if err != nil {
		return "", err
	}
	return "sealed:" + base64.RawStdEncoding.EncodeToString(b), nil
}

// OpenPassword opens what SealPassword made.
func OpenPassword(key []byte, tenantID int64, address, sealed string) (string, error) {
	v, ok := strings.CutPrefix(sealed, "sealed:")
	if !ok {
		return "", fmt.Errorf("%s is not sealed", KeyFixedPassword)
	}
	b, err := base64.RawStdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", KeyFixedPassword, sealbox.ErrOpen)
	}
	pw, err := sealbox.Open(key, passwordAD(tenantID, address), b)
	if err != nil {
		return "", fmt.Errorf("%s of %s: %w", KeyFixedPassword, address, err)
	}
	return string(pw), nil
}

// LoadPasswordKey returns the cluster-wide key of fixed passwords.
func LoadPasswordKey(ctx context.Context, s sealbox.SecretStore) ([]byte, error) {
	return sealbox.LoadKey(ctx, s, PasswordKeyName)
}
