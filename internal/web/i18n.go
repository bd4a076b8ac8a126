package web

import (
	"embed"
	"fmt"
	"net/http"
	"sort"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var localeFS embed.FS

// Languages the console speaks; the first is the fallback.
var languages = []language.Tag{language.English, language.Japanese}

type catalog struct {
	bundle  *i18n.Bundle
	matcher language.Matcher
	keys    map[string][]string // language -> message IDs (tests check ja covers en)
}

func loadCatalog() (*catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &catalog{bundle: b, matcher: language.NewMatcher(languages), keys: map[string][]string{}}
	for _, name := range []string{"en", "ja"} {
		raw, err := localeFS.ReadFile("locales/" + name + ".toml")
		if err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		f, err := b.ParseMessageFileBytes(raw, name+".toml")
		if err != nil {
			return nil, fmt.Errorf("locale %s: %w", name, err)
		}
		for _, m := range f.Messages {
			c.keys[name] = append(c.keys[name], m.ID)
		}
		sort.Strings(c.keys[name])
	}
	return c, nil
}

// lang picks the console language: the explicit choice (cookie), then the
// account's preference, then the browser's Accept-Language.
func (c *catalog) lang(r *http.Request, cookie, pref string) string {
	if ck, err := r.Cookie(cookie); err == nil && (ck.Value == "ja" || ck.Value == "en") {
		return ck.Value
	}
	if pref == "ja" || pref == "en" {
		return pref
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, _ := c.matcher.Match(tags...)
	if languages[i] == language.Japanese {
		return "ja"
	}
	return "en"
}

// translator localises message IDs for one language.
type translator struct {
	loc *i18n.Localizer
}

func (c *catalog) translator(lang string) translator {
	return translator{loc: i18n.NewLocalizer(c.bundle, lang, "en")}
}

// T returns the message for id; kv are template data pairs ("Count", 3).
// A missing message shows its ID, so a gap is visible but harmless.
func (t translator) T(id string, kv ...any) string {
	var data map[string]any
	if len(kv) > 1 {
		data = map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			data[fmt.Sprint(kv[i])] = kv[i+1]
		}
	}
	cfg := &i18n.LocalizeConfig{MessageID: id, TemplateData: data}
	if n, ok := data["Count"]; ok {
		cfg.PluralCount = n // English "1 message" / "2 messages"; Japanese has one form
	}
	s, err := t.loc.Localize(cfg)
	if err != nil && cfg.PluralCount != nil {
		// A message with one form for every count.
		cfg.PluralCount = nil
		s, err = t.loc.Localize(cfg)
	}
	if err != nil || s == "" {
		return id
	}
	return s
}
