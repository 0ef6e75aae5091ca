package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/promptvault/promptvault"
)

// Intake bounds. A body is hashed while it streams in; only its first
// memSpool bytes are held in memory, the rest goes to an unlinked temporary
// file, so an unverified body costs at most memSpool plus a copy buffer
// however large it is. At most MaxUnverified bodies are read at once; a
// request waits for a slot up to its context or UnverifiedWait.
const (
	memSpool = 64 << 10
	copyBuf  = 32 << 10
	// DefaultMaxUnverified is ReceiverOptions.MaxUnverified's default.
	DefaultMaxUnverified = 4
	// DefaultUnverifiedWait is GitHub's own reply deadline: a delivery
	// answered later counts as failed anyway.
	DefaultUnverifiedWait = 10 * time.Second
)

// ErrIntakeBusy: every intake slot stayed taken for UnverifiedWait (503;
// GitHub marks the delivery failed and reconcile heals it).
var ErrIntakeBusy = fmt.Errorf("%w: webhook intake full, retry later", promptvault.ErrBusy)

// signature parses an X-Hub-Signature-256 value. There is deliberately no
// SHA-1 fallback.
func signature(header string) ([]byte, bool) {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return nil, false
	}
	return got, true
}

// readVerified streams the body through the HMAC into a spool and returns
// it only when the signature matches; nothing of an unsigned body is ever
// parsed. A request without a well-formed signature header is refused
// before its body is read.
func (rc *Receiver) readVerified(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	want, ok := signature(r.Header.Get("X-Hub-Signature-256"))
	if !ok {
		return nil, ErrSignature
	}
	if r.ContentLength > MaxBody {
		return nil, fmt.Errorf("%w: over GitHub's %d-byte cap", ErrTooLarge, MaxBody)
	}
	timer := time.NewTimer(rc.slotWait)
	select {
	case rc.slots <- struct{}{}:
		timer.Stop()
	case <-timer.C:
		return nil, ErrIntakeBusy
	case <-r.Context().Done():
		timer.Stop()
		return nil, fmt.Errorf("%w: client went away", ErrBadDelivery)
	}
	sp := &spool{dir: rc.spoolDir}
	defer sp.close()
	mac := hmac.New(sha256.New, rc.secret)
	_, err := io.CopyBuffer(io.MultiWriter(mac, sp), http.MaxBytesReader(w, r.Body, MaxBody), make([]byte, copyBuf))
	// The slot covers only the unverified phase: a verified body is
	// GitHub's own and may be held in memory like any stored delivery.
	verified := err == nil && hmac.Equal(want, mac.Sum(nil))
	<-rc.slots
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: over GitHub's %d-byte cap", ErrTooLarge, MaxBody)
		}
		return nil, fmt.Errorf("%w: read body: %v", ErrBadDelivery, err)
	}
	if !verified {
		return nil, ErrSignature
	}
	return sp.bytes()
}

// spool keeps up to memSpool bytes in memory and the rest in a temporary
// file that is unlinked at once, so a crash leaves nothing behind.
type spool struct {
	dir string
	mem bytes.Buffer
	f   *os.File
	n   int64
}

func (s *spool) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if s.f == nil && s.mem.Len()+len(p) <= memSpool {
		return s.mem.Write(p)
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "pv-webhook-*")
		if err != nil {
			return 0, fmt.Errorf("webhook spool: %w", err)
		}
		os.Remove(f.Name()) // the open file lives on; its name does not
		s.f = f
		if _, err := s.f.Write(s.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("webhook spool: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	return s.f.Write(p)
}

func (s *spool) bytes() ([]byte, error) {
	if s.f == nil {
		return s.mem.Bytes(), nil
	}
	b := make([]byte, s.n)
	if _, err := s.f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("webhook spool: %w", err)
	}
	return b, nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
	}
}
