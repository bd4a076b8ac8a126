package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/preview"
)

// previewOptions are the preview options of a quarantined copy in the
// console: links in the sandboxed frame lead to quarantineLink.
func previewOptions(itemID string, remoteImages bool) preview.Options {
	return preview.Options{AllowRemoteImages: remoteImages, LinkURL: func(target string) string {
		return linkPageURL(itemID, target)
	}}
}

func linkPageURL(itemID, target string) string {
	return "/quarantine/" + url.PathEscape(itemID) + "/link?u=" + url.QueryEscape(target)
}

type qlinkData struct {
	Item store.QuarantineItem
	// Link is the link asked about; nil when none was: the page then lists
	// every link of the copy.
	Link  *preview.LinkInfo
	Links []qlinkEntry
}

type qlinkEntry struct {
	preview.Link
	URL string // this page for the link
}

// quarantineLink shows where a link of a quarantined copy leads before the
// reader leaves the console: the full target, its host in ASCII and Unicode
// form, a warning when the link's text shows another host, and a plain
// link onwards. Only links the copy itself shows are described (an http,
// https or mailto target: the preview keeps no other), so the page cannot
// be made to vouch for an address of someone else's choosing.
func (s *Server) quarantineLink(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	it, raw, err := s.openItem(ctx, p, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := qlinkData{Item: it}
	target := r.URL.Query().Get("u")
	if target == "" {
		v, err := preview.Render(ctx, strings.NewReader(string(raw)), preview.Options{})
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		for _, l := range v.Links {
			d.Links = append(d.Links, qlinkEntry{Link: l, URL: linkPageURL(it.ID, l.Target)})
		}
	} else {
		info, err := preview.InspectLink(ctx, strings.NewReader(string(raw)), target, preview.Options{})
		if errors.Is(err, preview.ErrNoLink) {
			err = store.ErrNotFound
		}
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		d.Link = &info
	}
	v := s.newView(r, p, "qlink_title")
	v.Data = d
	s.render(w, http.StatusOK, "qlink", v)
}
