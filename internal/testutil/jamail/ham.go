package jamail

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// draft is a message before encoding.
type draft struct {
	kind        string
	fromName    string
	fromAddr    string
	replyTo     string
	subject     string
	text        string
	html        string // also sent as an HTML alternative when set
	attachments []string
	mailer      mailer
	// charsets the sender's software may use; the generator picks one.
	charsets []string
}

var greetings = []string{
	"いつもお世話になっております。",
	"いつも大変お世話になっております。",
	"平素より格別のご高配を賜り、厚く御礼申し上げます。",
	"お世話になっております。",
	"ご無沙汰しております。",
}

var closings = []string{
	"何卒よろしくお願いいたします。",
	"引き続きよろしくお願いいたします。",
	"ご確認のほど、よろしくお願い申し上げます。",
	"お忙しいところ恐縮ですが、よろしくお願いいたします。",
	"以上、よろしくお願いいたします。",
}

// business letter opening: "株式会社X\n営業部 佐藤様\n\n" + greeting + self-introduction.
func opening(r *rand.Rand, from, to person) string {
	s := to.co.ja + "\n" + to.dept + " " + to.sur.ja + "様\n\n"
	return s + pick(r, greetings) + "\n" + from.co.ja + "の" + from.sur.ja + "です。\n\n"
}

func closing(r *rand.Rand, from person) string {
	return "\n" + pick(r, closings) + "\n\n" + from.signature(r)
}

func personal(kind string, r *rand.Rand, from person, subject, text string) draft {
	return draft{kind: kind, fromName: from.fullName(), fromAddr: from.email, subject: subject, text: text,
		mailer: pick(r, mailers), charsets: []string{ISO2022JP, ISO2022JP, ISO2022JP, ShiftJIS, UTF8}}
}

// hamKinds are the legitimate mail the generator writes, with their weights.
var hamKinds = []struct {
	name   string
	weight int
	make   func(r *rand.Rand, now time.Time) draft
}{
	{"meeting", 12, hamMeeting},
	{"quote", 8, hamQuote},
	{"invoice", 8, hamInvoice},
	{"order", 7, hamOrder},
	{"minutes", 6, hamMinutes},
	{"thanks", 6, hamThanks},
	{"reply", 10, hamReply},
	{"internal", 10, hamInternal},
	{"it-notice", 5, hamITNotice},
	{"staff-change", 4, hamStaffChange},
	{"recruit", 4, hamRecruit},
	{"support", 5, hamSupport},
	{"newsletter", 6, hamNewsletter},
	{"delivery-notice", 4, hamDeliveryNotice},
	{"card-notice", 3, hamCardNotice},
	{"shop-order", 4, hamShopOrder},
	{"seminar", 4, hamSeminar},
}

func hamMeeting(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	d1 := now.AddDate(0, 0, 3+r.IntN(10))
	d2 := d1.AddDate(0, 0, 1+r.IntN(3))
	h1, h2 := 10+r.IntN(6), 13+r.IntN(4)
	topic := pick(r, []string{"新製品の仕様", "来期の予算案", "システム更改", "販売促進キャンペーン", "契約更新",
		"物流体制の見直し", "品質改善の取り組み", "共同開発の進め方", "展示会への出展"})
	subj := pick(r, []string{"お打ち合わせ日程のご相談", "【ご相談】打ち合わせ日程について", topic + "に関するお打ち合わせの件",
		"次回定例会議の日程調整", "Re: " + topic + "について"})
	place := pick(r, []string{"弊社会議室", "貴社", "オンライン（Teams）", "オンライン（Zoom）", "弊社大阪支店"})
	text := opening(r, from, to) +
		"先日は" + topic + "についてご説明いただき、ありがとうございました。\n" +
		"つきましては、詳細を詰めるためにお打ち合わせの機会をいただけますと幸いです。\n\n" +
		"以下の日程でご都合はいかがでしょうか。\n\n" +
		fmt.Sprintf("・%s %d:00～%d:00\n・%s %d:00～%d:00\n", jaDate(d1), h1, h1+1, jaDate(d2), h2, h2+1) +
		"\n場所：" + place + "\n所要時間は1時間程度を想定しております。\n" +
		"ご都合が合わない場合は、候補日をいくつかお知らせいただけますでしょうか。\n" + closing(r, from)
	return personal("meeting", r, from, subj, text)
}

