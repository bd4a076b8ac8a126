package jamail

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// spamKinds are the unwanted mail the generator writes, with their weights.
var spamKinds = []struct {
	name   string
	weight int
	make   func(r *rand.Rand, now time.Time) draft
}{
	{"ad-marked", 10, spamAdMarked},
	{"ad", 10, spamAd},
	{"dating", 8, spamDating},
	{"investment", 10, spamInvestment},
	{"phish-bank", 12, spamPhishBank},
	{"phish-shop", 10, spamPhishShop},
	{"phish-delivery", 10, spamPhishDelivery},
	{"phish-carrier", 8, spamPhishCarrier},
	{"phish-tax", 5, spamPhishTax},
	{"sextortion", 5, spamSextortion},
	{"fake-invoice", 6, spamFakeInvoice},
	{"b2b-pitch", 6, spamB2BPitch},
}

// throwaway domains spam sends from and links to.
var junkTLDs = []string{"xyz", "top", "shop", "icu", "buzz", "cn", "cc", "click", "online", "site", "info", "com"}

func junkDomain(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	n := 5 + r.IntN(6)
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b) + "." + pick(r, junkTLDs)
}

// lookalike returns a host imitating brand's domain: hyphenated ".co.jp"
// lookalikes, the brand's name under another TLD, or the real name as a
// subdomain of a junk domain.
func lookalike(r *rand.Rand, label string) string {
	switch r.IntN(5) {
	case 0:
		return label + "-co-jp." + pick(r, junkTLDs)
	case 1:
		return "www." + label + ".co.jp." + junkDomain(r)
	case 2:
		return label + "-" + pick(r, []string{"secure", "login", "account", "support", "verify"}) + "." + pick(r, junkTLDs)
	case 3:
		return label + ".jp-" + pick(r, []string{"member", "info", "check"}) + "." + pick(r, junkTLDs)
	}
	return junkDomain(r) // no brand in the name at all
}

func spamDraft(kind, fromName, fromAddr, subj, text, html string, r *rand.Rand) draft {
	return draft{kind: kind, fromName: fromName, fromAddr: fromAddr, subject: subj, text: text, html: html,
		charsets: []string{ShiftJIS, UTF8, UTF8, ISO2022JP}}
}

func randomUser(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6+r.IntN(6))
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

var products = []struct{ name, pitch string }{
	{"黒酢にんにく", "毎日の健康維持に。今なら初回限定980円（税込）でお試しいただけます。"},
	{"高濃度プラセンタ美容液", "たった2週間でハリとツヤを実感。モニター価格で大特価！"},
	{"育毛サプリメント", "飲むだけで自信を取り戻す。全額返金保証つき。"},
	{"ダイエットティー", "食事制限なしでマイナス10kg！？話題の成分を配合。"},
	{"ブランド腕時計", "正規品が最大80%OFF。在庫限りの特別セール。"},
}

func spamAdMarked(r *rand.Rand, now time.Time) draft {
	p := pick(r, products)
	dom := junkDomain(r)
	marker := pick(r, []string{"未承諾広告※", "未承諾広告※", "※未承諾広告", "未承諾広告 ※", "【未承諾広告※】"})
	subj := marker + pick(r, []string{p.name + "のご案内", "【期間限定】" + p.name + "が今だけ半額", "あなただけの特別なご案内"})
	text := "突然のメール失礼いたします。\n\n★☆★" + p.name + "★☆★\n\n" + p.pitch + "\n\n▼ご注文はこちら▼\nhttp://" + dom + "/lp/" + randomUser(r) +
		"\n\n※このメールは広告です。今後のメールを希望されない方は下記までご連絡ください。\n配信停止：http://" + dom + "/stop\n運営：" + pick(r, []string{"合同会社ライフプラス", "ヘルシーライフ事務局", "ビューティーネット"})
	return spamDraft("ad-marked", pick(r, []string{"健康通販", "ビューティー情報局", p.name + "事務局"}), randomUser(r)+"@"+dom, subj, text, "", r)
}

