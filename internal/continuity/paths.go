package continuity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"github.com/mailgate/mailgate/internal/store"
)

// The API hand-back paths import a message into the user's own mailbox
// at the primary service: no re-delivery, so its filters do not run
// again and it keeps its read state.
//
// Microsoft Graph (beta): POST /users/{user}/mailFolders/{inbox|sentitems}/importMime
// with the message base64-encoded as text/plain, then PATCH isRead when
// the user had read it. Token: the client credentials grant at
// {login}/{tenant}/oauth2/v2.0/token, scope {graph}/.default.
//
// Gmail: POST /upload/gmail/v1/users/{user}/messages/import (multipart:
// the labels as JSON, then the message), labels INBOX (+UNREAD) or SENT,
// the date from the Date field. Token: a service account's JWT grant
// (RFC 7523) for the user (domain-wide delegation).
//
// A message attempted before (its outcome lost in a crash) is looked up
// by its Message-ID first, so it is not imported twice.

// Scopes of the Gmail path: import, and search (the look-up by Message-ID).
var gmailScopes = []string{"https://www.googleapis.com/auth/gmail.insert", "https://www.googleapis.com/auth/gmail.readonly"}

// tokenCache keeps one token source per tenant, provider and user (and
// credential version), so tokens are reused until they expire.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]oauth2.TokenSource
}

func (h *Handback) httpClient() *http.Client { return orDefault(h.HTTP) }

func orDefault(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return http.DefaultClient
}

// tokenSource returns a cached token source for the credentials of
// tenantID's provider, for user (gmail) or the whole organisation (graph).
func (h *Handback) tokenSource(ctx context.Context, tenantID int64, provider, user string) (oauth2.TokenSource, error) {
	return tokenSourceFor(ctx, h.Service, h.httpClient(), h.Endpoints, &h.tokens, tenantID, provider, user, nil)
}

func (h *Handback) apiCall(ctx context.Context, ts oauth2.TokenSource, method, u, ctype string, body io.Reader) ([]byte, error) {
	return apiCall(ctx, h.httpClient(), ts, method, u, ctype, body)
}

// API makes authenticated requests to Microsoft Graph and Google's APIs
// with a tenant's stored hand-back credentials, for the other parts of
// mailgate that read the primary service (the directory synchronisation):
// one credential store, one token code. Its zero value (with Service set)
// uses the public clouds' endpoints.
type API struct {
	Service   *Service
	HTTP      *http.Client // nil: http.DefaultClient
	Endpoints Endpoints
	tokens    tokenCache
}

// URLs are the endpoints in use (the defaults filled in).
func (a *API) URLs() Endpoints { return a.Endpoints.withDefaults() }

// TokenSource returns a cached token source for tenantID's credentials
// of provider (PathGraph: the organisation's application token, scopes
// ignored; PathGmail: the service account acting as subject with scopes).
// ErrNoCredentials (wrapped) when there are none.
func (a *API) TokenSource(ctx context.Context, tenantID int64, provider, subject string, scopes []string) (oauth2.TokenSource, error) {
	return tokenSourceFor(ctx, a.Service, orDefault(a.HTTP), a.Endpoints, &a.tokens, tenantID, provider, subject, scopes)
}

// Get sends a GET with ts's token and returns (at most 1 MiB of) the
// body of a 2xx answer; other answers are errors naming the status and
// the API's error text (IsPermanent for 400, 404 and 413).
func (a *API) Get(ctx context.Context, ts oauth2.TokenSource, u string) ([]byte, error) {
	return apiCall(ctx, orDefault(a.HTTP), ts, http.MethodGet, u, "", nil)
}

