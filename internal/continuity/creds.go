package continuity

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// GraphCredentials are a Microsoft Entra ID application's client
// credentials (OAuth 2.0 client credentials grant). The application needs
// the Graph application permissions Mail-Advanced.ReadWrite.All (import)
// and Mail.ReadBasic.All (to find a message already imported before a
// crash), granted by the customer's administrator.
type GraphCredentials struct {
	Tenant       string `json:"tenant"` // directory (tenant) ID or its primary domain
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// GmailCredentials are a Google service account's key with domain-wide
// delegation for the scopes gmail.insert and gmail.readonly (the JSON key
// file as Google's console downloads it).
type GmailCredentials struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
}

// CredentialInfo describes stored credentials without their secret.
type CredentialInfo struct {
	Provider   string    `json:"provider"`
	Configured bool      `json:"configured"`
	ID         string    `json:"id,omitempty"` // client ID or service account address
	Updated    time.Time `json:"updated,omitzero"`
}

// ParseCredentials checks credentials for provider (graph: the JSON
// {"tenant", "client_id", "client_secret"}; gmail: a service account key
// file) and returns them normalised, with what identifies them.
func ParseCredentials(provider string, raw []byte) ([]byte, string, error) {
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(raw))
		if provider == PathGraph {
			d.DisallowUnknownFields()
		}
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("%s credentials: not the expected JSON: %v", provider, err)
		}
		return nil
	}
	switch provider {
	case PathGraph:
		var c GraphCredentials
		if err := dec(&c); err != nil {
			return nil, "", err
		}
		c.Tenant, c.ClientID = strings.TrimSpace(c.Tenant), strings.TrimSpace(c.ClientID)
		if c.Tenant == "" || c.ClientID == "" || c.ClientSecret == "" || strings.ContainsAny(c.Tenant, "/?#% ") {
			return nil, "", errors.New("graph credentials: tenant, client_id and client_secret are required")
		}
		b, _ := json.Marshal(c)
		return b, c.ClientID, nil
	case PathGmail:
		var c GmailCredentials
		if err := dec(&c); err != nil {
			return nil, "", err
		}
		if c.Type != "" && c.Type != "service_account" {
			return nil, "", fmt.Errorf("gmail credentials: a service account key, not %q", c.Type)
		}
		if !strings.Contains(c.ClientEmail, "@") {
			return nil, "", errors.New("gmail credentials: client_email is required")
		}
		if _, err := parseRSAKey(c.PrivateKey); err != nil {
			return nil, "", fmt.Errorf("gmail credentials: private_key: %v", err)
		}
		c.Type = "service_account"
		b, _ := json.Marshal(c)
		return b, c.ClientEmail, nil
	}
	return nil, "", fmt.Errorf("credentials are for graph or gmail, not %q", provider)
}

func parseRSAKey(p string) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("not an RSA key")
	}
	return x509.ParsePKCS1PrivateKey(blk.Bytes)
}

// SetCredentials stores a tenant's credentials for provider, sealed; an
// empty raw deletes them.
func (s *Service) SetCredentials(ctx context.Context, tenantID int64, provider string, raw []byte) (CredentialInfo, error) {
	info := CredentialInfo{Provider: provider, Updated: s.now()}
	if provider != PathGraph && provider != PathGmail {
		return info, fmt.Errorf("credentials are for graph or gmail, not %q", provider)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return info, s.Store.SetContinuitySecret(ctx, tenantID, provider, nil, info.Updated)
	}
	norm, id, err := ParseCredentials(provider, raw)
	if err != nil {
		return info, err
	}
	info.ID, info.Configured = id, true
	key, err := LoadSealKey(ctx, s.Store)
	if err != nil {
		return info, err
	}
	sealed, err := Seal(key, tenantID, provider, norm)
	if err != nil {
		return info, err
	}
	return info, s.Store.SetContinuitySecret(ctx, tenantID, provider, sealed, info.Updated)
}

// credentials opens a tenant's stored credentials for provider.
func (s *Service) credentials(ctx context.Context, tenantID int64, provider string) ([]byte, time.Time, error) {
	sealed, at, err := s.Store.ContinuitySecret(ctx, tenantID, provider)
	if err != nil {
		return nil, at, err
	}
	key, err := LoadSealKey(ctx, s.Store)
	if err != nil {
		return nil, at, err
	}
	plain, err := Unseal(key, tenantID, provider, sealed)
	return plain, at, err
}

// Credentials describes a tenant's stored credentials for provider
// (Configured false when there are none).
func (s *Service) Credentials(ctx context.Context, tenantID int64, provider string) (CredentialInfo, error) {
	plain, at, err := s.credentials(ctx, tenantID, provider)
	if errors.Is(err, store.ErrNotFound) {
		return CredentialInfo{Provider: provider}, nil
	} else if err != nil {
		return CredentialInfo{Provider: provider}, err
	}
	info := CredentialInfo{Provider: provider, Configured: true, Updated: at}
	switch provider {
	case PathGraph:
		var c GraphCredentials
		json.Unmarshal(plain, &c)
		info.ID = c.ClientID
	case PathGmail:
		var c GmailCredentials
		json.Unmarshal(plain, &c)
		info.ID = c.ClientEmail
	}
	return info, nil
}