func hamQuote(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	item := pick(r, []string{"業務用プリンター10台", "社内システム保守", "ノートPC 25台", "展示会ブース施工", "名刺印刷",
		"倉庫用ラック", "ウェブサイト改修", "清掃業務委託", "サーバー移行作業"})
	amount := (50 + r.IntN(3000)) * 1000
	subj := pick(r, []string{"お見積書送付のご案内", "【お見積り】" + item + "の件", "見積書をお送りします", "御見積書のご送付（" + item + "）"})
	text := opening(r, from, to) +
		"先日お問い合わせいただきました" + item + "につきまして、お見積書を作成いたしましたので\n添付にてお送りいたします。\n\n" +
		"■お見積金額：" + yen(amount) + "円（税別）\n■有効期限：発行日より30日間\n■納期：ご発注後" + fmt.Sprint(2+r.IntN(6)) + "週間\n\n" +
		"内容についてご不明な点がございましたら、お気軽にお問い合わせください。\nご検討のほど、よろしくお願いいたします。\n" + closing(r, from)
	d := personal("quote", r, from, subj, text)
	d.attachments = []string{"御見積書_" + from.co.ja + ".pdf"}
	return d
}

func hamInvoice(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	from.dept = "経理部"
	amount := (10 + r.IntN(900)) * 1100
	month := int(now.AddDate(0, -1, 0).Month())
	bank := pick(r, []string{"三井住友銀行 丸の内支店", "三菱UFJ銀行 本店", "みずほ銀行 大阪支店", "りそな銀行 新宿支店", "ゆうちょ銀行 〇一八店"})
	subj := pick(r, []string{fmt.Sprintf("%d月分ご請求書の送付について", month), "請求書送付のご案内", fmt.Sprintf("【%s】%d月度 請求書", from.co.ja, month)})
	due := now.AddDate(0, 1, 0)
	text := opening(r, from, to) +
		fmt.Sprintf("%d月分のご請求書をお送りいたします。\n添付ファイルにてご確認ください。\n\n", month) +
		"ご請求金額：" + yen(amount) + "円（税込）\n" +
		fmt.Sprintf("お支払期限：%d年%d月末日\n", due.Year(), int(due.Month())) +
		"お振込先：" + bank + " 普通 " + fmt.Sprintf("%07d", r.IntN(10000000)) + "\n口座名義：" + from.co.ja + "\n\n" +
		"なお、振込手数料は貴社にてご負担いただきますようお願いいたします。\n" +
		"行き違いでお支払い済みの場合は、何卒ご容赦ください。\n" + closing(r, from)
	d := personal("invoice", r, from, subj, text)
	d.attachments = []string{fmt.Sprintf("請求書_%d月分.pdf", month)}
	return d
}

func hamOrder(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	from.dept = "購買部"
	part := pick(r, []string{"ステンレスボルト M8", "制御基板 Rev.C", "梱包用段ボール", "LED照明ユニット", "コピー用紙 A4", "樹脂ケース"})
	qty := (1 + r.IntN(50)) * 100
	due := now.AddDate(0, 0, 14+r.IntN(20))
	subj := pick(r, []string{"発注のご連絡（" + part + "）", "注文書送付の件", "納期確認のお願い", "【発注】" + part})
	text := opening(r, from, to) +
		"標記の件、下記のとおり発注いたします。\n\n" +
		"品名：" + part + "\n数量：" + yen(qty) + "個\n希望納期：" + jaDate(due) + "\n納品先：弊社第二倉庫\n\n" +
		"注文書を添付いたしましたので、ご確認のうえ注文請書のご返送をお願いいたします。\n" +
		"納期に変更が生じる場合は、早めにご連絡いただけますと助かります。\n" + closing(r, from)
	d := personal("order", r, from, subj, text)
	d.attachments = []string{"注文書.pdf"}
	return d
}

