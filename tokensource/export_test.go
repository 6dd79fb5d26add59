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

// The flow types are tokensource's own; the tests pin them one by one.
type (
	KeyFlow          = keyFlow
	WorkloadIdentity = workloadIdentity
	TokenFile        = tokenFile
	GitHubOIDC       = gitHubOIDC
)

var NewGitHubOIDC = newGitHubOIDC
