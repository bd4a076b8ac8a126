package jamail

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

type name struct{ ja, romaji string }

var surnames = []name{
	{"佐藤", "sato"}, {"鈴木", "suzuki"}, {"高橋", "takahashi"}, {"田中", "tanaka"}, {"伊藤", "ito"},
	{"渡辺", "watanabe"}, {"山本", "yamamoto"}, {"中村", "nakamura"}, {"小林", "kobayashi"}, {"加藤", "kato"},
	{"吉田", "yoshida"}, {"山田", "yamada"}, {"佐々木", "sasaki"}, {"山口", "yamaguchi"}, {"松本", "matsumoto"},
	{"井上", "inoue"}, {"木村", "kimura"}, {"林", "hayashi"}, {"斎藤", "saito"}, {"清水", "shimizu"},
	{"山崎", "yamazaki"}, {"森", "mori"}, {"池田", "ikeda"}, {"橋本", "hashimoto"}, {"阿部", "abe"},
	{"石川", "ishikawa"}, {"前田", "maeda"}, {"藤田", "fujita"}, {"小川", "ogawa"}, {"岡田", "okada"},
	{"後藤", "goto"}, {"長谷川", "hasegawa"}, {"村上", "murakami"}, {"近藤", "kondo"}, {"石井", "ishii"},
	{"坂本", "sakamoto"}, {"遠藤", "endo"}, {"青木", "aoki"}, {"藤井", "fujii"}, {"西村", "nishimura"},
	{"福田", "fukuda"}, {"太田", "ota"}, {"三浦", "miura"}, {"藤原", "fujiwara"}, {"岡本", "okamoto"},
	{"松田", "matsuda"}, {"中川", "nakagawa"}, {"中野", "nakano"}, {"原田", "harada"}, {"小野", "ono"},
	{"竹内", "takeuchi"}, {"髙木", "takagi"},
}

var givenNames = []name{
	{"太郎", "taro"}, {"花子", "hanako"}, {"一郎", "ichiro"}, {"健太", "kenta"}, {"美咲", "misaki"},
	{"大輔", "daisuke"}, {"由美", "yumi"}, {"翔太", "shota"}, {"陽子", "yoko"}, {"直樹", "naoki"},
	{"恵", "megumi"}, {"拓也", "takuya"}, {"明美", "akemi"}, {"誠", "makoto"}, {"裕子", "yuko"},
	{"浩二", "koji"}, {"愛", "ai"}, {"亮", "ryo"}, {"智子", "tomoko"}, {"和也", "kazuya"},
	{"さくら", "sakura"}, {"隆", "takashi"}, {"真由美", "mayumi"}, {"修", "osamu"},
}

type company struct {
	ja, domain string
}

var companies = []company{
	{"株式会社山田商事", "yamada-shoji.co.jp"}, {"東邦システム株式会社", "toho-sys.co.jp"},
	{"株式会社ミナト精工", "minato-seiko.co.jp"}, {"北斗物流株式会社", "hokuto-logi.co.jp"},
	{"株式会社サクラテック", "sakuratech.jp"}, {"中央印刷株式会社", "chuo-print.co.jp"},
	{"株式会社アオバ建設", "aoba-kensetsu.co.jp"}, {"丸の内コンサルティング株式会社", "marunouchi-consulting.com"},
	{"株式会社ひかり電機", "hikari-denki.co.jp"}, {"大和化学工業株式会社", "yamato-chem.co.jp"},
	{"株式会社みらいソフト", "mirai-soft.jp"}, {"西日本フーズ株式会社", "nishinihon-foods.co.jp"},
	{"株式会社グリーンファーム", "greenfarm.co.jp"}, {"株式会社コスモ企画", "cosmo-kikaku.co.jp"},
	{"日本橋トレーディング株式会社", "nihonbashi-trading.co.jp"}, {"株式会社ウェーブリンク", "wavelink.ne.jp"},
	{"さくら会計事務所", "sakura-kaikei.jp"}, {"株式会社エヌテック", "ntech.co.jp"},
	{"株式会社フジ設備", "fuji-setsubi.co.jp"}, {"関東メディカル株式会社", "kanto-medical.co.jp"},
	{"株式会社楽天堂製菓", "rakutendo-seika.co.jp"}, {"株式会社スミトモ工務店", "sumitomo-koumuten.jp"},
}

