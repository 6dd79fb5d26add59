package tokensource

// Test-only access to the per-flow constructors that Discover composes, so
// the external tests can pin each step on its own.
var (
	NewKeyFlow          = newKeyFlow
	ChooseFlow          = chooseFlow
	NewWorkloadIdentity = newWorkloadIdentity
)

type Choice = choice

const (
	FlowKey        = KindKey
	FlowFederation = KindFederation
)
