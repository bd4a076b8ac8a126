package onboard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
)

// Check states.
const (
	OK   = "ok"   // as mailgate needs it
	Warn = "warn" // works, but should change
	Fail = "fail" // missing or wrong
)

// Check is what one DNS check found: the records published, what to
// publish instead, and the differences explained.
type Check struct {
	Key       string   `json:"key"`  // spf, dkim, dmarc, mx_ttl, mx, mta_sts
	Name      string   `json:"name"` // the DNS name looked up
	Status    string   `json:"status"`
	Published []string `json:"published,omitempty"`
	// Suggested are the records to publish, in zone-file syntax.
	Suggested []string `json:"suggested,omitempty"`
	Notes     []Text   `json:"notes,omitempty"`
}

// OK reports whether the check passed.
func (c Check) OK() bool { return c.Status == OK }

func (c *Check) note(en, ja string) { c.Notes = append(c.Notes, Text{en, ja}) }

// worse sets the status to s unless it is already worse.
func (c *Check) worse(s string) {
	if c.Status == Fail || (c.Status == Warn && s == OK) {
		return
	}
	c.Status = s
}

// TTLResolver tells the TTL of an answer (a *dnsx.Client).
type TTLResolver interface {
	TTL(ctx context.Context, name string, qtype uint16) (time.Duration, error)
}

// MaxSwitchTTL is the MX TTL the wizard asks for before the switch: a
// mistake at the switch is then undone everywhere within five minutes.
const MaxSwitchTTL = 300 * time.Second

func txt(name, value string) string { return fmt.Sprintf("%s. IN TXT %q", name, value) }

// lookupProblem explains a failed lookup other than "no such record".
func lookupProblem(c *Check, err error) bool {
	var de *net.DNSError
	if err == nil || (errors.As(err, &de) && de.IsNotFound) {
		return false
	}
	c.Status = Fail
	c.note("The lookup failed: "+err.Error()+". Check again in a moment.", "DNS の問い合わせに失敗しました: "+err.Error()+"。しばらくしてから再確認してください。")
	return true
}

// CheckSPF checks the domain's SPF record for mailgate's host (mail to the
// internet leaves through mailgate).
func CheckSPF(ctx context.Context, r dnsx.Resolver, domain, hostname string) Check {
	a := dkimsign.CheckSPF(ctx, r, domain, hostname)
	c := Check{Key: "spf", Name: a.Name, Status: OK, Published: a.Found}
	if _, err := r.LookupTXT(ctx, domain); lookupProblem(&c, err) {
		return c
	}
	switch {
	case len(a.Found) == 0:
		c.Status = Fail
		c.note("No SPF record: receivers cannot tell that mailgate may send for "+domain+".",
			"SPF レコードがありません。受信側は mailgate が "+domain+" のメールを送ってよいことを確認できません。")
		c.Suggested = []string{txt(a.Name, a.Suggested)}
	case len(a.Found) > 1:
		c.Status = Fail
		c.note(fmt.Sprintf("%d SPF records are published: with more than one, every receiver treats SPF as broken (RFC 7208 4.5, permerror). Merge them into one record.", len(a.Found)),
			fmt.Sprintf("SPF レコードが %d 個あります。複数あると受信側はすべて SPF エラー（RFC 7208 4.5 の permerror）として扱います。1 つにまとめてください。", len(a.Found)))
		c.Suggested = []string{txt(a.Name, mergeSPF(a.Found, hostname))}
	case !a.OK:
		c.Status = Fail
		c.note("The SPF record does not include mailgate ("+hostname+"): mail sent through mailgate fails SPF. Add a:"+hostname+" and keep the other mechanisms.",
			"SPF レコードに mailgate（"+hostname+"）が含まれていません。mailgate 経由のメールは SPF が失敗します。他の記述はそのままで a:"+hostname+" を追加してください。")
		c.Suggested = []string{txt(a.Name, a.Suggested)}
	}
	if len(a.Found) == 1 {
		f := strings.Fields(strings.ToLower(a.Found[0]))
		if last := f[len(f)-1]; last == "+all" || last == "all" {
			c.worse(Warn)
			c.note("The record ends with +all: it lets any server on the internet send as "+domain+". End it with ~all or -all.",
				"レコードが +all で終わっています。インターネット上のどのサーバも "+domain+" として送信できてしまいます。~all または -all にしてください。")
		}
	}
	return c
}