var departments = []string{"営業部", "総務部", "経理部", "人事部", "情報システム部", "購買部", "開発部",
	"マーケティング部", "品質保証部", "広報部", "業務推進室", "カスタマーサポート課"}

var titles = []string{"部長", "課長", "主任", "", "", "", "係長", "マネージャー"}

var addresses = []string{
	"〒100-0005 東京都千代田区丸の内1-2-3 丸の内ビル8F",
	"〒530-0001 大阪府大阪市北区梅田2-5-10 梅田スクエア12階",
	"〒450-0002 愛知県名古屋市中村区名駅3-1-1",
	"〒812-0012 福岡県福岡市博多区博多駅中央街2-1",
	"〒220-0012 神奈川県横浜市西区みなとみらい3-3-1 ランドビル5F",
	"〒600-8008 京都府京都市下京区四条通烏丸東入ル長刀鉾町20",
	"〒980-0021 宮城県仙台市青葉区中央1-1-1",
	"〒060-0005 北海道札幌市中央区北5条西2-5",
	"〒105-0011 東京都港区芝公園2-4-1 芝パークビル",
	"〒330-0854 埼玉県さいたま市大宮区桜木町1-7-5",
}

// person is a correspondent: name, company and address.
type person struct {
	sur, given name
	co         company
	dept       string
	title      string
	addr       string
	phone      string
	email      string
}

func (p person) fullName() string { return p.sur.ja + " " + p.given.ja }

func newPerson(r *rand.Rand) person {
	p := person{
		sur:   surnames[r.IntN(len(surnames))],
		given: givenNames[r.IntN(len(givenNames))],
		co:    companies[r.IntN(len(companies))],
		dept:  departments[r.IntN(len(departments))],
		title: titles[r.IntN(len(titles))],
		addr:  addresses[r.IntN(len(addresses))],
	}
	area := []string{"03", "06", "052", "092", "045", "075", "022", "011", "048"}[r.IntN(9)]
	p.phone = fmt.Sprintf("%s-%04d-%04d", area, 1000+r.IntN(9000), r.IntN(10000))
	switch r.IntN(3) {
	case 0:
		p.email = p.given.romaji[:1] + "." + p.sur.romaji + "@" + p.co.domain
	case 1:
		p.email = p.sur.romaji + "@" + p.co.domain
	default:
		p.email = p.sur.romaji + "-" + p.given.romaji[:1] + "@" + p.co.domain
	}
	return p
}

// signature returns one of several signature layouts.
func (p person) signature(r *rand.Rand) string {
	t := ""
	if p.title != "" {
		t = " " + p.title
	}
	url := "https://www." + p.co.domain + "/"
	switch r.IntN(4) {
	case 0:
		return "--\n" + p.co.ja + "\n" + p.dept + t + "\n" + p.fullName() + "\n" + p.addr + "\nTEL: " + p.phone +
			"\nMail: " + p.email + "\nURL: " + url
	case 1:
		return "━━━━━━━━━━━━━━━━━━━━\n" + p.co.ja + " " + p.dept + "\n" + p.fullName() +
			" (" + strings.ToUpper(p.sur.romaji[:1]) + p.sur.romaji[1:] + " " + strings.ToUpper(p.given.romaji[:1]) + p.given.romaji[1:] + ")\n" +
			p.addr + "\nTEL " + p.phone + " / FAX " + p.phone[:len(p.phone)-1] + "9\nE-mail " + p.email + "\n━━━━━━━━━━━━━━━━━━━━"
	case 2:
		return "******************************\n" + p.co.ja + "\n" + p.dept + "\n" + p.sur.ja + " " + p.given.ja +
			"\nTEL：" + p.phone + "\n" + url + "\n******************************"
	}
	return p.fullName() + "\n" + p.co.ja + " " + p.dept + "\n" + p.phone
}

var weekdays = []string{"日", "月", "火", "水", "木", "金", "土"}

// jaDate formats a date as business mail writes it: "3月12日（火）".
func jaDate(t time.Time) string {
	return fmt.Sprintf("%d月%d日（%s）", int(t.Month()), t.Day(), weekdays[t.Weekday()])
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// yen formats an amount with thousands separators: "1,234,000".
func yen(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