func spamAd(r *rand.Rand, now time.Time) draft {
	p := pick(r, products)
	dom := junkDomain(r)
	subj := pick(r, []string{"【本日限り】" + p.name + " 驚きの価格", "まだ間に合います！" + p.name, "★大反響★" + p.name + "が再入荷", "【激安】最大80%OFFセール開催中"})
	link := "http://" + dom + "/?id=" + randomUser(r)
	text := "★━━━━━━━━━━━━━━━━━★\n　" + p.name + "\n★━━━━━━━━━━━━━━━━━★\n\n" + p.pitch +
		"\n\n今すぐクリック↓↓↓\n" + link + "\n\n◆先着100名様限定◆\n◆送料無料◆\n\n配信停止は " + link + "&unsub=1"
	html := "<html><body><center><h1>" + p.name + "</h1><p><b>" + p.pitch + "</b></p><p><a href=\"" + link + "\"><img src=\"http://" + dom +
		"/img/banner.jpg\" alt=\"今すぐ購入\"></a></p><p><font size=1>配信停止は<a href=\"" + link + "&unsub=1\">こちら</a></font></p></center></body></html>"
	if r.IntN(2) == 0 {
		text = ""
	}
	return spamDraft("ad", pick(r, []string{"激安ショップ", "通販ステーション", "セール事務局"}), randomUser(r)+"@"+dom, subj, text, html, r)
}

func spamDating(r *rand.Rand, now time.Time) draft {
	dom := junkDomain(r)
	girl := pick(r, []string{"みゆ", "あやか", "りな", "ゆき", "まい"})
	age := 20 + r.IntN(15)
	subj := pick(r, []string{girl + "です♪覚えてますか？", "今夜会えませんか？", "【" + girl + "さんからメッセージが届いています】", "お返事待ってます…"})
	text := "こんにちは、" + girl + "（" + fmt.Sprint(age) + "歳）です。\n\nプロフィールを見て、優しそうな人だなと思ってメールしました。\n" +
		"最近引っ越してきたばかりで、近くに知り合いがいなくて寂しいです。\nよかったら今度お食事でもどうですか？\n\n" +
		"写真はここに載せてます♪\nhttp://" + dom + "/p/" + randomUser(r) + "\n\n※登録は無料です。ポイント購入で直接メッセージが送れます。"
	return spamDraft("dating", girl, randomUser(r)+"@"+dom, subj, text, "", r)
}

func spamInvestment(r *rand.Rand, now time.Time) draft {
	dom := junkDomain(r)
	amount := pick(r, []string{"月収100万円", "1日5分で月30万円", "元本保証で年利20%", "わずか3ヶ月で資産10倍"})
	subj := pick(r, []string{"【極秘】" + amount + "を実現した方法", "副業で" + amount + "！？", "仮想通貨で" + amount, "あなたに" + amount + "の権利が付与されました"})
	text := "突然のご連絡失礼いたします。\n\n" + amount + "を達成した投資手法を、今回特別に無料で公開します。\n\n" +
		"・スマホ1台でOK\n・知識ゼロでも大丈夫\n・すでに3,000人以上が実践中\n\n" +
		"参加枠は残りわずかです。今すぐLINEで友だち追加してください。\nhttps://" + dom + "/line/" + randomUser(r) + "\n\n" +
		"※本案内は一度限りです。"
	return spamDraft("investment", pick(r, []string{"投資アドバイザー 山本", "資産形成サポート", "副業プロジェクト事務局"}), randomUser(r)+"@"+dom, subj, text, "", r)
}

type brand struct {
	name  string // as mail shows it
	label string // the word look-alike domains use
}

