package spam

import (
	"slices"
	"strings"
	"testing"
)

// listMail is a message as a mailing list delivers it: the poster's own
// hop at the bottom, the list server's hops and fields, a Subject tag and
// a footer.
func listMail(body string) string {
	return "Received: from relay.recipient.example (relay.recipient.example [192.0.2.50]) by mx.recipient.example; Mon, 29 Jul 2002 11:29:04 +0100\r\n" +
		"Received: from lists.example.org ([198.51.100.2]) by relay.recipient.example; Mon, 29 Jul 2002 11:29:00 +0100\r\n" +
		"Received: from sender.example.net (sender.example.net [203.0.113.9]) by lists.example.org (Postfix); Mon, 29 Jul 2002 11:28:50 +0100\r\n" +
		"Received: from pc1 (pc1.sender.example.net [10.1.1.1]) by sender.example.net; Mon, 29 Jul 2002 11:28:40 +0100\r\n" +
		"From: someone@sender.example.net\r\n" +
		"To: talk@lists.example.org\r\n" +
		"Subject: [talk] cheap watches for you\r\n" +
		"Sender: talk-admin@lists.example.org\r\n" +
		"Errors-To: talk-admin@lists.example.org\r\n" +
		"Precedence: bulk\r\n" +
		"List-Id: Talk about things <talk.lists.example.org>\r\n" +
		"List-Post: <mailto:talk@lists.example.org>\r\n" +
		"List-Unsubscribe: <http://lists.example.org/mailman/listinfo/talk>\r\n" +
		"Date: Mon, 29 Jul 2002 11:28:30 +0100\r\n" +
		"Message-ID: <abc@sender.example.net>\r\n\r\n" +
		body +
		"\r\n_______________________________________________\r\n" +
		"Talk mailing list\r\nhttp://lists.example.org/mailman/listinfo/talk\r\n"
}

func TestListDeliveredLeavesTheListsAdditionsOut(t *testing.T) {
	toks := Tokenize(parseMsg(t, []byte(listMail("Buy cheap watches today."))), 0)
	if m := missing(toks, "list:delivered", "subject:cheap", "cheap", "watches", "received:example.net", "received-ip:203.0",
		"from-domain:sender.example.net"); len(m) > 0 {
		t.Errorf("missing %q in %q", m, toks)
	}
	for _, bad := range []string{"subject:talk", "header:list-id", "header:sender", "header:precedence", "header:errors-to",
		"received:example.org", "received:recipient.example", "received-ip:198.51", "received-ip:192.0",
		"url-host:lists.example.org", "mailing", "listinfo"} {
		if slices.Contains(toks, bad) {
			t.Errorf("%q is the list's, but was tokenized: %q", bad, toks)
		}
	}
}

func TestNotListDeliveredKeepsEverything(t *testing.T) {
	raw := "Received: from relay.recipient.example (relay.recipient.example [192.0.2.50]) by mx.recipient.example; Mon, 29 Jul 2002 11:29:04 +0100\r\n" +
		"From: someone@sender.example.net\r\nTo: me@recipient.example\r\nSubject: [draft] plan\r\nSender: assistant@sender.example.net\r\n" +
		"Date: Mon, 29 Jul 2002 11:28:30 +0100\r\n\r\nSee the plan.\r\n-- \r\nSomeone, http://sender.example.net/\r\n"
	toks := Tokenize(parseMsg(t, []byte(raw)), 0)
	if m := missing(toks, "subject:draft", "header:sender", "received:recipient.example", "url-host:sender.example.net"); len(m) > 0 {
		t.Errorf("missing %q in %q", m, toks)
	}
	if slices.Contains(toks, "list:delivered") {
		t.Errorf("a message without list fields marked as list mail: %q", toks)
	}
}

func TestStripListTag(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"[SAtalk] SA CGI Configurator", "SA CGI Configurator"},
		{"Re: [ILUG] modem problem", "Re: modem problem"},
		{"[a long tag with spaces] kept", "[a long tag with spaces] kept"},
		{"no tag", "no tag"},
		{"[only]", ""},
	} {
		if got := stripListTag(c.in); got != c.want {
			t.Errorf("stripListTag(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestListFooterStart(t *testing.T) {
	l := &mailingList{org: "example.org", entry: -1}
	body := "line one\nline two\n"
	footer := "___________________\nTalk mailing list\nhttp://lists.example.org/listinfo/talk\n"
	if got := listFooterStart(body+footer, l); got != len(body) {
		t.Errorf("footer at %d, want %d", got, len(body))
	}
	// A separator followed by the sender's own words is not a footer.
	own := body + "----------\nmore of what I wrote\n"
	if got := listFooterStart(own, l); got != -1 {
		t.Errorf("footer found at %d in %q", got, own)
	}
	// Only the end of a long text is searched.
	long := footer + strings.Repeat("words and more words\n", 200)
	if got := listFooterStart(long, l); got != -1 {
		t.Errorf("footer found at %d far from the end", got)
	}
}
