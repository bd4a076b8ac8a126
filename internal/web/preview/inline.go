package preview

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Bounds of the images shown from the message itself.
const (
	maxInlineImage = 4 << 20
	maxInlineTotal = 16 << 20
)

// inlineImages are the message's image parts that have a Content-ID, read
// during the walk, so that the HTML (which usually comes before them)
// can show them once the walk is done.
type inlineImages struct {
	left  int64
	byID  map[string]string // Content-ID → data: URI
	path  map[string]string // Content-ID → section number
	shown map[string]bool   // section numbers of images the document shows
}

// read keeps one image part when it is a raster image by its content and
// fits the bounds; it reads the whole body either way and returns its size.
func (im *inlineImages) read(l leaf, body io.Reader) (int64, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxInlineImage+1))
	if err != nil {
		return 0, err
	}
	n := int64(len(data))
	if n > maxInlineImage {
		rest, err := io.Copy(io.Discard, body)
		return n + rest, err
	}
	if n > im.left {
		return n, nil
	}
	// The declared type is not trusted: the bytes must be one of the
	// raster formats the document may show.
	switch ct := http.DetectContentType(data); ct {
	case "image/png", "image/gif", "image/jpeg", "image/webp":
		if im.byID == nil {
			im.byID, im.path = map[string]string{}, map[string]string{}
		}
		key := strings.ToLower(l.ContentID)
		if _, dup := im.byID[key]; dup {
			return n, nil
		}
		im.left -= n
		im.byID[key] = "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(data)
		im.path[key] = l.Path
	}
	return n, nil
}

// dataURI returns the data: URI for a cid: URL ("" when the message has
// no such image) and records the image as shown.
func (im *inlineImages) dataURI(src string) string {
	if im == nil || im.byID == nil {
		return ""
	}
	id := strings.TrimSpace(src[len("cid:"):])
	if u, err := url.PathUnescape(id); err == nil {
		id = u
	}
	key := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">"))
	uri := im.byID[key]
	if uri != "" {
		if im.shown == nil {
			im.shown = map[string]bool{}
		}
		im.shown[im.path[key]] = true
	}
	return uri
}
