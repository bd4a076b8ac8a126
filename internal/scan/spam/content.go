package spam

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Content rules: evidence that needs no training and keeps its fixed
// weight whatever the model says (Rule.Fixed). Each is rare in ordinary
// mail and strong when present, and none appears in the public English
// corpora the shipped model learns from, so a learned weight would be
// zero.

// GTUBE is the Generic Test for Unsolicited Bulk Email: a message carrying
// it must be treated as certain spam by every filter (the anti-spam
// equivalent of the EICAR test file).
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// CertainPoints are the points of a rule that decides on its own: Combine
// gives 100 % whenever one fired.
const CertainPoints = 100.0

// hasGTUBE looks for the GTUBE string in every text part (alternatives
// and attachments included) and the combined text.
func hasGTUBE(m *mailtext.Message) bool {
	if strings.Contains(m.Text, GTUBE) || strings.Contains(m.Subject, GTUBE) {
		return true
	}
	for i := range m.Parts {
		if strings.Contains(m.Parts[i].Text, GTUBE) {
			return true
		}
	}
	return false
}

// unsolicitedAd reports the marker Japanese law (特定電子メール法, the Act
// on Regulation of Transmission of Specified Electronic Mail, in its
// earlier opt-out form) required at the start of the Subject of
// unsolicited advertising: "未承諾広告※". Senders of bulk advertising
// still use it; ordinary mail never does. Spaces, brackets and the
// position of "※" vary.
func unsolicitedAd(subjectFolded string) bool {
	s := strings.Join(strings.Fields(subjectFolded), "")
	if strings.Contains(s, "未承諾広告※") || strings.Contains(s, "※未承諾広告") {
		return true
	}
	s = strings.TrimLeft(s, "【[(（<〈《「『")
	return strings.HasPrefix(s, "未承諾広告")
}

// jpBrand is an organisation Japanese phishing imitates: the names its
// mail is signed with (folded: NFKC, lower case), the words look-alike
// host names are made of, and the registrable domains it really uses.
type jpBrand struct {
	names   []string
	labels  []string
	domains []string
}

var jpBrands = []jpBrand{
	{[]string{"三井住友", "smbc", "vpass"}, []string{"smbc", "vpass", "smbc-card"}, []string{"smbc.co.jp", "smbc-card.com", "vpass.ne.jp", "smfg.co.jp", "smbc-cf.com"}},
	{[]string{"三菱ufj", "mufg"}, []string{"mufg", "bk-mufg"}, []string{"mufg.jp", "bk.mufg.jp"}},
	{[]string{"みずほ"}, []string{"mizuho", "mizuhobank"}, []string{"mizuhobank.co.jp", "mizuho-fg.co.jp", "mizuho-sc.com"}},
	{[]string{"りそな"}, []string{"resona", "resonabank"}, []string{"resonabank.co.jp", "resona-gr.co.jp"}},
	{[]string{"ゆうちょ", "日本郵便", "郵便局"}, []string{"jp-bank", "yucho", "japanpost", "jppost", "post-japan"}, []string{"japanpost.jp"}},
	{[]string{"楽天"}, []string{"rakuten", "rakuten-card", "rakuten-bank"}, []string{"rakuten.co.jp", "rakuten-card.co.jp", "rakuten.com", "rakuten.ne.jp", "rakuten-bank.co.jp", "rakuten-sec.co.jp", "rakuten.jp"}},
	{[]string{"amazon", "アマゾン"}, []string{"amazon", "amaz0n", "amazom"}, []string{"amazon.co.jp", "amazon.com", "amazon.jp", "media-amazon.com", "ssl-images-amazon.com", "amazon-adsystem.com"}},
	{[]string{"ヤマト運輸", "クロネコ"}, []string{"kuronekoyamato", "kuroneko", "yamato-transport"}, []string{"kuronekoyamato.co.jp", "yamato-hd.co.jp"}},
	{[]string{"佐川急便"}, []string{"sagawa", "sagawa-exp"}, []string{"sagawa-exp.co.jp"}},
	{[]string{"西濃運輸"}, []string{"seino"}, []string{"seino.co.jp"}},
	{[]string{"ドコモ", "docomo"}, []string{"docomo", "nttdocomo"}, []string{"docomo.ne.jp", "nttdocomo.co.jp", "docomo.jp"}},
	{[]string{"ソフトバンク", "softbank"}, []string{"softbank"}, []string{"softbank.jp", "softbank.ne.jp", "softbank.co.jp"}},
	{[]string{"kddi", "au pay", "auかんたん決済"}, []string{"kddi", "au-kddi"}, []string{"au.com", "kddi.com", "auone.jp", "ezweb.ne.jp"}},
	{[]string{"楽天モバイル"}, []string{"rakuten-mobile"}, []string{"rakuten.co.jp", "mobile.rakuten.co.jp"}},
	{[]string{"イオン"}, []string{"aeon", "aeoncard"}, []string{"aeon.co.jp", "aeon.com", "aeonbank.co.jp"}},
	{[]string{"jcb"}, []string{"jcb", "myjcb"}, []string{"jcb.co.jp", "jcb.jp"}},
	{[]string{"エポス"}, []string{"epos", "eposcard"}, []string{"eposcard.co.jp", "0101.co.jp"}},
	{[]string{"セゾン"}, []string{"saison", "saisoncard"}, []string{"saisoncard.co.jp", "saison.co.jp"}},
	{[]string{"アメリカン・エキスプレス", "american express"}, []string{"amex", "americanexpress"}, []string{"americanexpress.com", "aexp.com"}},
	{[]string{"メルカリ"}, []string{"mercari"}, []string{"mercari.com", "mercari.jp"}},
	{[]string{"paypay"}, []string{"paypay"}, []string{"paypay.ne.jp", "paypay-bank.co.jp", "paypay-card.co.jp"}},
	{[]string{"えきねっと"}, []string{"eki-net", "ekinet"}, []string{"eki-net.com", "jreast.co.jp"}},
	{[]string{"国税庁", "税務署"}, []string{"nta", "e-tax"}, []string{"nta.go.jp"}},
	{[]string{"etc利用照会", "etcマイレージ"}, []string{"etc-meisai", "etc-mileage"}, []string{"etc-meisai.jp", "smile-etc.jp"}},
	{[]string{"マイナポータル"}, []string{"myna", "mynaportal"}, []string{"myna.go.jp"}},
	{[]string{"apple id"}, []string{"apple", "appleid", "icloud"}, []string{"apple.com", "icloud.com"}},
	{[]string{"東京電力"}, []string{"tepco"}, []string{"tepco.co.jp"}},
}

