package rules

import "github.com/ctwatch/ctwatch/configs"

// builtinData serves the feeds and issuer sets embedded in package configs.
type builtinData struct{}

func (builtinData) Feed(name string) ([]byte, bool)       { return configs.Feed(name) }
func (builtinData) FeedNames() []string                   { return configs.FeedNames() }
func (builtinData) IssuerSet(owner string) ([]byte, bool) { return configs.IssuerSet(owner) }
func (builtinData) IssuerOwners() []string                { return configs.IssuerOwners() }

// Builtin returns the feeds and issuer sets shipped with ctwatch (package
// configs), for WithData. They are embedded in the binary, so using them
// does no I/O; the result is stateless and safe for concurrent use.
func Builtin() Data { return builtinData{} }