func hamMinutes(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	to.co = from.co
	day := now.AddDate(0, 0, -1-r.IntN(4))
	subj := pick(r, []string{"議事録の共有", "【議事録】" + jaDate(day) + " 定例会議", "本日の会議の議事録です"})
	text := to.sur.ja + "さん\n\nお疲れさまです。" + from.sur.ja + "です。\n\n" + jaDate(day) + "の定例会議の議事録を共有します。\n\n" +
		"1. 前回の宿題の確認\n　・見積の再提出 → 完了\n　・顧客訪問の日程 → 来週中に調整\n" +
		"2. 今月の進捗\n　・売上は計画比" + fmt.Sprint(90+r.IntN(20)) + "％\n　・新規案件" + fmt.Sprint(1+r.IntN(5)) + "件\n" +
		"3. 次回までの対応\n　・資料の修正（担当：" + to.sur.ja + "）\n　・先方への回答（担当：" + from.sur.ja + "）\n\n" +
		"抜け漏れがあればご指摘ください。\n共有フォルダにも格納してあります。\n\n" + from.sur.ja
	d := personal("minutes", r, from, subj, text)
	d.charsets = []string{ISO2022JP, UTF8}
	return d
}

func hamThanks(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	subj := pick(r, []string{"本日のご来社のお礼", "先日はありがとうございました", "ご訪問のお礼", "展示会ご来場のお礼"})
	text := opening(r, from, to) +
		"本日はお忙しい中、貴重なお時間をいただきまして誠にありがとうございました。\n" +
		"いただいたご意見をもとに、社内で提案内容を検討いたします。\n\n" +
		"ご依頼いただいた資料につきましては、" + jaDate(now.AddDate(0, 0, 3)) + "までにお送りいたします。\n" +
		"今後ともご指導ご鞭撻のほど、よろしくお願い申し上げます。\n" + closing(r, from)
	return personal("thanks", r, from, subj, text)
}

func hamReply(r *rand.Rand, now time.Time) draft {
	from, to := newPerson(r), newPerson(r)
	topic := pick(r, []string{"資料送付の件", "お打ち合わせ日程のご相談", "仕様変更について", "納期について", "ご請求金額の確認",
		"サンプル品の件", "契約書の締結について"})
	answer := pick(r, []string{
		"承知いたしました。ご指定の日程で調整いたします。",
		"資料を拝受いたしました。社内で確認のうえ、改めてご連絡いたします。",
		"ご連絡ありがとうございます。その内容で問題ございません。",
		"確認が遅くなり申し訳ございません。修正版を本日中にお送りします。",
	})
	quoted := "> " + from.co.ja + "\n> " + from.sur.ja + "様\n>\n> " + pick(r, greetings) + "\n> " + to.co.ja + "の" + to.sur.ja +
		"です。\n>\n> " + topic + "につきまして、ご確認をお願いできますでしょうか。\n> よろしくお願いいたします。\n"
	text := to.co.ja + "\n" + to.sur.ja + "様\n\n" + pick(r, greetings) + "\n" + from.co.ja + "の" + from.sur.ja + "です。\n\n" +
		answer + "\n\n" + pick(r, closings) + "\n\n" + from.signature(r) + "\n\n" +
		fmt.Sprintf("-----Original Message-----\nFrom: %s <%s>\nSent: %d/%d/%d\nSubject: %s\n\n", to.fullName(), to.email,
			now.Year(), int(now.Month()), now.Day(), topic) + quoted
	return personal("reply", r, from, "RE: "+topic, text)
}