// mergeSPF joins several SPF records into one with mailgate's host first
// and one all mechanism at the end.
func mergeSPF(recs []string, hostname string) string {
	terms := []string{"a:" + hostname}
	seen := map[string]bool{"a:" + hostname: true, "include:" + hostname: true}
	all := "~all"
	for _, r := range recs {
		for _, t := range strings.Fields(r)[1:] {
			lt := strings.ToLower(strings.TrimLeft(t, "+"))
			if strings.HasSuffix(lt, "all") && len(lt) <= 4 {
				if lt == "-all" {
					all = lt
				}
				continue
			}
			if !seen[lt] {
				seen[lt] = true
				terms = append(terms, t)
			}
		}
	}
	return "v=spf1 " + strings.Join(terms, " ") + " " + all
}

// CheckDKIM turns the DKIM records of the domain (recs, looked up as
// results; nil recs: the domain does not sign yet) into the wizard's check.
func CheckDKIM(domain string, recs []dkimsign.Published, results []dkimsign.CheckResult) Check {
	c := Check{Key: "dkim", Name: "_domainkey." + domain, Status: OK}
	if len(recs) == 0 {
		c.Status = Warn
		c.note("mailgate does not sign mail of "+domain+" yet: set the domain's dkim.selector policy (Policy page, or mailgate policy set --domain "+domain+" dkim.selector=NAME) and its key records appear here.",
			"mailgate はまだ "+domain+" のメールに署名していません。ドメインの dkim.selector ポリシーを設定すると（ポリシー画面、または mailgate policy set --domain "+domain+" dkim.selector=NAME）、ここに鍵のレコードが表示されます。")
		c.Suggested = []string{"<selector>._domainkey." + domain + ". IN TXT \"v=DKIM1; k=rsa; p=...\""}
		return c
	}
	for i, p := range recs {
		c.Suggested = append(c.Suggested, p.Zone)
		if i < len(results) && !results[i].OK {
			c.Status = Fail
			c.note(p.Name+": "+results[i].Problem+". Publish the record as shown.", p.Name+": "+results[i].ProblemJA+"。表示のとおりに公開してください。")
		} else if i < len(results) {
			c.Published = append(c.Published, p.Name)
		}
	}
	return c
}

// CheckDMARC checks the domain's DMARC record; dkimOK says whether the
// DKIM records are published, which decides the policy suggested.
func CheckDMARC(ctx context.Context, r dnsx.Resolver, domain string, dkimOK bool) Check {
	a := dkimsign.CheckDMARC(ctx, r, domain, dkimOK)
	c := Check{Key: "dmarc", Name: a.Name, Status: OK, Published: a.Found}
	if _, err := r.LookupTXT(ctx, a.Name); lookupProblem(&c, err) {
		return c
	}
	switch {
	case len(a.Found) == 0:
		c.Status = Fail
		c.note("No DMARC record: receivers get no policy for mail that fails SPF and DKIM, and you get no reports. Start with the record shown.",
			"DMARC レコードがありません。SPF と DKIM に失敗したメールの扱いが受信側に伝わらず、レポートも届きません。表示のレコードから始めてください。")
		c.Suggested = []string{txt(a.Name, a.Suggested)}
	case len(a.Found) > 1:
		c.Status = Fail
		c.note(fmt.Sprintf("%d DMARC records are published: receivers then apply none (RFC 7489 6.6.3). Keep one.", len(a.Found)),
			fmt.Sprintf("DMARC レコードが %d 個あります。この場合受信側はどれも適用しません（RFC 7489 6.6.3）。1 つにしてください。", len(a.Found)))
		c.Suggested = []string{txt(a.Name, a.Suggested)}
	default:
		p := strings.ToLower(tag(a.Found[0], "p"))
		switch {
		case p == "":
			c.Status = Fail
			c.note("The DMARC record has no p= tag, so it is invalid. Publish the record shown.", "DMARC レコードに p= タグがなく無効です。表示のレコードを公開してください。")
			c.Suggested = []string{txt(a.Name, a.Suggested)}
		case p == "none" && dkimOK:
			c.Status = Warn
			c.note("p=none only watches: spoofed mail still reaches inboxes. SPF and DKIM now pass for mail through mailgate: once the aggregate reports show no legitimate sender failing, move to p=quarantine.",
				"p=none は監視のみで、なりすましメールもそのまま届きます。mailgate 経由のメールは SPF と DKIM に合格するようになったので、集計レポートで正規の送信元の失敗がないことを確認したら p=quarantine に移行してください。")
			c.Suggested = []string{txt(a.Name, strings.Replace(a.Found[0], tagText(a.Found[0], "p"), "p=quarantine", 1))}
		case p == "none":
			c.Status = Warn
			c.note("p=none only watches. Keep it while DKIM is not published, then move to p=quarantine.",
				"p=none は監視のみです。DKIM を公開するまではこのままにし、その後 p=quarantine に移行してください。")
		}
		if tag(a.Found[0], "rua") == "" {
			c.worse(Warn)
			c.note("No rua= address: you get no aggregate reports to see who sends as "+domain+".",
				"rua= の宛先がないため集計レポートが届かず、"+domain+" として送信しているサーバを把握できません。")
		}
	}
	return c
}

