// Command pvbench measures promptvault against baselines run in the same
// process or script, and prints the ratios (make bench).
//
//	pvbench index [flags]   full and incremental indexing vs git log --name-only
//	pvbench http  [flags]   wrk against serve vs a bare net/http server
//	pvbench serve [flags]   serve's RSS, idle CPU and CLI-change → read latency
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pvbench index|http|serve [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "index":
		err = runIndex(os.Args[2:])
	case "http":
		err = runHTTP(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q: want index, http or serve", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pvbench:", err)
		os.Exit(1)
	}
}
