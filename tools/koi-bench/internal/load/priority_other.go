//go:build !unix

package load

func lowerPriority(int) {}
