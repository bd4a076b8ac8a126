package web

import (
	"bytes"
	"html/template"
	"io/fs"
	"net/url"
	"regexp"
	"testing"
)

// A query string written into a template after "?" is escaped a second
// time by html/template ("offset%3d50"): every URL with a query is built by
// link from url.Values instead.
func TestTemplatesBuildQueriesWithLink(t *testing.T) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	bad := regexp.MustCompile(`(?:href|src|action)="[^"]*[?&]\{\{`)
	for _, n := range names {
		b, _ := fs.ReadFile(templateFS, n)
		for _, m := range bad.FindAll(b, -1) {
			t.Errorf("%s: %s... builds a query in the template; use {{link \"/path\" .Values}}", n, m)
		}
	}
}

func TestLinkEncodesOnce(t *testing.T) {
	tpl := template.Must(template.New("x").Funcs(template.FuncMap{"link": link}).Parse(`<a href="{{link .P .Q}}">`))
	cases := []struct {
		p    string
		q    url.Values
		want string
	}{
		{"/quarantine", url.Values{"offset": {"50"}, "q": {"請求 書&x=1"}}, `<a href="/quarantine?offset=50&amp;q=%E8%AB%8B%E6%B1%82&#43;%E6%9B%B8%26x%3D1">`},
		{"/tracking", nil, `<a href="/tracking">`},
		// Only same-origin absolute paths.
		{"//evil.test/x", url.Values{"a": {"1"}}, `<a href="#">`},
		{"javascript:alert(1)", nil, `<a href="#">`},
		{"/a?b=1", url.Values{"c": {"2"}}, `<a href="#">`},
	}
	for _, c := range cases {
		var b bytes.Buffer
		if err := tpl.Execute(&b, map[string]any{"P": c.p, "Q": c.q}); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("link(%q, %v) = %s, want %s", c.p, c.q, b.String(), c.want)
		}
	}
}