// Japanese phishing phrasing, folded, in groups: a lure combines a demand
// with a threat or a deadline, so two groups must match.
var jpPhishPhrases = [][]string{
	// the account or card is restricted
	{"利用停止", "一時停止", "停止されました", "停止いたします", "停止させていただきます", "ご利用を制限", "利用制限", "ロックされ", "凍結",
		"アカウントが停止", "回線停止", "永久に停止", "ご利用を一時的に制限", "ご利用が停止"},
	// verify or update your details
	{"本人確認", "ご本人様確認", "お客様情報の確認", "登録情報の確認", "登録情報の更新", "情報を更新", "情報の更新",
		"お支払い方法の更新", "支払い方法を更新", "支払い方法の更新", "カード情報", "取引目的", "再認証", "セキュリティ認証", "ログインして"},
	// the parcel could not be delivered
	{"不在の為持ち帰り", "不在のため持ち帰", "持ち帰りました", "お届けできませんでした", "住所に不備", "再配達料金", "返送されます"},
	// suspicious activity was seen
	{"不正利用", "不審なログイン", "第三者による", "異常なログイン", "不正アクセス", "不審な取引"},
	// money is owed
	{"未納", "未払い", "お支払いが確認でき", "差押え", "差し押さえ", "最終催告", "有効期限が切れ", "ポイントの有効期限"},
	// now
	{"24時間以内", "48時間以内", "72時間以内", "本日中に", "至急", "期限までに", "3日以内"},
}

// jpSuffixes are the second-level names under .jp that look-alike hosts
// copy ("amazon.co.jp.example.xyz").
var jpSuffixes = []string{"co.jp", "ne.jp", "or.jp", "go.jp", "ac.jp", "ad.jp", "ed.jp", "lg.jp", "gr.jp"}

