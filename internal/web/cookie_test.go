package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/config"
)

// Over HTTPS the console's cookies carry the __Host- prefix with the
// attributes it requires; over plain HTTP (loopback demo) they cannot.
func TestCookiesHostPrefixedOverTLS(t *testing.T) {
	for _, tlsOn := range []bool{true, false} {
		s, err := New(Deps{Config: config.HTTPConfig{TLS: tlsOn}})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.setCookie(rec, sessionCookie, "v", 0)
		got := rec.Header().Get("Set-Cookie")
		if tlsOn {
			if !strings.HasPrefix(got, "__Host-mg_session=v") || !strings.Contains(got, "Secure") || !strings.Contains(got, "Path=/") ||
				strings.Contains(got, "Domain=") || !strings.Contains(got, "HttpOnly") {
				t.Errorf("TLS cookie: %s", got)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(&http.Cookie{Name: "__Host-mg_lang", Value: "ja"})
			if l := s.i18n.lang(req, s.cookieName(langCookie), ""); l != "ja" {
				t.Errorf("language cookie not read under its prefixed name: %s", l)
			}
		} else if !strings.HasPrefix(got, "mg_session=v") || strings.Contains(got, "Secure") {
			t.Errorf("plain cookie: %s", got)
		}
	}
}