var banks = []brand{
	{"三井住友カード", "smbc-card"}, {"三菱UFJ銀行", "mufg"}, {"みずほ銀行", "mizuhobank"}, {"ゆうちょ銀行", "jp-bank"},
	{"楽天カード", "rakuten-card"}, {"イオンカード", "aeon"}, {"JCBカード", "jcb"}, {"エポスカード", "eposcard"},
}

func phishLink(r *rand.Rand, b brand) string {
	return "https://" + lookalike(r, b.label) + "/" + pick(r, []string{"login", "verify", "account/confirm", "member/update", "auth"}) + "?id=" + randomUser(r)
}

func phishFrom(r *rand.Rand, b brand) string {
	switch r.IntN(3) {
	case 0:
		return "info@" + lookalike(r, b.label)
	case 1:
		return "no-reply@" + junkDomain(r)
	}
	return randomUser(r) + "@" + pick(r, []string{"gmail.com", "outlook.jp", "yahoo.co.jp"})
}

func spamPhishBank(r *rand.Rand, now time.Time) draft {
	b := pick(r, banks)
	link := phishLink(r, b)
	deadline := pick(r, []string{"24時間以内", "本日中", "48時間以内", jaDate(now.AddDate(0, 0, 2)) + "まで"})
	subj := pick(r, []string{
		"【" + b.name + "】ご利用確認のお願い",
		"【重要】" + b.name + "：お客様のアカウントが一時停止されました",
		b.name + "より緊急のお知らせ",
		"【" + b.name + "】本人確認のお願い",
		"【要返信】カードのご利用を一部制限しております",
	})
	body := pick(r, []string{
		"お客様のカードに第三者による不正利用の可能性がある取引を検知いたしました。\nお客様の安全を守るため、現在カードのご利用を一時的に制限しております。",
		"お客様のアカウントに対し、不審なログインが確認されました。\nセキュリティ保護のため、お客様のアカウントを一時停止しております。",
		"マネー・ローンダリング防止のため、お客様の取引目的等の確認をお願いしております。\nご回答がない場合、お取引を制限させていただきます。",
	})
	text := b.name + "をご利用いただき、ありがとうございます。\n\n" + body + "\n\n" +
		"以下のリンクよりログインし、" + deadline + "にご本人様確認のお手続きをお願いいたします。\n" + link + "\n\n" +
		"期限までにご確認いただけない場合、カードのご利用が停止されますのでご注意ください。\n\n" + b.name + "株式会社\n" +
		"Copyright (C) " + b.name + " All Rights Reserved."
	html := "<html><body><p>" + b.name + "をご利用いただき、ありがとうございます。</p><p>" + strings.ReplaceAll(body, "\n", "<br>") +
		"</p><p><a href=\"" + link + "\">ご本人様確認はこちら</a></p><p>期限（" + deadline + "）までにご確認いただけない場合、ご利用が停止されます。</p></body></html>"
	if r.IntN(2) == 0 {
		html = ""
	}
	return spamDraft("phish-bank", b.name, phishFrom(r, b), subj, text, html, r)
}

var shops = []brand{{"Amazon", "amazon"}, {"Amazon.co.jp", "amazon"}, {"楽天市場", "rakuten"}, {"Apple", "apple"},
	{"メルカリ", "mercari"}, {"えきねっと", "eki-net"}, {"PayPay", "paypay"}}