// IsPermanent reports whether an API error will not go away by trying
// again (a request the API refuses as such).
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// tokenSourceFor returns a cached token source for the credentials of
// tenantID's provider, for user (gmail) or the whole organisation
// (graph); scopes nil are the hand-back's.
func tokenSourceFor(ctx context.Context, s *Service, hc *http.Client, endpoints Endpoints, cache *tokenCache, tenantID int64, provider, user string, scopes []string) (oauth2.TokenSource, error) {
	plain, at, err := s.credentials(ctx, tenantID, provider)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w (%s)", ErrNoCredentials, provider)
	} else if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%d/%s/%s/%d/%s", tenantID, provider, user, at.UnixNano(), strings.Join(scopes, " "))
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if ts := cache.m[key]; ts != nil {
		return ts, nil
	}
	if cache.m == nil || len(cache.m) > 10000 {
		cache.m = map[string]oauth2.TokenSource{}
	}
	// Token requests outlive the request that first needed them.
	bg := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	ep := endpoints.withDefaults()
	var ts oauth2.TokenSource
	switch provider {
	case PathGraph:
		var c GraphCredentials
		if err := json.Unmarshal(plain, &c); err != nil {
			return nil, err
		}
		cc := clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, AuthStyle: oauth2.AuthStyleInParams,
			TokenURL: ep.GraphLoginURL + "/" + url.PathEscape(c.Tenant) + "/oauth2/v2.0/token", Scopes: []string{ep.GraphURL + "/.default"}}
		ts = cc.TokenSource(bg)
	case PathGmail:
		var c GmailCredentials
		if err := json.Unmarshal(plain, &c); err != nil {
			return nil, err
		}
		if scopes == nil {
			scopes = gmailScopes
		}
		jc := jwt.Config{Email: c.ClientEmail, PrivateKey: []byte(c.PrivateKey), PrivateKeyID: c.PrivateKeyID,
			Scopes: scopes, TokenURL: ep.GoogleTokenURL, Subject: user}
		ts = jc.TokenSource(bg)
	default:
		return nil, fmt.Errorf("no token for %q", provider)
	}
	ts = oauth2.ReuseTokenSource(nil, ts)
	cache.m[key] = ts
	return ts, nil
}

// apiCall sends one request with the path's token and returns the status
// and (at most 1 MiB of) the body. Failures are classified: 2xx is nil;
// 400, 404 and 413 are permanent; the rest (throttling, server errors,
// refused tokens and permissions, which an administrator fixes) are
// temporary.
func apiCall(ctx context.Context, hc *http.Client, ts oauth2.TokenSource, method, u, ctype string, body io.Reader) ([]byte, error) {
	tok, err := ts.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("token: %d %s %s", re.Response.StatusCode, re.ErrorCode, oneLine(re.ErrorDescription, 200))
		}
		return nil, fmt.Errorf("token: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, &permanent{err.Error()}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	tok.SetAuthHeader(req)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	msg := fmt.Sprintf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, oneLine(apiErrorText(b), 300))
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		return nil, &permanent{msg}
	}
	return nil, errors.New(msg)
}

// apiErrorText is the message of a Graph or Google JSON error body.
func apiErrorText(b []byte) string {
	var e struct {
		Error struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return fmt.Sprintf("%v: %s", e.Error.Code, e.Error.Message)
	}
	return string(b)
}

