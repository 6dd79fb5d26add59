package credhelper_test

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
)

// A go-containerregistry program pulls from STACKIT Container Registry with
// the service account key in STACKIT_SERVICE_ACCOUNT_KEY_PATH, and from
// everywhere else with the usual Docker config.
func Example() {
	h, err := credhelper.New(credhelper.FromEnvironment())
	if err != nil {
		fmt.Println(err)
		return
	}
	kc := authn.NewMultiKeychain(authn.NewKeychainFromHelper(h), authn.DefaultKeychain)
	ref, err := name.ParseReference("registry.onstackit.cloud/myproj/app:1.0")
	if err != nil {
		fmt.Println(err)
		return
	}
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(kc))
	if err != nil {
		fmt.Println(err)
		return
	}
	digest, _ := img.Digest()
	fmt.Println(digest)
}