func spamPhishShop(r *rand.Rand, now time.Time) draft {
	b := pick(r, shops)
	link := phishLink(r, b)
	subj := pick(r, []string{
		b.name + "アカウントを利用停止しました",
		"【" + b.name + "】お支払い方法の更新が必要です",
		"【" + b.name + "】アカウント情報確認のお願い",
		b.name + "プライム会費のお支払いに問題があります",
		"お客様の" + b.name + "アカウントがロックされました",
	})
	text := b.name + "をご利用いただきありがとうございます。\n\n" +
		pick(r, []string{"お客様のアカウントで、登録されたお支払い方法が承認されませんでした。",
			"異常なログインが検出されたため、お客様のアカウントを保護のためロックしました。",
			"お客様のアカウント情報の一部が最新ではありません。"}) +
		"\n引き続きサービスをご利用いただくには、アカウント情報を更新してください。\n\n" +
		"▼アカウント情報を更新する\n" + link + "\n\n" +
		"24時間以内にご確認いただけない場合、アカウントは永久に停止されます。\n\n" + b.name + " カスタマーサービス"
	html := "<html><body><table><tr><td><h2>" + b.name + "</h2><p>お客様のアカウントを一時的に停止しました。</p><p>" +
		"<a href=\"" + link + "\">" + "https://www." + b.label + ".co.jp/account</a></p><p>24時間以内に情報を更新してください。</p></td></tr></table></body></html>"
	if r.IntN(2) == 0 {
		text = ""
	}
	return spamDraft("phish-shop", b.name, phishFrom(r, b), subj, text, html, r)
}

var carriers = []brand{{"ヤマト運輸", "kuronekoyamato"}, {"佐川急便", "sagawa"}, {"日本郵便", "japanpost"}, {"西濃運輸", "seino"}}

func spamPhishDelivery(r *rand.Rand, now time.Time) draft {
	b := pick(r, carriers)
	link := phishLink(r, b)
	subj := pick(r, []string{
		"【" + b.name + "】お荷物のお届けについて",
		"不在通知：お荷物を持ち帰りました",
		b.name + "：配達予定のお知らせ（要確認）",
		"【重要】お届け先住所に不備があります",
	})
	text := "お客様宛にお荷物のお届けにあがりましたが、不在の為持ち帰りました。\n" +
		pick(r, []string{"お届け先の住所に不備があり、お荷物をお届けできませんでした。\n", "", "再配達料金（330円）のお支払いが必要です。\n"}) +
		"下記よりご確認ください。\n\n" + link + "\n\n" +
		"※" + pick(r, []string{"3日以内", "本日中", "72時間以内"}) + "にお手続きがない場合、お荷物は返送されます。\n\n" + b.name
	return spamDraft("phish-delivery", b.name, phishFrom(r, b), subj, text, "", r)
}

var phoneCarriers = []brand{{"NTTドコモ", "docomo"}, {"au", "au-kddi"}, {"ソフトバンク", "softbank"}, {"楽天モバイル", "rakuten-mobile"}}

func spamPhishCarrier(r *rand.Rand, now time.Time) draft {
	b := pick(r, phoneCarriers)
	link := phishLink(r, b)
	subj := pick(r, []string{
		"【" + b.name + "】ご利用料金のお支払い確認ができておりません",
		"【" + b.name + "】回線停止のお知らせ",
		b.name + "ポイントの有効期限が近づいています",
	})
	text := "【" + b.name + "】\n\nいつも" + b.name + "をご利用いただきありがとうございます。\n" +
		pick(r, []string{"今月分のご利用料金のお支払いが確認できておりません。\nお支払いが確認できない場合、回線のご利用を停止させていただきます。",
			"お客様の保有ポイント（" + yen(3000+r.IntN(20000)) + "pt）の有効期限が本日までとなっております。\nポイントの交換手続きをお願いします。"}) +
		"\n\nお手続きはこちら：\n" + link + "\n\n" + b.name + " お客様センター"
	return spamDraft("phish-carrier", b.name, phishFrom(r, b), subj, text, "", r)
}

