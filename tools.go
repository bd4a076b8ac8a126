//go:build tools

// This file records modules that the console, its tests and the identity
// provider fakes import, so `go mod tidy` keeps them pinned before every
// importer lands.
package tools

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/emersion/go-imap/v2/imapclient"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/microcosm-cc/bluemonday"
	_ "github.com/nicksnyder/go-i18n/v2/i18n"
	_ "github.com/pquerna/otp/totp"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/text/language"
	_ "golang.org/x/time/rate"
)
