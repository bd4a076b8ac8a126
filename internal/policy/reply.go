package policy

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// Refusal is the SMTP reply refusing a message for its deciding finding:
// the finding's own code, enhanced code and public text where it has them,
// code and enhanced otherwise (e.g. 550 5.7.1, or 451 4.7.0 to defer).
func Refusal(d *Finding, code int, enhanced string) error {
	if d.Code != 0 {
		code = d.Code
	}
	if d.Enhanced != "" {
		enhanced = d.Enhanced
	}
	text := d.Public
	if text == "" {
		text = "Message refused by policy"
		if code/100 == 4 {
			text = "Message cannot be accepted now, please try again later"
		}
	}
	var ec smtp.EnhancedCode
	fmt.Sscanf(enhanced, "%d.%d.%d", &ec[0], &ec[1], &ec[2])
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: text}
}
