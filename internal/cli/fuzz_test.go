package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzDecodeKubeletRequest(f *testing.F) {
	for _, seed := range []string{
		kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud/p/a:1"),
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.b/c","serviceAccountToken":"t","serviceAccountAnnotations":{"k":"v"}}`,
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderRequest","image":"x"} `,
		kubeletRequestJSON(kubeletAPIVersionV1, "registry.onstackit.cloud#.evil.com/p/app:1"),
		kubeletRequestJSON(kubeletAPIVersionV1, "[::1]:5000/p/app:1"),
		`{}`, `[]`, `null`, ``, `{"image":null}`, `{"serviceAccountAnnotations":{"a":1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeKubeletRequest(data)
		if err != nil {
			if req != nil {
				t.Fatal("request returned with an error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if !kubeletAPIVersions[req.APIVersion] || req.Kind != kubeletRequestKind || strings.TrimSpace(req.Image) == "" {
			t.Fatalf("accepted an invalid request %+v", req)
		}
		// A registry we would key credentials by is exactly a host.
		if raw, host, err := imageRegistry(req.Image); err == nil {
			if !validReferenceDomain(raw) || !strings.EqualFold(raw, host) && raw != "docker.io" {
				t.Fatalf("image %q: auth key %q for host %q", req.Image, raw, host)
			}
		}
		// What we accept survives a round trip unchanged.
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeKubeletRequest(again)
		if err != nil || back.Image != req.Image || back.ServiceAccountToken != req.ServiceAccountToken {
			t.Fatalf("round trip changed the request: %v", err)
		}
	})
}