func spamPhishTax(r *rand.Rand, now time.Time) draft {
	b := pick(r, []brand{{"国税庁", "nta"}, {"ETC利用照会サービス", "etc-meisai"}, {"マイナポータル", "myna"}})
	link := phishLink(r, b)
	subj := pick(r, []string{
		"【" + b.name + "】未納税金のお知らせ",
		"【" + b.name + "】最終催告書",
		"【" + b.name + "】ご登録情報の確認のお願い",
	})
	text := "【" + b.name + "】\n\n" + pick(r, []string{
		"あなたの所得税（" + yen(10000+r.IntN(90000)) + "円）について、納付期限を過ぎても納付が確認できません。\n期限までに納付がない場合、法律に基づき財産の差押えを行います。",
		"お客様のアカウントは有効期限が切れました。\n引き続きサービスをご利用いただくには、登録情報の更新が必要です。",
	}) + "\n\n納付・確認はこちらから：" + link + "\n\n" + b.name
	return spamDraft("phish-tax", b.name, phishFrom(r, b), subj, text, "", r)
}

func spamSextortion(r *rand.Rand, now time.Time) draft {
	wallet := "bc1q" + randomUser(r) + randomUser(r) + randomUser(r)
	subj := pick(r, []string{"あなたのデバイスはハッキングされました", "最後の警告です", "支払いがなければ動画を公開します"})
	text := "こんにちは。\n\n私はプロのハッカーで、数ヶ月前にあなたのデバイスにアクセスしました。\n" +
		"あなたがアダルトサイトを閲覧している様子をカメラで録画しました。\n\n" +
		"この動画をあなたの連絡先全員に送られたくなければ、" + fmt.Sprint(1000+r.IntN(2000)) + "ドル相当のビットコインを以下のアドレスに送金してください。\n\n" +
		wallet + "\n\n48時間以内に支払いが確認できない場合、動画を公開します。\n警察に連絡しても無駄です。"
	d := spamDraft("sextortion", "", randomUser(r)+"@"+pick(r, []string{"gmail.com", "outlook.com", junkDomain(r)}), subj, text, "", r)
	d.charsets = []string{UTF8, ShiftJIS}
	return d
}

func spamFakeInvoice(r *rand.Rand, now time.Time) draft {
	co := companies[r.IntN(len(companies))]
	subj := pick(r, []string{"請求書の件", "【至急】お支払いのご確認", "Re: 請求書送付のご案内", "未払い請求について"})
	dom := junkDomain(r)
	text := "お世話になっております。\n\n請求書を添付いたしましたので、ご確認をお願いいたします。\n" +
		"本日中にお振込みいただけない場合、延滞金が発生いたします。\n\n確認はこちらからも可能です：https://" + dom + "/invoice/" + randomUser(r) + "\n\n" + co.ja + " 経理部"
	d := spamDraft("fake-invoice", co.ja+" 経理部", "invoice@"+dom, subj, text, "", r)
	d.attachments = []string{pick(r, []string{"請求書.html", "invoice_" + randomUser(r) + ".zip", "請求書.pdf.exe", "御請求書.htm"})}
	return d
}

func spamB2BPitch(r *rand.Rand, now time.Time) draft {
	dom := junkDomain(r)
	svc := pick(r, []string{"SEO対策", "ホームページ制作", "営業リスト", "補助金申請代行", "MEO対策"})
	subj := pick(r, []string{"【ご担当者様】" + svc + "のご提案", "御社の売上を3倍にする" + svc, "【完全成果報酬】" + svc + "のご案内"})
	text := "ご担当者様\n\n突然のご連絡失礼いたします。\n" + svc + "専門の" + pick(r, []string{"株式会社ネクストステージ", "ウェブマーケティング研究所", "合同会社グロース"}) + "でございます。\n\n" +
		"御社のホームページを拝見し、さらに集客を伸ばせる余地があると感じご連絡いたしました。\n\n" +
		"・初期費用0円\n・完全成果報酬\n・導入実績" + yen(1000+r.IntN(5000)) + "社以上\n\n" +
		"詳しい資料はこちらからダウンロードいただけます。\nhttps://" + dom + "/lp/\n\n" +
		"今後このようなご案内が不要な場合は、お手数ですが「配信停止」とご返信ください。"
	return spamDraft("b2b-pitch", svc+"のご案内", randomUser(r)+"@"+dom, subj, text, "", r)
}
