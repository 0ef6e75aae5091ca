//go:build !unix

package gitstore

import "os"

// mapFile reads a whole file where mmap is unavailable.
func mapFile(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	return b, func() error { return nil }, err
}
