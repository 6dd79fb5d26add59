package credhelper

import "testing"

func BenchmarkNormalizeHost(b *testing.B) {
	for b.Loop() {
		for _, in := range []string{"registry.onstackit.cloud", "https://index.docker.io/v1/", "registry.onstackit.cloud/myproj/app"} {
			if _, err := NormalizeHost(in); err != nil {
				b.Fatal(err)
			}
		}
	}
}