func hamInternal(r *rand.Rand, now time.Time) draft {
	from := newPerson(r)
	from.dept = "総務部"
	var subj, text string
	switch r.IntN(4) {
	case 0:
		y := now.Year()
		subj = "年末年始休業のお知らせ"
		text = "社員各位\n\nお疲れさまです。総務部の" + from.sur.ja + "です。\n\n" +
			fmt.Sprintf("年末年始の休業期間は、%d年12月28日（土）から%d年1月5日（日）までとなります。\n", y, y+1) +
			"休業期間中に届いた郵便物は、1月6日以降に順次配布いたします。\n" +
			"休業前に各自のパソコンのシャットダウンと、執務室の施錠をお願いします。\n\n以上"
	case 1:
		d := now.AddDate(0, 0, 10+r.IntN(20))
		subj = "【要対応】定期健康診断の受診について"
		text = "社員各位\n\n総務部の" + from.sur.ja + "です。\n今年度の定期健康診断を以下のとおり実施します。\n\n" +
			"日時：" + jaDate(d) + " 9:00～12:00\n場所：本社5階 大会議室\n\n" +
			"問診票は事前に記入し、当日ご持参ください。\n都合が悪い方は、総務部までご連絡ください。\n\n" + from.signature(r)
	case 2:
		subj = "社内懇親会のご案内"
		text = "皆さま\n\nお疲れさまです。" + from.sur.ja + "です。\n今期の締めくくりとして、社内懇親会を開催します。\n\n" +
			"日時：" + jaDate(now.AddDate(0, 0, 14)) + " 18:30～\n会場：駅前の居酒屋「和み」\n会費：3,000円\n\n" +
			"参加の可否を今週金曜日までにご返信ください。\n\n" + from.sur.ja
	default:
		subj = "オフィス移転に伴う住所変更のお知らせ"
		text = "関係各位\n\n" + pick(r, greetings) + "\n" + from.co.ja + "総務部です。\n\n" +
			"このたび弊社は下記住所へ移転することとなりましたので、お知らせいたします。\n\n新住所：" + pick(r, addresses) +
			"\n業務開始日：" + jaDate(now.AddDate(0, 1, 0)) + "\n\n電話番号・FAX番号に変更はございません。\n" +
			"今後とも変わらぬご愛顧を賜りますよう、お願い申し上げます。\n\n" + from.signature(r)
	}
	return personal("internal", r, from, subj, text)
}

// hamITNotice is the IT department's own notices: password expiry and
// maintenance, with links to the company's own intranet: the hard ham for
// phishing rules.
func hamITNotice(r *rand.Rand, now time.Time) draft {
	from := newPerson(r)
	from.dept = "情報システム部"
	host := "https://portal." + from.co.domain + "/"
	var subj, text string
	if r.IntN(2) == 0 {
		subj = "【情報システム部】パスワード有効期限のお知らせ"
		text = from.sur.ja + "様\n\n情報システム部です。\nお使いのアカウントのパスワード有効期限が" + fmt.Sprint(7+r.IntN(7)) +
			"日後に切れます。\n期限までに社内ポータルから変更をお願いします。\n\n変更手順：" + host + "password\n\n" +
			"※このメールは社内システムから自動送信されています。\n※不明な点はヘルプデスク（内線 1234）までお問い合わせください。"
	} else {
		d := now.AddDate(0, 0, 5+r.IntN(10))
		subj = "システムメンテナンスのお知らせ（" + jaDate(d) + "）"
		text = "社員各位\n\n情報システム部の" + from.sur.ja + "です。\n下記の日程で基幹システムのメンテナンスを実施します。\n\n" +
			"日時：" + jaDate(d) + " 20:00～翌2:00\n影響：勤怠システム、経費精算システムが利用できません\n\n" +
			"詳細は社内ポータルをご確認ください。\n" + host + "info/maintenance\n\nご不便をおかけしますが、ご協力をお願いいたします。"
	}
	return personal("it-notice", r, from, subj, text)
}

