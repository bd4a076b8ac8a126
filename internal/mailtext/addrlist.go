package mailtext

// ParseAddressList reads an address header's raw value (From, To, Cc,
// Reply-To) the way the walker does: leniently, with encoded-word display
// names decoded. Mailboxes without a usable address are left out.
func ParseAddressList(raw string) []Address {
	as, _ := parseAddressList(raw, "")
	out := as[:0]
	for _, a := range as {
		if a.Addr != "" {
			out = append(out, a)
		}
	}
	return out
}
