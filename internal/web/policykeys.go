package web

// policyKey documents one policy setting for the console's policy page
// (docs/inbound.md, docs/spam.md and docs/quarantine.md are the full
// reference). Values lists the accepted words when they are a closed set.
type policyKey struct {
	Key, Default, Values string
	EN, JA               string
}

// policyKeys are the settings the policy page offers, grouped by check.
var policyKeys = []policyKey{
	{"spam.tag_at", "90", "0–100", "Tag the subject at this spam score (%).", "このスパムスコア（%）以上で件名にタグを付けます。"},
	{"spam.quarantine_at", "off", "0–100", "Quarantine at this spam score.", "このスコア以上で隔離します。"},
	{"spam.reject_at", "off", "0–100", "Refuse during SMTP at this spam score.", "このスコア以上は SMTP 受信時に拒否します。"},
	{"spam.tag", "[SPAM!!]", "", "The subject tag, e.g. [MEIWAKU!!].", "件名に付けるタグ（例: [MEIWAKU!!]）。"},
	{"spam.dnsbl", "", "", "DNS block list zones for the sender's IP, comma-separated.", "送信元 IP を照会する DNSBL ゾーン（カンマ区切り）。"},
	{"spam.feedback_spam_address", "", "", "Mail forwarded to this address is learned as spam.", "このアドレスに転送されたメールをスパムとして学習します。"},
	{"spam.feedback_ham_address", "", "", "Mail forwarded to this address is learned as not spam.", "このアドレスに転送されたメールを非スパムとして学習します。"},
	{"lists.priority", "address", "address, domain", "Which list decides first: the address's or the domain's.", "アドレスのリストとドメインのリストのどちらを優先するか。"},
	{"lists.deny_action", "discard", "discard, reject, quarantine", "What a deny entry without its own action does.", "アクション指定のない拒否エントリの動作。"},
	{"dmarc.enforce", "true", "true, false", "Honour the sender domain's DMARC reject and quarantine policies.", "送信ドメインの DMARC ポリシー（reject / quarantine）に従います。"},
	{"auth.own_domain_action", "quarantine", "quarantine, reject, tag, header", "Unauthenticated mail from outside claiming one of your own domains.", "自ドメインを名乗る外部からの未認証メールの扱い。"},
	{"structure.unscannable_action", "quarantine", "quarantine, reject, discard, tempfail, header", "MIME that cannot be fully read.", "完全に解析できない MIME 構造のメールの扱い。"},
	{"av.infected_body_action", "discard", "discard, quarantine, reject, tempfail, strip", "A virus in the message body.", "本文にウイルスがあるメールの扱い。"},
	{"av.unscannable_action", "quarantine", "quarantine, reject, discard, tempfail, header", "Archives beyond the inspection budget (zip bombs).", "検査上限を超えるアーカイブ（ZIP 爆弾など）の扱い。"},
	{"av.encrypted_action", "header", "header, quarantine, reject", "Encrypted archives that cannot be scanned.", "スキャンできない暗号化アーカイブの扱い。"},
	{"av.scan_text_messages", "false", "true, false", "Also give ClamAV messages that are only text (for phishing or spam signatures).", "本文テキストだけのメールも ClamAV で検査します（フィッシング・スパム用シグネチャ向け）。"},
	{"av.notify_recipient", "false", "true, false", "Also warn each recipient whose copy was changed or dropped.", "ウイルスで変更・破棄されたメールの受信者にも通知します。"},
	{"notify.admin", "", "", "Administrator address warned about every virus.", "ウイルス検知を通知する管理者アドレス。"},
	{"bec.threshold", "50", "0–100", "Impersonation score at which bec.action applies.", "なりすましスコアがこの値以上で bec.action を適用します。"},
	{"bec.action", "tag", "tag, quarantine, reject, header", "What happens to suspected impersonation.", "なりすましの疑いがあるメールの扱い。"},
	{"bec.tag", "[Suspicious]", "", "Subject tag for impersonation, e.g. [要注意].", "なりすまし疑いの件名タグ（例: [要注意]）。"},
	{"bec.banner", "on", "on, off", "A warning banner at the top of suspicious mail.", "疑わしいメールの本文先頭に警告バナーを入れます。"},
	{"bec.brands", "", "", "Extra domains to protect from look-alikes.", "類似ドメインから保護する追加ドメイン。"},
	{"quarantine.retention_days", "7", "1–14", "Days a quarantined copy is kept.", "隔離メールの保存日数。"},
	{"quarantine.quota_mb", "5", "", "Quarantine capacity per address in MB; a warning at 80 %.", "アドレスごとの隔離容量（MB）。80% で警告します。"},
	{"quarantine.digest_hours", "9,17", "hours or off", "Hours at which the quarantine digest is sent.", "隔離一覧通知を送る時刻。"},
	{"quarantine.digest_lang", "ja", "ja, en", "Language of the digest.", "一覧通知の言語。"},
	{"quarantine.admin_digest", "", "", "Addresses that get a digest of the whole tenant.", "テナント全体の一覧通知を受け取るアドレス。"},
	{"relay.foreign_from", "reject", "reject, allow", "Outbound relay: pass mail whose From is not in your domains (forwarding; tenant level).", "送信リレー: From が自組織のドメインでないメール（転送など）を通すか（テナント単位）。"},
	{"outbound.approvers", "notify.admin", "addresses", "Who approves held outbound mail of the group (or tenant) it is set for (docs/outbound.md).", "このグループ（またはテナント）の送信保留メールを承認する人のアドレス（docs/outbound.md 参照）。"},
	{"outbound.self_approval", "deny", "allow, deny", "Senders who are approvers may approve their own mail (tenant level).", "承認者である送信者が自分のメールを承認できるか（テナント単位）。"},
	{"outbound.approval_hours", "72", "1–720", "Hours held mail waits for an approver.", "承認待ちの期限（時間）。"},
	{"outbound.approval_timeout", "reject", "reject, send", "What happens to held mail nobody approved in time.", "期限までに承認されなかったメールの扱い。"},
	{"outbound.delay_minutes", "off", "0–10080 or off", "Every outbound message waits this long and can be cancelled meanwhile (遅延送信).", "すべての送信メールをこの時間待たせ、その間は取り消せます（遅延送信）。"},
	{"outbound.bcc_over", "off", "number or off", "Above this many outside recipients in To/Cc they are moved to Bcc.", "To/Cc の社外宛先がこの数を超えると Bcc に移します（BCC 変換）。"},
	{"outbound.bcc_to", "undisclosed", "undisclosed, sender", "The visible To after a Bcc conversion.", "BCC 変換後に表示する To。"},
	{"outbound.lang", "ja", "ja, en", "Language of the outbound notices (Japanese with English, or English only).", "送信関連の通知の言語（日本語と英語、または英語のみ）。"},
	{"outbound.block_notice", "mail", "mail, reply", "Also mail the sender when a message is blocked (the SMTP reply always says it).", "ブロックしたとき送信者にメールでも通知するか。"},
	{"outbound.av_unscannable", "hold", "hold, block, send", "Outbound attachments the virus scan cannot finish (zip bombs).", "ウイルス検査を完了できない送信添付ファイル（ZIP 爆弾など）の扱い。"},
	{"console.admin_ips", "", "", "Networks administrators and API tokens may come from (tenant level).", "管理者と API トークンの接続元として許可するネットワーク（テナント単位）。"},
	{"console.user_ips", "", "", "Networks end users may log in from (tenant level).", "一般ユーザーのログインを許可するネットワーク（テナント単位）。"},
	{"console.user_allow", "true", "true, false", "Users may add allow entries to their own list.", "ユーザーが自分の許可リストを編集できるか。"},
	{"login.method", "local", "local, imap, smtp, oidc", "How end users log in (docs/console.md).", "一般ユーザーのログイン方法（docs/console.md 参照）。"},
	{"continuity.failover", "off", "on, off", "Probe the primary service and switch the domain to emergency mode when it fails (docs/continuity.md).", "通常の配送先を監視し、応答がなければ緊急モードへ自動で切り替えます（docs/continuity.md 参照）。"},
	{"continuity.canary", "postmaster@<domain>", "address of the domain", "Address the probe names in RCPT TO (domain level).", "監視で RCPT TO に指定するアドレス（ドメイン単位）。"},
	{"continuity.probe_interval", "1m", "≥ 30s", "How often the primary service is probed.", "通常の配送先を確認する間隔。"},
	{"continuity.probe_timeout", "30s", "1s–5m", "How long one probe may take.", "1 回の確認の制限時間。"},
	{"continuity.fail_after", "10m", "duration", "How long probes must fail before the switch to emergency mode.", "緊急モードへ切り替えるまでに確認が失敗し続ける時間。"},
	{"continuity.recover_after", "30m", "duration", "How long probes must pass before an automatic switch back.", "自動で戻すまでに確認が成功し続ける時間。"},
	{"continuity.auto_back", "off", "on, off", "Switch back automatically after an automatic failover.", "自動切替の後、復旧したら自動で通常の配送先に戻します。"},
	{"continuity.handback", "auto", "auto, manual", "Hand the mail received in emergency mode back when the domain returns to primary.", "通常の配送先に戻したとき、緊急モード中のメールを自動で引き戻すか。"},
	{"continuity.handback_path", "smtp", "smtp, graph, gmail", "How mail is handed back: SMTP to the routes, or imported through Microsoft Graph or the Gmail API.", "引き戻しの経路: 配送先への SMTP、または Microsoft Graph / Gmail API での取り込み。"},
	{"continuity.retention_days", "30", "1–3650", "Days local copies stay after they were handed back.", "引き戻し後にコピーを残す日数。"},
	{"continuity.notify", "", "addresses", "More addresses told of every switch (ideally outside the domain).", "切替を通知する追加のアドレス（ドメイン外が望ましい）。"},
	{"mailbox.quota_mb", "1024", "MB, 0 = no limit", "Quota a new mailbox gets (docs/webmail.md).", "新しいメールボックスの容量上限（docs/webmail.md 参照）。"},
	{"mailbox.contract_mb", "", "MB", "Contracted disk: the mailboxes page warns when the quotas add up to more (tenant level).", "契約容量。割り当ての合計が超えるとメールボックス画面で警告します（テナント単位）。"},
	{"webmail.charset", "iso-2022-jp", "iso-2022-jp, utf-8", "Charset of Japanese mail written in the webmail (tenant level).", "ウェブメールで作成する日本語メールの文字コード（テナント単位）。"},
	{"webmail.attachment_mb", "20", "MB", "Attachments of one webmail message together (tenant level; within limits.max_message_bytes).", "ウェブメールの 1 通あたりの添付ファイル合計（テナント単位、limits.max_message_bytes 以内）。"},
	{"webmail.time_zone", "the console's", "IANA zone, e.g. Asia/Tokyo", "Time zone of the webmail's dates and of the Date of mail it sends (tenant level).", "ウェブメールの日時表示と送信メールの Date のタイムゾーン（テナント単位）。"},
	{"submission.send_as", "", "addresses (per user)", "Other addresses of your domains the user may send as through submission (shared or alias addresses).", "サブミッションで利用者が送信者として使える自ドメインの他のアドレス（共有アドレスや別名）。"},
	{"zip.cipher", "zipcrypto", "zipcrypto, aes256", "Password ZIP encryption: ZipCrypto opens in Windows Explorer; AES-256 needs 7-Zip or similar (docs/outbound.md).", "パスワード付きZIPの暗号方式。ZipCrypto は Windows 標準で開けます。AES-256 は 7-Zip などが必要です（docs/outbound.md 参照）。"},
	{"zip.names", "cp932", "cp932, utf8", "File names in the ZIP: CP932 for Japanese Windows, or UTF-8 with the language flag.", "ZIP 内のファイル名の文字コード。日本語版 Windows 向けの CP932、または UTF-8。"},
	{"zip.password_length", "12", "8–64", "Length of generated ZIP passwords.", "自動生成するパスワードの長さ。"},
	{"zip.password_chars", "letters and digits without 0/O/1/l/I", "printable ASCII", "Characters of generated ZIP passwords.", "自動生成するパスワードに使う文字。"},
	{"zip.password_to", "sender", "sender, recipients", "Who receives the password mail.", "パスワード通知メールの送り先（送信者／受信者）。"},
	{"zip.password_delay", "0s", "0s–168h", "Wait before the password mail is sent.", "パスワード通知メールを送るまでの待ち時間。"},
	{"zip.lang", "ja", "ja, en", "Language of the ZIP notice and the password mail.", "ZIP 化のお知らせとパスワード通知の言語。"},
	{"zip.exceptions", "", "addresses, domains", "Recipients or domains whose copies are never zipped.", "ZIP 化しない宛先アドレスまたはドメイン。"},
	{"link.expiry", "168h", "1h–2160h", "How long an attachment download link works.", "添付ファイルのダウンロードリンクの有効期間。"},
	{"link.max_downloads", "0", "0–1000 (0: no limit)", "Downloads allowed per attachment link.", "ダウンロードリンクごとのダウンロード可能回数（0 は無制限）。"},
	{"link.lang", "ja", "ja, en", "Language of the link notice in the message.", "リンクのお知らせの言語。"},
	{"dkim.selector", "", "DNS label", "Active DKIM selector of the domain; empty: outbound mail is not signed (domain level).", "ドメインの DKIM セレクタ。空なら送信メールに署名しません（ドメイン単位）。"},
	{"dkim.algorithms", "rsa", "rsa, ed25519, rsa,ed25519", "Key types that sign; the Ed25519 key is published under the selector plus -ed25519.", "署名に使う鍵の種類。Ed25519 鍵はセレクタ名に -ed25519 を付けた名前で公開します。"},
	{"dkim.previous_selector", "", "DNS label", "Selector being retired: still published, no longer signing.", "切替前のセレクタ。DNS には残し、署名には使いません。"},
}

// Desc is the key's description in the page's language.
func (k policyKey) Desc(lang string) string {
	if lang == "ja" {
		return k.JA
	}
	return k.EN
}
