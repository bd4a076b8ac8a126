package quarantine

import (
	"fmt"
	"html/template"
	"strings"
)

// digestStrings are a digest's fixed texts in one language.
type digestStrings struct {
	Lang, Subject, AdminSubject, Intro, AdminIntro, More       string
	From, SubjectCol, Date, Score, Rcpt                        string
	Release, ReleaseAllow, Block, Open, NoSubject, Footer, All string
}

var digestTexts = map[string]*digestStrings{
	"ja": {
		Lang:         "ja",
		Subject:      "[mailgate] 隔離メールのお知らせ (%d 件)",
		AdminSubject: "[mailgate] 隔離メールのお知らせ (管理者用、%d 件)",
		Intro:        "前回のお知らせ以降、次のメールが隔離されました。必要なメールは「受信する」で受け取れます。",
		AdminIntro:   "前回のお知らせ以降、テナントで次のメールが隔離されました。",
		More:         "ほかに %d 件あります。すべて管理画面で確認できます。",
		From:         "差出人", SubjectCol: "件名", Date: "日時", Score: "スコア", Rcpt: "宛先",
		Release:      "受信する",
		ReleaseAllow: "受信して差出人を許可",
		Block:        "差出人を拒否",
		Open:         "管理画面で開く",
		NoSubject:    "(件名なし)",
		Footer:       "このメールは mailgate が自動送信しています。リンクは各メールの保存期間が過ぎると無効になります。",
		All:          "隔離ボックスを開く",
	},
	"en": {
		Lang:         "en",
		Subject:      "[mailgate] Quarantine digest: %d held messages",
		AdminSubject: "[mailgate] Quarantine digest (administrator): %d held messages",
		Intro:        "These messages were quarantined since the last digest. Use \"Release\" to receive one.",
		AdminIntro:   "These messages of your organisation were quarantined since the last digest.",
		More:         "%d more are not listed; see them all in the console.",
		From:         "From", SubjectCol: "Subject", Date: "Date", Score: "Score", Rcpt: "Recipient",
		Release:      "Release",
		ReleaseAllow: "Release and allow sender",
		Block:        "Block sender",
		Open:         "Open in console",
		NoSubject:    "(no subject)",
		Footer:       "This message was sent automatically by mailgate. The links stop working when a message's retention ends.",
		All:          "Open the quarantine",
	},
}

type digestEntry struct {
	Name, Addr, Subject, Rcpt, Date, Score, Reason string
	Release, ReleaseAllow, Block, Open             string
}

type digestView struct {
	T       *digestStrings
	Admin   bool
	Total   int
	Shown   int
	Console string
	Entries []digestEntry
}

func (v digestView) More() string {
	if v.Total <= v.Shown {
		return ""
	}
	return fmt.Sprintf(v.T.More, v.Total-v.Shown)
}

// digestHTML escapes every value by context (html/template): subjects and
// names come from hostile senders. Inline styles only: mail readers drop
// <style> blocks and never run scripts.
var digestHTML = template.Must(template.New("digest").Parse(`<!DOCTYPE html>
<html lang="{{.T.Lang}}"><head><meta charset="utf-8"><title>{{.T.All}}</title></head>
<body style="font-family:sans-serif;font-size:14px;color:#222">
<p>{{if .Admin}}{{.T.AdminIntro}}{{else}}{{.T.Intro}}{{end}}</p>
<table cellpadding="6" cellspacing="0" border="1" style="border-collapse:collapse;border-color:#ccc">
<tr style="background:#f2f2f2"><th>{{.T.Date}}</th>{{if .Admin}}<th>{{.T.Rcpt}}</th>{{end}}<th>{{.T.From}}</th><th>{{.T.SubjectCol}}</th><th>{{.T.Score}}</th><th></th></tr>
{{range .Entries}}<tr>
<td style="white-space:nowrap">{{.Date}}</td>{{if $.Admin}}
<td>{{.Rcpt}}</td>{{end}}
<td>{{if .Name}}{{.Name}}<br>{{end}}&lt;{{.Addr}}&gt;</td>
<td>{{if .Subject}}{{.Subject}}{{else}}{{$.T.NoSubject}}{{end}}<br><small style="color:#666">{{.Reason}}</small></td>
<td>{{.Score}}</td>
<td style="white-space:nowrap"><a href="{{.Release}}">{{$.T.Release}}</a><br><a href="{{.ReleaseAllow}}">{{$.T.ReleaseAllow}}</a><br><a href="{{.Block}}">{{$.T.Block}}</a><br><a href="{{.Open}}">{{$.T.Open}}</a></td>
</tr>
{{end}}</table>
{{with .More}}<p>{{.}}</p>{{end}}
<p><a href="{{.Console}}">{{.T.All}}</a></p>
<p style="color:#666;font-size:12px">{{.T.Footer}}</p>
</body></html>
`))

func (v digestView) html() string {
	var b strings.Builder
	if err := digestHTML.Execute(&b, v); err != nil {
		// Only a template bug can get here; the text part still carries
		// everything.
		return ""
	}
	return b.String()
}

func (v digestView) text() string {
	var b strings.Builder
	t := v.T
	if v.Admin {
		b.WriteString(t.AdminIntro + "\n\n")
	} else {
		b.WriteString(t.Intro + "\n\n")
	}
	for i, e := range v.Entries {
		subj := e.Subject
		if subj == "" {
			subj = t.NoSubject
		}
		fmt.Fprintf(&b, "%d. %s\n", i+1, subj)
		from := "<" + e.Addr + ">"
		if e.Name != "" {
			from = e.Name + " " + from
		}
		fmt.Fprintf(&b, "   %s: %s\n", t.From, from)
		if v.Admin {
			fmt.Fprintf(&b, "   %s: %s\n", t.Rcpt, e.Rcpt)
		}
		fmt.Fprintf(&b, "   %s: %s   %s: %s\n", t.Date, e.Date, t.Score, e.Score)
		if e.Reason != "" {
			fmt.Fprintf(&b, "   %s\n", e.Reason)
		}
		fmt.Fprintf(&b, "   %s: %s\n   %s: %s\n   %s: %s\n   %s: %s\n\n",
			t.Release, e.Release, t.ReleaseAllow, e.ReleaseAllow, t.Block, e.Block, t.Open, e.Open)
	}
	if m := v.More(); m != "" {
		b.WriteString(m + "\n")
	}
	fmt.Fprintf(&b, "%s: %s\n\n-- \n%s\n", t.All, v.Console, t.Footer)
	return b.String()
}
