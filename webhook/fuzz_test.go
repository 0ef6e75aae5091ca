package webhook

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzPayload decodes a delivery body as the receiver does: the content
// type picks JSON or a form's payload field, the envelope is read, the
// subject derived. Nothing may panic, and every refusal is ErrBadDelivery.
func FuzzPayload(f *testing.F) {
	for _, s := range [][2]string{
		{"application/json", `{"action":"closed","number":7,"pull_request":{"number":7,"merged":true},"repository":{"full_name":"o/r"}}`},
		{"application/json", `{"ref":"refs/heads/main","after":"abc"}`},
		{"application/x-www-form-urlencoded", `payload=%7B%22ref%22%3A%22refs%2Fheads%2Fx%22%7D`},
		{"application/x-www-form-urlencoded", `payload=`},
		{"text/plain; charset=utf-8", `{}`},
		{"", `{"check_suite":{"head_sha":"d","pull_requests":[{"number":1},{"number":2}]}}`},
		{"application/json; charset=\"", `[]`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	events := []string{"pull_request", "push", "merge_group", "check_run", "check_suite", "ping", ""}
	f.Fuzz(func(t *testing.T, contentType string, raw []byte) {
		body, err := payload(contentType, raw)
		if err != nil {
			if !errors.Is(err, ErrBadDelivery) {
				t.Fatalf("payload error %v is not ErrBadDelivery", err)
			}
			return
		}
		var head envelope
		if json.Unmarshal(body, &head) != nil {
			return
		}
		for _, ev := range events {
			_ = head.subject(ev)
		}
		_ = otherRepository("o/r", head)
	})
}
