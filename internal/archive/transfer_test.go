package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/store"
)

// thunderbirdMbox is an mbox as Thunderbird writes its local folders:
// "From - date" separators, X-Mozilla-Status headers, a body line
// starting with "From " escaped as ">From ", Japanese in ISO-2022-JP.
func thunderbirdMbox() string {
	return "From - Mon Nov 02 10:00:00 2026\n" +
		"X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\n" +
		"From: yamada@example.co.jp\nTo: sato@customer.example\nSubject: =?ISO-2022-JP?B?" + b64(iso2022jp("見積書の件")) + "?=\n" +
		"Date: Mon, 2 Nov 2026 10:00:00 +0900\nMIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\n\n" +
		iso2022jp("お見積もりを送ります。") + "\n>From the desk of Yamada\n\n" +
		"From - Tue Nov 03 11:00:00 2026\n" +
		"X-Mozilla-Status: 0000\n" +
		"From: alice@partner.example\nTo: yamada@example.co.jp\nSubject: second\nDate: Tue, 3 Nov 2026 11:00:00 +0000\n\nhello\n"
}

// Imported mail (an mbox as Thunderbird writes it, an .eml) is archived,
// marked imported, searchable, and never re-sent; an export as ZIP holds
// each message with a proof that checks, and an mbox export reads back.
func TestImportExport(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	res, err := h.svc.ImportMbox(ctx, h.tenant, "officer@example.co.jp", "Inbox", strings.NewReader(thunderbirdMbox()), 30<<20)
	if err != nil || res.Imported != 2 || len(res.Failed) != 0 {
		t.Fatalf("import: %+v %v", res, err)
	}
	if _, err := h.svc.ImportMbox(ctx, h.tenant, "x", "junk.txt", strings.NewReader("not mail\n"), 0); err == nil {
		t.Fatal("a file without From lines imported")
	}
	eml := "From: bob@example.net\r\nSubject: eml import\r\n\r\nbody\r\n"
	if _, err := h.svc.Import(ctx, h.tenant, "officer", "a.eml", []byte(eml), 10); err == nil {
		t.Fatal("message over the size limit imported")
	}
	if _, err := h.svc.Import(ctx, h.tenant, "officer", "a.eml", []byte(eml), 0); err != nil {
		t.Fatal(err)
	}
	hits, err := h.svc.Search(ctx, h.tenant, Query{Subject: "見積書"}, Page{})
	if err != nil || len(hits.Entries) != 1 {
		t.Fatalf("search: %v %v", hits, err)
	}
	e := hits.Entries[0]
	if !e.Imported || e.Received.Year() != 2026 || e.Received.Day() != 2 {
		t.Fatalf("entry %+v", e)
	}
	raw, err := h.svc.ReadMessage(ctx, e)
	if err != nil || !bytes.Contains(raw, []byte("\r\nFrom the desk")) || bytes.Contains(raw, []byte("X-Mozilla-Status: 0001\r\nX-Mozilla")) == false {
		t.Fatalf("stored %q %v", raw, err)
	}
	var meta Meta
	json.Unmarshal([]byte(e.Meta), &meta)
	if meta.Imported == nil || meta.Imported.By != "officer@example.co.jp" || meta.Imported.Source != "Inbox#1" {
		t.Fatalf("meta %+v", meta)
	}
	if err := h.svc.CheckResend(e); !errors.Is(err, ErrImported) {
		t.Fatalf("resend of imported: %v", err)
	}
	all, _ := h.svc.Search(ctx, h.tenant, Query{}, Page{})
	var zbuf bytes.Buffer
	if err := h.svc.Export(ctx, h.tenant, all.Entries, "zip", "", "officer", &zbuf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zbuf.Bytes()), int64(zbuf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		r, _ := f.Open()
		b, _ := io.ReadAll(r)
		files[f.Name] = b
	}
	var m Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || len(m.Messages) != 3 {
		t.Fatalf("manifest %v %+v", err, m)
	}
	for _, it := range m.Messages {
		var p Proof
		if err := json.Unmarshal(files[it.Proof], &p); err != nil {
			t.Fatal(err)
		}
		if err := CheckProof(p, files[it.File], tlog.EncodeKey(h.svc.PublicKey())); err != nil {
			t.Fatalf("%s: %v", it.ID, err)
		}
	}
	var mb bytes.Buffer
	if err := h.svc.Export(ctx, h.tenant, all.Entries, "mbox", "", "officer", &mb); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, store.ArchiveSettings{Enabled: true})
	res2, err := h2.svc.ImportMbox(ctx, h2.tenant, "x", "export.mbox", &mb, 0)
	if err != nil || res2.Imported != 3 {
		t.Fatalf("re-import of the export: %+v %v", res2, err)
	}
	back, _ := h2.svc.Search(ctx, h2.tenant, Query{Body: "desk"}, Page{})
	if len(back.Entries) != 1 {
		t.Fatal("escaped From line lost in the round trip")
	}
}