// tag returns the value of a DMARC tag.
func tag(rec, name string) string {
	for _, part := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tagText returns the tag as written in rec ("p = none").
func tagText(rec, name string) string {
	for _, part := range strings.Split(rec, ";") {
		k, _, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(part)
		}
	}
	return ""
}

// pointsHere reports whether the MX host is mailgate's hostname.
func pointsHere(mx *net.MX, hostname string) bool {
	return strings.EqualFold(strings.TrimSuffix(mx.Host, "."), strings.TrimSuffix(hostname, "."))
}

// CheckMXTTL checks the TTL of the domain's current MX records: at most
// MaxSwitchTTL before the switch, and the old TTL waited out after
// lowering it.
func CheckMXTTL(ctx context.Context, r dnsx.Resolver, domain, hostname string) Check {
	c := Check{Key: "mx_ttl", Name: domain, Status: OK}
	mxs, err := r.LookupMX(ctx, domain)
	if lookupProblem(&c, err) {
		return c
	}
	for _, m := range mxs {
		c.Published = append(c.Published, fmt.Sprintf("%s. IN MX %d %s", domain, m.Pref, m.Host))
	}
	if len(mxs) == 0 {
		c.note("The domain has no MX records yet: nothing to lower. Publish mailgate's MX with a TTL of 300 s at the last step.",
			"ドメインにはまだ MX レコードがありません。下げる TTL はありません。最後の手順で TTL 300 秒の mailgate の MX を公開してください。")
		return c
	}
	tr, ok := r.(TTLResolver)
	if !ok {
		c.Status = Warn
		c.note("The configured resolver does not report TTLs: check the MX TTL at your DNS provider (300 s or less).",
			"設定されたリゾルバは TTL を返しません。DNS 事業者の画面で MX の TTL を確認してください（300 秒以下）。")
		return c
	}
	ttl, err := tr.TTL(ctx, domain, dns.TypeMX)
	if lookupProblem(&c, err) {
		return c
	}
	secs := int(ttl / time.Second)
	c.Published = append(c.Published, fmt.Sprintf("TTL %d", secs))
	if ttl > MaxSwitchTTL {
		c.Status = Fail
		c.note(fmt.Sprintf("The MX TTL is %d s: resolvers may keep the old MX for that long after the switch. Lower it to 300 s or less at your DNS provider, then wait %d s (the old TTL) before switching.", secs, secs),
			fmt.Sprintf("MX の TTL が %d 秒です。切り替え後もリゾルバがその間は古い MX を使い続けることがあります。DNS 事業者の画面で 300 秒以下に下げ、切り替えの前に %d 秒（古い TTL）待ってください。", secs, secs))
		c.Suggested = []string{fmt.Sprintf("%s. 300 IN MX ...", domain)}
		return c
	}
	c.note(fmt.Sprintf("The MX TTL is %d s. If you just lowered it, wait the old TTL before switching.", secs),
		fmt.Sprintf("MX の TTL は %d 秒です。下げた直後であれば、切り替えの前に古い TTL の時間だけ待ってください。", secs))
	return c
}

