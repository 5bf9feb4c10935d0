package muc

import "strconv"

// Values of data form fields (XEP-0004) as the room's forms use them; the
// forms themselves are read and written with package dataform.

// boolValue reads an XEP-0004 boolean: "1"/"true" or "0"/"false".
func boolValue(vals []string) (value, ok bool) {
	if len(vals) != 1 {
		return false, false
	}
	switch vals[0] {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func single(vals []string) (string, bool) {
	switch len(vals) {
	case 0:
		return "", true
	case 1:
		return vals[0], true
	}
	return "", false
}

func intValue(vals []string) (int, bool) {
	s, ok := single(vals)
	if !ok {
		return 0, false
	}
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