// jpLookalikeHost reports whether host imitates a Japanese name while not
// being under .jp: a ".co.jp"-style pair inside the name
// ("amazon.co.jp.example.xyz", "smbc.co.jp-secure.top"), or "co-jp" in a
// label ("amazon-co-jp.example").
func jpLookalikeHost(host string) bool {
	host = strings.ToLower(strings.Trim(host, "."))
	if host == "" || strings.HasSuffix(host, ".jp") {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	for _, sfx := range jpSuffixes {
		if strings.Contains(host, "."+sfx+".") || strings.Contains(host, "."+sfx+"-") || strings.HasPrefix(host, sfx+".") {
			return true
		}
		if strings.Contains(host, strings.Replace(sfx, ".", "-", 1)) {
			return true
		}
	}
	return false
}

// hostParts splits a host name into its dot- and hyphen-separated words
// and their hyphenated pairs ("smbc-card.example" gives "smbc", "card",
// "smbc-card", "example").
func hostParts(host string) map[string]bool {
	out := map[string]bool{}
	for _, label := range strings.Split(host, ".") {
		out[label] = true
		words := strings.Split(label, "-")
		for i, w := range words {
			out[w] = true
			if i > 0 {
				out[words[i-1]+"-"+w] = true
			}
		}
	}
	return out
}

func (b jpBrand) owns(host string) bool {
	rd := regDomain(host)
	for _, d := range b.domains {
		if rd == d || host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// nameIn returns the first of the brand's names s contains, "" for none.
func (b jpBrand) nameIn(s string) string {
	for _, n := range b.names {
		if strings.Contains(s, n) {
			return n
		}
	}
	return ""
}

// imitatedBy reports whether host, whose hostParts are parts, is made of
// one of the brand's words but is not the brand's.
func (b jpBrand) imitatedBy(host string, parts map[string]bool) bool {
	for _, l := range b.labels {
		if parts[l] {
			return !b.owns(host)
		}
	}
	return false
}

// linkHosts returns the host names of the message's links: HTML links and
// URLs in the text.
func linkHosts(m *mailtext.Message) []string {
	text := m.Text
	seen := map[string]bool{}
	var out []string
	add := func(raw string) {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return
		}
		if h := strings.ToLower(strings.Trim(u.Hostname(), ".")); h != "" && !seen[h] && len(out) < 50 {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, l := range m.HTMLLinks {
		add(l.URL)
	}
	for rest := text; len(out) < 50; {
		i := strings.Index(rest, "http")
		if i < 0 {
			break
		}
		rest = rest[i:]
		end := 0
		for end < len(rest) && isURLByte(rest[end]) {
			end++
		}
		add(rest[:end])
		rest = rest[max(end, 4):]
	}
	return out
}

// japaneseRules are the rules for Japanese spam and phishing, on the
// folded text (see fold). JP_PHISH needs the brand where phishing puts it,
// in the Subject or the sender's name: a supplier's invoice that names its
// bank in the body is not mail from that bank.
func japaneseRules(m *mailtext.Message, add func(sym string, pts float64, why string)) {
	subject, sender := fold(m.Subject), ""
	if len(m.From) > 0 {
		sender = fold(m.From[0].Name)
	}
	// The whole text is folded only when a brand check needs it.
	text := ""
	full := func() string {
		if text == "" {
			text = subject + "\n" + sender + "\n" + fold(m.Text)
		}
		return text
	}
	if unsolicitedAd(subject) {
		add("JP_UNSOLICITED_AD", 5, "Subject marked 未承諾広告※ (unsolicited advertising)")
	}
	hosts := linkHosts(m)
	fromHost := ""
	if len(m.From) > 0 {
		fromHost = addrDomain(m.From[0].Addr)
	}
	for _, h := range append([]string{fromHost}, hosts...) {
		if jpLookalikeHost(h) {
			add("JP_LOOKALIKE_DOMAIN", 2.5, h+" imitates a .jp name")
			break
		}
	}
	// Brand checks, cheapest first: the look-alike needs a host made of a
	// brand's words (only then is the body searched for the brand's name);
	// the phishing rule needs the brand in the Subject or sender name
	// (only then is the body searched for the phrasing).
	all := append([]string{fromHost}, hosts...)
	parts := make([]map[string]bool, len(all))
	for i, h := range all {
		parts[i] = hostParts(h)
	}
	for _, b := range jpBrands {
		for i, h := range all {
			if h == "" || !b.imitatedBy(h, parts[i]) {
				continue
			}
			if n := b.nameIn(full()); n != "" {
				add("BRAND_LOOKALIKE_DOMAIN", 2.5, h+" imitates "+n)
			}
			break
		}
		named := b.nameIn(subject)
		if named == "" {
			named = b.nameIn(sender)
		}
		if named == "" || b.owns(fromHost) || phishGroups(full()) < 2 {
			continue
		}
		for _, h := range hosts {
			if !b.owns(h) {
				add("JP_PHISH", 4, named+" mail demanding action links to "+h)
				break
			}
		}
	}
}

// phishGroups counts the groups of jpPhishPhrases that text matches.
func phishGroups(text string) int {
	n := 0
	for _, g := range jpPhishPhrases {
		for _, p := range g {
			if strings.Contains(text, p) {
				n++
				break
			}
		}
	}
	return n
}
