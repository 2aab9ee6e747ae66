package daemon

// KeepLeases makes Run leave the leases it holds to expire at shutdown
// instead of giving them back, as a crashed process would: what tests of
// fail-over need.
func KeepLeases() Option {
	return func(o *options) { o.keepLeases = true }
}
