package attachlink

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/signedlink"
)

// jst is how the notice shows times to Japanese readers.
var jst = time.FixedZone("JST", 9*3600)

// Notice is the text put at the top of the body (and in place of the
// attachments where no body text is left).
func Notice(lang, u string, l Link) string {
	var b strings.Builder
	if lang == "en" {
		b.WriteString("[Attachments as a download link]\r\nThe attachments of this message can be downloaded here:\r\n" + u + "\r\n")
		fmt.Fprintf(&b, "The link works until %s.", l.Expires.UTC().Format("2006-01-02 15:04 UTC"))
		if l.MaxDownloads > 0 {
			fmt.Fprintf(&b, " Downloads allowed: %d.", l.MaxDownloads)
		}
		b.WriteString("\r\nFiles:\r\n")
	} else {
		b.WriteString("【添付ファイルのダウンロードのお知らせ】\r\nこのメールの添付ファイルは、次のリンクからダウンロードできます。\r\n" + u + "\r\n")
		fmt.Fprintf(&b, "ダウンロード期限: %s", l.Expires.In(jst).Format("2006年01月02日 15:04 (JST)"))
		if l.MaxDownloads > 0 {
			fmt.Fprintf(&b, "　ダウンロード可能回数: %d 回", l.MaxDownloads)
		}
		b.WriteString("\r\nファイル:\r\n")
	}
	for _, f := range l.Files {
		fmt.Fprintf(&b, "  - %s (%s)\r\n", f.Name, humanSize(f.Size))
	}
	return b.String()
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Handler serves the download page. GET shows the link's files with one
// button each and never counts or sends anything (mail security scanners
// fetch the links in mail); POST with the token and a file index counts
// one download and sends the file. Mount it at the BaseURL's path.
type Handler struct {
	Blobs   blob.Store
	Records Records
	// Key returns the link signing key (signedlink.LoadKey).
	Key func(ctx context.Context) ([]byte, error)
	Now func() time.Time // nil: time.Now
	Log *slog.Logger
}

var texts = map[string]map[string]string{
	"ja": {
		"title": "添付ファイルのダウンロード", "from": "送信者", "subject": "件名", "expires": "ダウンロード期限",
		"left": "残りダウンロード回数", "download": "ダウンロード", "invalid": "このリンクは無効です。",
		"expired": "このリンクの有効期限が切れています。送信者にお問い合わせください。", "revoked": "このリンクは送信者によって無効にされました。",
		"limit": "ダウンロード可能回数に達しました。", "error": "ファイルを取得できませんでした。しばらくしてからやり直してください。",
	},
	"en": {
		"title": "Download attachments", "from": "From", "subject": "Subject", "expires": "Available until",
		"left": "Downloads left", "download": "Download", "invalid": "This link is not valid.",
		"expired": "This link has expired. Please ask the sender.", "revoked": "The sender has revoked this link.",
		"limit": "The download limit has been reached.", "error": "The file could not be read. Please try again later.",
	},
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{{index .T "title"}}</title></head>
<body><h1>{{index .T "title"}}</h1>
{{if .Err}}<p role="alert">{{.Err}}</p>{{else}}
<dl><dt>{{index .T "from"}}</dt><dd>{{.Link.Sender}}</dd><dt>{{index .T "subject"}}</dt><dd>{{.Link.Subject}}</dd>
<dt>{{index .T "expires"}}</dt><dd>{{.Expires}}</dd>{{if .Left}}<dt>{{index .T "left"}}</dt><dd>{{.Left}}</dd>{{end}}</dl>
<ul>{{range $i, $f := .Link.Files}}<li><form method="post"><input type="hidden" name="t" value="{{$.Token}}"><input type="hidden" name="f" value="{{$i}}">
{{$f.Name}} ({{$f.Size}} bytes) <button type="submit">{{index $.T "download"}}</button></form></li>{{end}}</ul>{{end}}
</body></html>
`))

type pageData struct {
	Lang, Token, Err, Expires, Left string
	T                               map[string]string
	Link                            Link
}

func lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "ja" {
		return l
	}
	al := strings.ToLower(r.Header.Get("Accept-Language"))
	if al != "" && !strings.HasPrefix(al, "ja") {
		return "en"
	}
	return "ja"
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

func (h *Handler) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'")
	w.WriteHeader(status)
	if err := page.Execute(w, d); err != nil {
		h.log().Warn("attachment link page", "err", err)
	}
}

// fail renders an error page; the reason is one of the texts' keys.
func (h *Handler) fail(w http.ResponseWriter, d pageData, status int, reason string) {
	d.Err = d.T[reason]
	d.Link = Link{}
	h.render(w, status, d)
}

func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, signedlink.ErrExpired), errors.Is(err, ErrExpired):
		return http.StatusGone, "expired"
	case errors.Is(err, ErrRevoked):
		return http.StatusGone, "revoked"
	case errors.Is(err, ErrLimit):
		return http.StatusGone, "limit"
	case errors.Is(err, signedlink.ErrTampered), errors.Is(err, signedlink.ErrMalformed), errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "invalid"
	}
	return http.StatusServiceUnavailable, "error"
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	d := pageData{Lang: lg, T: texts[lg]}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	tok := r.FormValue("t")
	if r.Method == http.MethodPost {
		tok = r.PostFormValue("t")
	}
	d.Token = tok
	key, err := h.Key(ctx)
	if err != nil {
		h.log().Error("attachment link key", "err", err)
		h.fail(w, d, http.StatusServiceUnavailable, "error")
		return
	}
	now := h.now()
	sl, err := signedlink.Verify(key, tok, now)
	if err == nil && sl.Action != signedlink.Download {
		err = signedlink.ErrTampered
	}
	if err != nil {
		st, reason := statusOf(err)
		h.fail(w, d, st, reason)
		return
	}
	l, err := h.Records.Get(ctx, sl.TenantID, sl.ItemID)
	if err == nil && l.Revoked {
		err = ErrRevoked
	}
	if err == nil && l.MaxDownloads > 0 && l.Downloads >= l.MaxDownloads {
		err = ErrLimit
	}
	if err != nil {
		st, reason := statusOf(err)
		h.fail(w, d, st, reason)
		return
	}
	if r.Method == http.MethodGet {
		d.Link = l
		d.Expires = l.Expires.UTC().Format("2006-01-02 15:04 UTC")
		if lg == "ja" {
			d.Expires = l.Expires.In(jst).Format("2006年01月02日 15:04 (JST)")
		}
		if l.MaxDownloads > 0 {
			d.Left = strconv.Itoa(l.MaxDownloads - l.Downloads)
		}
		h.render(w, http.StatusOK, d)
		return
	}
	i, err := strconv.Atoi(r.PostFormValue("f"))
	if err != nil || i < 0 || i >= len(l.Files) {
		h.fail(w, d, http.StatusBadRequest, "invalid")
		return
	}
	f := l.Files[i]
	// Open before counting, so a missing blob does not use up a download.
	body, err := h.Blobs.Open(ctx, f.BlobKey)
	if err != nil {
		h.log().Error("attachment link blob", "link", l.ID, "key", f.BlobKey, "err", err)
		h.fail(w, d, http.StatusServiceUnavailable, "error")
		return
	}
	defer body.Close()
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	if _, err := h.Records.Count(ctx, l.TenantID, l.ID, Download{At: now, File: f.Name, From: client}); err != nil {
		st, reason := statusOf(err)
		h.fail(w, d, st, reason)
		return
	}
	h.log().Info("attachment link download", "tenant", l.TenantID, "link", l.ID, "file", f.Name, "client", client)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, err := io.Copy(w, body); err != nil {
		h.log().Warn("attachment link download interrupted", "link", l.ID, "err", err)
	}
}
