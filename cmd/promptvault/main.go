// Command promptvault is the Git-backed prompt registry: it indexes a prompts
// repository, serves prompts over HTTP and manages live and staging pointers.
// main only wires; every command is reachable through run, so tests drive
// the real CLI.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a specific exit code (validate's 1 on invalid files)
// without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes one CLI invocation and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if wantsJSON(root) {
		// Scripts that asked for JSON get JSON errors too, in the HTTP
		// API's shape, on stderr.
		enc := json.NewEncoder(stderr)
		enc.SetEscapeHTML(false)
		enc.Encode(map[string]any{"error": map[string]string{"code": errorCode(err), "message": err.Error()}})
		return 1
	}
	fmt.Fprintf(stderr, "promptvault: %v\n", err)
	return 1
}

// wantsJSON reports --json (or PV_JSON) on the invocation, also when it
// failed before the command's own setup read the variable.
func wantsJSON(root *cobra.Command) bool {
	if f := root.PersistentFlags().Lookup("json"); f != nil && f.Changed {
		return f.Value.String() == "true"
	}
	v, _ := strconv.ParseBool(os.Getenv("PV_JSON"))
	return v
}

// errorCode names an error's kind with the HTTP API's codes.
func errorCode(err error) string {
	var probs *promptvault.Problems
	switch {
	case errors.As(err, &probs), errors.Is(err, index.ErrInvalidVersion):
		return "validation_failed"
	case errors.Is(err, ErrNoData), errors.Is(err, index.ErrNotFound):
		return "not_found"
	case errors.Is(err, index.ErrConflict):
		return "conflict"
	case errors.Is(err, index.ErrInvalid):
		return "invalid_request"
	}
	return "error"
}
