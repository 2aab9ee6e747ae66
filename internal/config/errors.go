package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Sources of a setting other than a configuration file, as they appear in
// Problem.Source.
const (
	SourceEnvironment = "environment"
	SourceFlag        = "flag"
)

// Problem is one thing wrong with a configuration, located where the bad
// value was set so that the user knows what to edit.
type Problem struct {
	// Source is the configuration file's path as given to Load, or
	// SourceEnvironment, or SourceFlag.
	Source string
	// Line is the 1-based line in the file; 0 when Source is not a file or
	// the line is unknown.
	Line int
	// Message says what is wrong. For the environment and flags it starts
	// with the variable (CTWATCH_…) or flag (--…) name. It is one line.
	Message string
}

// String formats the problem as "SOURCE:LINE: MESSAGE", or "SOURCE: MESSAGE"
// when there is no line, the form compilers use so editors can jump to it.
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.Source, p.Line, p.Message)
	}
	return p.Source + ": " + p.Message
}

// Error is what Load returns when the configuration is invalid. It lists
// every problem found, not only the first, so that one run of
// `ctwatch rules validate` or `ctwatch run` shows everything to fix.
type Error struct {
	// Problems is never empty in an Error returned by Load. File problems
	// come first, by line; then the environment's; then the flags'.
	Problems []Problem
}

// Error returns one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems for reading: the file by line, then the
// environment, then flags; otherwise in the order they were found.
func sortProblems(ps []Problem) {
	rank := func(p Problem) int {
		switch p.Source {
		case SourceEnvironment:
			return 1
		case SourceFlag:
			return 2
		default:
			return 0
		}
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
}

// oneLine keeps a message on a single line whatever text it quotes, so that
// Error's "one problem per line" holds for messages from other libraries.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", "; ")
}