func hamStaffChange(r *rand.Rand, now time.Time) draft {
	from, to, next := newPerson(r), newPerson(r), newPerson(r)
	next.co, next.dept = from.co, from.dept
	subj := pick(r, []string{"担当者変更のお知らせ", "人事異動に伴う担当変更のご挨拶", "後任のご紹介"})
	text := opening(r, from, to) +
		"私事で恐縮ですが、" + jaDate(now.AddDate(0, 0, 20)) + "付で" + pick(r, []string{"名古屋支店", "本社経営企画部", "海外事業部"}) +
		"へ異動することとなりました。\n在任中は大変お世話になり、心より御礼申し上げます。\n\n" +
		"後任は同じ部署の" + next.fullName() + "が務めさせていただきます。\n" + next.sur.ja + "のメールアドレス：" + next.email + "\n\n" +
		"後日、改めて" + next.sur.ja + "とご挨拶に伺います。\n今後とも変わらぬお引き立てを賜りますよう、お願い申し上げます。\n" + closing(r, from)
	return personal("staff-change", r, from, subj, text)
}

func hamRecruit(r *rand.Rand, now time.Time) draft {
	from := newPerson(r)
	from.dept = "人事部"
	cand := newPerson(r)
	d := now.AddDate(0, 0, 7+r.IntN(7))
	subj := pick(r, []string{"【" + from.co.ja + "】二次面接のご案内", "面接日程のご連絡", "選考結果のご連絡"})
	text := cand.sur.ja + " " + cand.given.ja + "様\n\nこの度は弊社の求人にご応募いただき、誠にありがとうございます。\n" +
		from.co.ja + " 人事部の" + from.sur.ja + "です。\n\n書類選考の結果、ぜひ面接にお越しいただきたく、ご連絡いたしました。\n\n" +
		"日時：" + jaDate(d) + fmt.Sprintf(" %d:00～\n", 10+r.IntN(7)) + "場所：" + from.addr + "\n持ち物：筆記用具\n\n" +
		"ご都合が悪い場合は、お手数ですが本メールへの返信にてお知らせください。\n当日お会いできることを楽しみにしております。\n\n" + from.signature(r)
	return personal("recruit", r, from, subj, text)
}

func hamSupport(r *rand.Rand, now time.Time) draft {
	from := newPerson(r)
	from.dept = "カスタマーサポート課"
	cust := newPerson(r)
	id := fmt.Sprintf("%06d", r.IntN(1000000))
	subj := "Re: お問い合わせの件（受付番号：" + id + "）"
	text := cust.co.ja + "\n" + cust.sur.ja + "様\n\n" + "お問い合わせいただき、ありがとうございます。\n" + from.co.ja + " サポート窓口の" + from.sur.ja + "です。\n\n" +
		pick(r, []string{"ご指摘の不具合につきまして、調査の結果、設定画面の表示に問題があることが判明いたしました。\n次回のアップデートで修正いたします。",
			"ご依頼のライセンス追加につきまして、手続きが完了いたしました。\n管理画面からご確認いただけます。",
			"お問い合わせの件、製品の保証期間内のため無償にて修理いたします。\n着払いにて弊社までお送りください。"}) +
		"\n\nご不明な点がございましたら、受付番号を添えて本メールにご返信ください。\n\n" + from.signature(r)
	return personal("support", r, from, subj, text)
}