// MXRecords are the MX records to publish for domain.
func MXRecords(domain, hostname string) []string {
	return []string{fmt.Sprintf("%s. 300 IN MX 10 %s.", domain, strings.TrimSuffix(hostname, "."))}
}

// CheckMX checks that the resolver sees mailgate as the domain's only MX.
func CheckMX(ctx context.Context, r dnsx.Resolver, domain, hostname string) Check {
	c := Check{Key: "mx", Name: domain, Status: OK, Suggested: MXRecords(domain, hostname)}
	mxs, err := r.LookupMX(ctx, domain)
	if lookupProblem(&c, err) {
		return c
	}
	var other []string
	here := false
	for _, m := range mxs {
		c.Published = append(c.Published, fmt.Sprintf("%s. IN MX %d %s", domain, m.Pref, m.Host))
		if pointsHere(m, hostname) {
			here = true
		} else {
			other = append(other, strings.TrimSuffix(m.Host, "."))
		}
	}
	switch {
	case len(mxs) == 0:
		c.Status = Fail
		c.note("The resolver sees no MX record for "+domain+" yet. Publish the record shown; if you just did, check again after a minute.",
			"リゾルバにはまだ "+domain+" の MX レコードが見えません。表示のレコードを公開してください。公開した直後なら 1 分ほどして再確認してください。")
	case !here:
		c.Status = Fail
		c.note("The MX still points to "+strings.Join(other, ", ")+": mail does not reach mailgate yet. Replace it with the record shown.",
			"MX はまだ "+strings.Join(other, ", ")+" を指しています。メールはまだ mailgate に届きません。表示のレコードに置き換えてください。")
	case len(other) > 0:
		c.Status = Fail
		c.note("Besides mailgate the MX also names "+strings.Join(other, ", ")+": senders that use it bypass mailgate's checks. Remove it.",
			"MX に mailgate 以外の "+strings.Join(other, ", ")+" も残っています。そちらに送る送信者は mailgate の検査を迂回します。削除してください。")
	}
	return c
}

// CheckMTASTS looks for the domain's MTA-STS policy (RFC 8461): with one,
// the policy must list mailgate's host before the switch, or senders that
// enforce it refuse to deliver to mailgate.
func CheckMTASTS(ctx context.Context, r dnsx.Resolver, domain, hostname string) Check {
	c := Check{Key: "mta_sts", Name: "_mta-sts." + domain, Status: OK}
	txts, err := r.LookupTXT(ctx, c.Name)
	if lookupProblem(&c, err) {
		return c
	}
	for _, t := range txts {
		if strings.HasPrefix(strings.TrimSpace(t), "v=STSv1") {
			c.Published = append(c.Published, t)
		}
	}
	if len(c.Published) == 0 {
		c.note("The domain has no MTA-STS policy: nothing to change.", "ドメインに MTA-STS ポリシーはありません。変更は不要です。")
		return c
	}
	c.Status = Warn
	c.Suggested = []string{"mx: " + strings.TrimSuffix(hostname, ".")}
	c.note("The domain has an MTA-STS policy: before the switch add the line shown to https://mta-sts."+domain+"/.well-known/mta-sts.txt and publish a new id= in the _mta-sts TXT record, or senders that enforce the policy will refuse to deliver to mailgate. Remove the old mx: lines after the switch.",
		"ドメインに MTA-STS ポリシーがあります。切り替えの前に https://mta-sts."+domain+"/.well-known/mta-sts.txt に表示の行を追加し、_mta-sts の TXT レコードの id= を更新してください。そうしないと、ポリシーを強制する送信者は mailgate への配送を拒否します。古い mx: 行は切り替え後に削除してください。")
	return c
}