// streamed runs write into a pipe, so a request body is produced while
// it is sent; the body's reader closing ends write.
func streamed(write func(w io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	return pr
}

func copyMessage(w io.Writer, open func() (io.ReadCloser, error)) error {
	b, err := open()
	if err != nil {
		return err
	}
	defer b.Close()
	_, err = io.Copy(w, b)
	return err
}

// viaGraph imports the message into the user's Inbox (or Sent Items).
func (h *Handback) viaGraph(ctx context.Context, it store.HandbackItem, item Item, open func() (io.ReadCloser, error), msgID string, recheck bool) (string, error) {
	ts, err := h.tokenSource(ctx, it.TenantID, PathGraph, "")
	if err != nil {
		return "", fmt.Errorf("graph: %w", err)
	}
	base := h.Endpoints.withDefaults().GraphURL + "/beta/users/" + url.PathEscape(item.User)
	if recheck && msgID != "" {
		q := url.Values{"$filter": {"internetMessageId eq '" + msgID + "'"}, "$select": {"id"}, "$top": {"1"}}
		b, err := h.apiCall(ctx, ts, http.MethodGet, base+"/messages?"+q.Encode(), "", nil)
		if err != nil {
			return "", fmt.Errorf("graph: %w", err)
		}
		var found struct {
			Value []struct{ ID string } `json:"value"`
		}
		if json.Unmarshal(b, &found) == nil && len(found.Value) > 0 {
			return "graph: already in the mailbox (" + oneLine(found.Value[0].ID, 100) + ")", nil
		}
	}
	folder := "inbox"
	if item.Sent {
		folder = "sentitems"
	}
	body := streamed(func(w io.Writer) error {
		enc := base64.NewEncoder(base64.StdEncoding, w)
		if err := copyMessage(enc, open); err != nil {
			return err
		}
		return enc.Close()
	})
	defer body.Close()
	b, err := h.apiCall(ctx, ts, http.MethodPost, base+"/mailFolders/"+folder+"/importMime", "text/plain", body)
	if err != nil {
		return "", fmt.Errorf("graph: %w", err)
	}
	var msg struct {
		ID     string `json:"id"`
		IsRead bool   `json:"isRead"`
	}
	json.Unmarshal(b, &msg)
	how := "graph: imported into " + folder + " as " + oneLine(msg.ID, 100)
	if (item.Seen || item.Sent) && !msg.IsRead && msg.ID != "" {
		// The message is in; a failure here costs its read state only.
		if _, err := h.apiCall(ctx, ts, http.MethodPatch, base+"/messages/"+url.PathEscape(msg.ID), "application/json",
			strings.NewReader(`{"isRead":true}`)); err != nil {
			how += "; read state not set: " + oneLine(err.Error(), 200)
		}
	}
	return how, nil
}

// viaGmail imports the message into the user's Gmail mailbox.
func (h *Handback) viaGmail(ctx context.Context, it store.HandbackItem, item Item, open func() (io.ReadCloser, error), msgID string, recheck bool) (string, error) {
	ts, err := h.tokenSource(ctx, it.TenantID, PathGmail, item.User)
	if err != nil {
		return "", fmt.Errorf("gmail: %w", err)
	}
	ep := h.Endpoints.withDefaults()
	user := url.PathEscape(item.User)
	if recheck && msgID != "" {
		q := url.Values{"q": {"rfc822msgid:" + strings.Trim(msgID, "<>")}, "maxResults": {"1"}}
		b, err := h.apiCall(ctx, ts, http.MethodGet, ep.GmailURL+"/gmail/v1/users/"+user+"/messages?"+q.Encode(), "", nil)
		if err != nil {
			return "", fmt.Errorf("gmail: %w", err)
		}
		var found struct {
			Messages []struct{ ID string } `json:"messages"`
		}
		if json.Unmarshal(b, &found) == nil && len(found.Messages) > 0 {
			return "gmail: already in the mailbox (" + oneLine(found.Messages[0].ID, 100) + ")", nil
		}
	}
	labels := []string{"INBOX"}
	if !item.Seen {
		labels = append(labels, "UNREAD")
	}
	if item.Sent {
		labels = []string{"SENT"}
	}
	meta, _ := json.Marshal(map[string]any{"labelIds": labels})
	boundary := multipart.NewWriter(io.Discard).Boundary()
	body := streamed(func(w io.Writer) error {
		mw := multipart.NewWriter(w)
		if err := mw.SetBoundary(boundary); err != nil {
			return err
		}
		p, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json; charset=UTF-8"}})
		if err != nil {
			return err
		}
		p.Write(meta)
		if p, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/rfc822"}}); err != nil {
			return err
		}
		if err := copyMessage(p, open); err != nil {
			return err
		}
		return mw.Close()
	})
	defer body.Close()
	q := url.Values{"uploadType": {"multipart"}, "internalDateSource": {"dateHeader"}, "neverMarkSpam": {"true"}, "processForCalendar": {"false"}}
	b, err := h.apiCall(ctx, ts, http.MethodPost, ep.GmailURL+"/upload/gmail/v1/users/"+user+"/messages/import?"+q.Encode(),
		"multipart/related; boundary="+boundary, body)
	if err != nil {
		return "", fmt.Errorf("gmail: %w", err)
	}
	var msg struct {
		ID string `json:"id"`
	}
	json.Unmarshal(b, &msg)
	return "gmail: imported with " + strings.Join(labels, ",") + " as " + oneLine(msg.ID, 100), nil
}