// hamNewsletter is opt-in marketing mail from a company the recipient
// deals with: HTML, an unsubscribe link, sales words; legitimate.
func hamNewsletter(r *rand.Rand, now time.Time) draft {
	co := companies[r.IntN(len(companies))]
	no := 100 + r.IntN(200)
	subj := fmt.Sprintf("【%s通信】Vol.%d %d月号", strings.TrimPrefix(strings.TrimSuffix(co.ja, "株式会社"), "株式会社"), no, int(now.Month()))
	url := "https://www." + co.domain + "/"
	items := []string{"新サービス「クラウド受発注」の提供を開始しました", "夏季休業のお知らせ", "導入事例：物流センターの省人化",
		"無料オンラインセミナーのご案内", "製品価格改定のお知らせ", "展示会出展のお知らせ", "スタッフコラム：働き方改革の現場から"}
	r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	var text, html strings.Builder
	text.WriteString("※本メールは、弊社とお名刺交換をさせていただいた方、メールマガジンにご登録いただいた方にお送りしています。\n\n")
	html.WriteString("<html><body><p>※本メールは、弊社とお名刺交換をさせていただいた方、メールマガジンにご登録いただいた方にお送りしています。</p>")
	for i, it := range items[:3] {
		link := fmt.Sprintf("%snews/%d%02d%02d.html", url, now.Year(), int(now.Month()), i+1)
		fmt.Fprintf(&text, "■%s\n%s\n\n", it, link)
		fmt.Fprintf(&html, "<h3>■%s</h3><p><a href=\"%s\">詳しくはこちら</a></p>", it, link)
	}
	foot := "配信停止をご希望の方は、以下のページからお手続きください。\n" + url + "mailmagazine/stop\n\n発行：" + co.ja + "\n" + pick(r, addresses)
	text.WriteString("――――――――――――――――――――\n" + foot)
	html.WriteString("<hr><p>" + strings.ReplaceAll(foot, "\n", "<br>") + "</p></body></html>")
	return draft{kind: "newsletter", fromName: co.ja, fromAddr: "info@mail." + co.domain, subject: subj, text: text.String(),
		html: html.String(), charsets: []string{UTF8, ISO2022JP}}
}

// hamDeliveryNotice is a real carrier's notice: links to the carrier's
// own domain.
func hamDeliveryNotice(r *rand.Rand, now time.Time) draft {
	type carrier struct{ name, from, url string }
	c := pick(r, []carrier{
		{"ヤマト運輸", "mail@kuronekoyamato.co.jp", "https://toi.kuronekoyamato.co.jp/cgi-bin/tneko"},
		{"佐川急便", "info@sagawa-exp.co.jp", "https://k2k.sagawa-exp.co.jp/p/sagawa/web/okurijoinput.jsp"},
		{"日本郵便", "delivery@post.japanpost.jp", "https://trackings.post.japanpost.jp/services/srv/search/"},
	})
	no := fmt.Sprintf("%04d-%04d-%04d", r.IntN(10000), r.IntN(10000), r.IntN(10000))
	shipper := companies[r.IntN(len(companies))].ja
	subj := pick(r, []string{"お届け予定のお知らせ", "【" + c.name + "】お荷物お届けのお知らせ", "配達完了のお知らせ"})
	text := "このメールは" + shipper + "様からのお荷物のお届け予定をお知らせするものです。\n\n" +
		"お届け予定日時：" + jaDate(now.AddDate(0, 0, 1)) + " 14時～16時\n伝票番号：" + no + "\n\n" +
		"お届け日時の変更は、下記ページから伝票番号を入力してお手続きください。\n" + c.url + "\n\n" +
		"※本メールは送信専用のアドレスから送信しています。ご返信いただいてもお答えできません。\n" + c.name + "株式会社"
	return draft{kind: "delivery-notice", fromName: c.name, fromAddr: c.from, subject: subj, text: text, charsets: []string{ISO2022JP, UTF8}}
}

