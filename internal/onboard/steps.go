package onboard

import (
	"fmt"
	"strconv"
)

// Instruction is one setting to make at the primary service: where the
// screen is, what it looks like and what to enter, with mailgate's values
// filled in.
type Instruction struct {
	Title  Text    `json:"title"`
	Screen Text    `json:"screen"` // where to go and what the screen shows, in words
	Values []Value `json:"values"`
	Notes  []Text  `json:"notes,omitempty"`
}

// Value is one field of a screen and what to enter in it.
type Value struct {
	Field Text   `json:"field"`
	Value string `json:"value"`
}

// exchangeOnlineNets are Exchange Online's sending networks as Microsoft
// publishes them for connectors and firewalls.
const exchangeOnlineNets = "40.92.0.0/15, 40.107.0.0/16, 52.100.0.0/14, 104.47.0.0/16"

// Instructions are the settings of the primary service for domain.
func Instructions(service string, f Facts, domain string) []Instruction {
	certName := f.CertName
	certNote := []Text(nil)
	if certName == "" {
		certName = f.Hostname
		certNote = []Text{{
			"mailgate presents no certificate when it delivers yet: set [delivery] client_cert_file to a certificate for " + f.Hostname + " (publicly trusted), or Microsoft 365 cannot identify mailgate by it.",
			"mailgate は配送時にまだ証明書を提示していません。[delivery] client_cert_file に " + f.Hostname + " の（公的に信頼される）証明書を設定してください。設定しないと Microsoft 365 は証明書で mailgate を識別できません。"}}
	}
	relay := []Text(nil)
	if f.RelayPort == 0 {
		relay = append(relay, Text{
			"mailgate has no outbound listener ([outbound] listen): mail from the primary service to the internet cannot go through it until one is configured.",
			"mailgate に送信用リスナ（[outbound] listen）がありません。設定するまで、メールサービスからインターネットへのメールは mailgate を経由できません。"})
	} else if f.RelayPort != 25 && service != Other {
		relay = append(relay, Text{
			fmt.Sprintf("The service connects to smart hosts on port 25, and mailgate's outbound listener is on port %d: give it an address of its own on port 25.", f.RelayPort),
			fmt.Sprintf("このサービスはスマートホストのポート 25 に接続しますが、mailgate の送信用リスナはポート %d です。ポート 25 で待ち受ける専用のアドレスを用意してください。", f.RelayPort)})
	}
	switch service {
	case M365:
		return []Instruction{
			{
				Title: Text{"Inbound connector from mailgate", "mailgate からの受信コネクタ"},
				Screen: Text{
					"Exchange admin center → Mail flow → Connectors → Add a connector. Connection from: Partner organization; connection to: Office 365. On \"Authenticating sent email\" choose \"By verifying that the subject name on the certificate that the sending server presents matches this domain\", then on \"Security restrictions\" check \"Reject email messages if they aren't sent over TLS\" and \"Reject email messages if they aren't sent from within this IP address range\".",
					"Exchange 管理センター → メール フロー → コネクタ → コネクタを追加。接続元: パートナー組織、接続先: Office 365。「送信メールの認証」で「送信サーバーが提示する証明書のサブジェクト名がこのドメインと一致することを確認する」を選び、「セキュリティ制限」で「TLS で送信されていない場合はメッセージを拒否する」と「この IP アドレス範囲内から送信されていない場合はメッセージを拒否する」をオンにします。"},
				Values: []Value{
					{Text{"Name", "名前"}, "mailgate inbound"},
					{Text{"Certificate subject name", "証明書のサブジェクト名"}, certName},
					{Text{"IP addresses", "IP アドレス"}, f.IPList()},
				},
				Notes: certNote,
			},
			{
				Title: Text{"Outbound connector to mailgate (smart host)", "mailgate への送信コネクタ（スマートホスト）"},
				Screen: Text{
					"Exchange admin center → Mail flow → Connectors → Add a connector. Connection from: Office 365; connection to: Partner organization. Use of connector: \"Only when email messages are sent to these domains\" with *; routing: \"Route email through these smart hosts\"; security: \"Always use Transport Layer Security (TLS)\" with \"Issued by a trusted certificate authority (CA)\". The wizard ends with a validation message to an outside address.",
					"Exchange 管理センター → メール フロー → コネクタ → コネクタを追加。接続元: Office 365、接続先: パートナー組織。コネクタの使用:「これらのドメインにメールを送信する場合のみ」に * を指定、ルーティング:「これらのスマート ホストを介してメールをルーティングする」、セキュリティ:「常に TLS を使用する」と「信頼された証明機関 (CA) によって発行された」。最後に外部アドレスへの検証メールを送ります。"},
				Values: []Value{
					{Text{"Name", "名前"}, "mailgate outbound"},
					{Text{"Domains", "ドメイン"}, "*"},
					{Text{"Smart host", "スマート ホスト"}, f.Hostname},
					{Text{"Networks to allow on mailgate's relay (Relay networks)", "mailgate のリレーで許可するネットワーク（リレー許可）"}, exchangeOnlineNets},
				},
				Notes: relay,
			},
			{
				Title: Text{"Enhanced Filtering for Connectors", "コネクタの拡張フィルター"},
				Screen: Text{
					"Microsoft Defender portal → Email & collaboration → Policies & rules → Threat policies → Enhanced filtering. Open the inbound connector from mailgate, choose \"Automatically detect and skip the last IP address\" and apply it to the entire organization: Microsoft 365 then judges SPF and sender reputation on the sender's own address, not mailgate's.",
					"Microsoft Defender ポータル → メールとコラボレーション → ポリシーとルール → 脅威ポリシー → 拡張フィルター。mailgate からの受信コネクタを開き、「最後の IP アドレスを自動的に検出してスキップする」を選んで組織全体に適用します。これで Microsoft 365 は mailgate ではなく送信元のアドレスで SPF と評価を判断します。"},
				Values: []Value{{Text{"Connector", "コネクタ"}, "mailgate inbound"}},
			},
			{
				Title: Text{"mailgate as a trusted ARC sealer", "mailgate を信頼された ARC シーラーに登録"},
				Screen: Text{
					"Microsoft Defender portal → Email & collaboration → Policies & rules → Threat policies → Email authentication settings → ARC → Add trusted ARC sealers. The list shows the sealing domains Microsoft 365 trusts the authentication results of.",
					"Microsoft Defender ポータル → メールとコラボレーション → ポリシーとルール → 脅威ポリシー → メール認証の設定 → ARC → 信頼された ARC シーラーを追加。Microsoft 365 が認証結果を信頼する封印ドメインの一覧が表示されます。"},
				Values: []Value{{Text{"Trusted ARC sealer", "信頼された ARC シーラー"}, f.Sealer}},
				Notes:  arcNotes(f),
			},
			{
				Title: Text{"The domain as Authoritative", "ドメインを「権限あり」に"},
				Screen: Text{
					"Exchange admin center → Mail flow → Accepted domains → " + domain + ": the domain type must be \"Authoritative\" (every recipient is a mailbox in Microsoft 365), so that mail to unknown users is refused instead of relayed.",
					"Exchange 管理センター → メール フロー → 承認済みドメイン → " + domain + "。ドメインの種類を「権限あり」にします（受信者はすべて Microsoft 365 のメールボックス）。存在しない宛先へのメールが中継されず拒否されます。"},
				Values: []Value{{Text{"Domain", "ドメイン"}, domain}, {Text{"Domain type", "ドメインの種類"}, "Authoritative"}},
			},
		}
	case Google:
		return []Instruction{
			{
				Title: Text{"Inbound gateway", "受信ゲートウェイ"},
				Screen: Text{
					"Google Admin console → Apps → Google Workspace → Gmail → Spam, phishing and malware → Inbound gateway → Configure. Enter mailgate's addresses under Gateway IPs, check \"Automatically detect external IP\", \"Reject all mail not from gateway IPs\" and \"Require TLS for connections from the email gateways listed above\", then under \"Message Tagging\" check \"Message is considered spam if the following header regexp matches\" and enter the header.",
					"Google 管理コンソール → アプリ → Google Workspace → Gmail → 迷惑メール、フィッシング、不正なソフトウェア → 受信ゲートウェイ → 設定。ゲートウェイの IP に mailgate のアドレスを入力し、「外部 IP を自動的に検出する」「ゲートウェイ IP 以外からのメールをすべて拒否する」「上記のメール ゲートウェイからの接続に TLS を必須とする」をオンにします。「メッセージのタグ付け」で「次のヘッダーの正規表現に一致する場合、メッセージを迷惑メールとみなす」をオンにしてヘッダーを入力します。"},
				Values: []Value{
					{Text{"Gateway IPs", "ゲートウェイの IP"}, f.IPList()},
					{Text{"Header regexp", "ヘッダーの正規表現"}, "^" + f.SpamHeader + ": " + f.SpamValue + "$"},
				},
			},
			{
				Title: Text{"Outbound gateway (mail to the internet through mailgate)", "送信ゲートウェイ（インターネット宛てを mailgate 経由に）"},
				Screen: Text{
					"Google Admin console → Apps → Google Workspace → Gmail → Routing → Outbound gateway: enter mailgate's host name and save. Gmail then hands every message to the internet to mailgate on port 25; mailgate relays it for the networks Google sends from.",
					"Google 管理コンソール → アプリ → Google Workspace → Gmail → ルーティング → 送信ゲートウェイ。mailgate のホスト名を入力して保存します。Gmail はインターネット宛てのメールをすべてポート 25 で mailgate に渡し、mailgate は Google の送信元ネットワークからのメールを中継します。"},
				Values: []Value{
					{Text{"Outbound gateway", "送信ゲートウェイ"}, f.Hostname},
					{Text{"Networks to allow on mailgate's relay (Relay networks)", "mailgate のリレーで許可するネットワーク（リレー許可）"}, "the ranges in _spf.google.com"},
				},
				Notes: relay,
			},
		}
	}
	port := "25"
	if f.RelayPort != 0 {
		port = strconv.Itoa(f.RelayPort)
	}
	return []Instruction{
		{
			Title: Text{"Accept mail from mailgate only", "mailgate からのメールだけを受け取る"},
			Screen: Text{
				"On the mail server of " + domain + ": accept mail for the domain on port 25 from mailgate's addresses only (firewall or the server's client restrictions), so that nobody bypasses mailgate's checks by connecting to the server directly.",
				domain + " のメールサーバで、ポート 25 のこのドメイン宛てのメールを mailgate のアドレスからだけ受け取るようにします（ファイアウォールまたはサーバのクライアント制限）。サーバへ直接接続して mailgate の検査を迂回されないようにするためです。"},
			Values: []Value{{Text{"mailgate's addresses", "mailgate のアドレス"}, f.IPList()}},
		},
		{
			Title: Text{"mailgate as the relay host", "mailgate を中継ホストに"},
			Screen: Text{
				"On the same server: send mail to the internet through mailgate (Postfix: relayhost; Exchange Server: a send connector with a smart host), and allow the server's address on mailgate's Relay networks page or give it a relay login.",
				"同じサーバで、インターネット宛てのメールを mailgate 経由で送ります（Postfix: relayhost、Exchange Server: スマートホストを指定した送信コネクタ）。サーバのアドレスを mailgate の「リレー許可」に登録するか、リレー用のログインを作成してください。"},
			Values: []Value{{Text{"Relay host", "中継ホスト"}, "[" + f.Hostname + "]:" + port}},
			Notes:  relay,
		},
	}
}

// arcNotes say what listing mailgate as a sealer needs: the sealing key
// published in DNS, or sealing turned on first.
func arcNotes(f Facts) []Text {
	if f.ARC == nil {
		return []Text{{
			"mailgate seals the copies it delivers only with [arc] seal = true in its configuration (an operator's setting). Until then Microsoft 365 finds no ARC seal of mailgate's to trust: turn it on and publish the key first.",
			"mailgate が配送するメールに ARC シールを付けるのは、設定ファイルで [arc] seal = true のときだけです（運用者の設定）。それまでは Microsoft 365 が信頼できる mailgate の ARC シールはありません。先に有効にして鍵を公開してください。"}}
	}
	return []Text{{
		"The sealing key must be published in DNS first: a TXT record named " + f.ARC.Name + " with the text " + f.ARC.Value,
		"先に封印鍵を DNS に公開してください。TXT レコード名 " + f.ARC.Name + "、値 " + f.ARC.Value}}
}