// hamCardNotice is a real card issuer's usage notice.
func hamCardNotice(r *rand.Rand, now time.Time) draft {
	type issuer struct{ name, from, url string }
	c := pick(r, []issuer{
		{"三井住友カード", "statement@vpass.ne.jp", "https://www.smbc-card.com/mem/index.jsp"},
		{"楽天カード", "info@mail.rakuten-card.co.jp", "https://www.rakuten-card.co.jp/e-navi/"},
		{"JCBカード", "mail@qa.jcb.co.jp", "https://my.jcb.co.jp/Login"},
	})
	amount := (1 + r.IntN(300)) * 100
	subj := pick(r, []string{"ご利用のお知らせ【" + c.name + "】", "カードご利用代金確定のお知らせ", "【" + c.name + "】ご利用明細更新のお知らせ"})
	text := "いつも" + c.name + "をご利用いただきありがとうございます。\n\nお客様のカードご利用内容をお知らせします。\n\n" +
		"ご利用日：" + jaDate(now.AddDate(0, 0, -1)) + "\nご利用先：" + pick(r, []string{"コンビニエンスストア", "スーパーマーケット", "ガソリンスタンド", "オンラインショップ"}) +
		"\nご利用金額：" + yen(amount) + "円\n\n" +
		"ご利用明細は会員サイトでご確認いただけます。\n" + c.url + "\n\n" +
		"※本メールにお心当たりのない場合は、カード裏面の電話番号までご連絡ください。\n" + c.name + "株式会社"
	return draft{kind: "card-notice", fromName: c.name, fromAddr: c.from, subject: subj, text: text, charsets: []string{ISO2022JP, UTF8}}
}

func hamShopOrder(r *rand.Rand, now time.Time) draft {
	co := companies[r.IntN(len(companies))]
	no := fmt.Sprintf("%d-%06d", now.Year(), r.IntN(1000000))
	item := pick(r, []string{"ボールペン 10本セット", "A4クリアファイル 100枚", "USB-Cケーブル 2m", "デスクライト", "ホワイトボードマーカー"})
	price := (3 + r.IntN(60)) * 100
	subj := "【" + co.ja + " オンラインストア】ご注文ありがとうございます（注文番号：" + no + "）"
	text := "この度はご注文いただき、誠にありがとうございます。\n以下の内容でご注文を承りました。\n\n" +
		"注文番号：" + no + "\n商品名：" + item + "\n数量：1\n合計金額：" + yen(price) + "円（税込・送料込）\n\n" +
		"商品の発送準備が整い次第、発送完了のご連絡をいたします。\n注文履歴：https://store." + co.domain + "/mypage/orders\n\n" +
		co.ja + " オンラインストア\nhttps://store." + co.domain + "/"
	return draft{kind: "shop-order", fromName: co.ja + " オンラインストア", fromAddr: "order@store." + co.domain, subject: subj,
		text: text, charsets: []string{UTF8, ISO2022JP}}
}

func hamSeminar(r *rand.Rand, now time.Time) draft {
	from := newPerson(r)
	from.dept = "マーケティング部"
	d := now.AddDate(0, 0, 14+r.IntN(20))
	theme := pick(r, []string{"中小企業のためのDX入門", "インボイス制度への実務対応", "サイバーセキュリティ対策の基本", "生成AIの業務活用"})
	subj := "【無料ウェビナー】" + theme + "（" + jaDate(d) + "開催）"
	url := "https://www." + from.co.domain + "/seminar/"
	text := "お客様各位\n\n" + pick(r, greetings) + "\n" + from.co.ja + "でございます。\n\nこのたび、下記のとおり無料ウェビナーを開催いたします。\n\n" +
		"■テーマ：" + theme + "\n■日時：" + jaDate(d) + " 15:00～16:00\n■参加費：無料\n■定員：100名（先着順）\n\n" +
		"お申し込みはこちら\n" + url + "\n\nご多忙とは存じますが、ぜひご参加ください。\n\n" +
		"※今後のご案内が不要な方は、お手数ですが本メールにその旨ご返信ください。\n\n" + from.signature(r)
	d2 := personal("seminar", r, from, subj, text)
	d2.charsets = []string{ISO2022JP, UTF8}
	return d2
}
